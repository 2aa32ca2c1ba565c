//! The login form: `GET /login` (Dutch; `?lang=en` for English), `POST
//! /login` (form fields `username`, `password`, optional `next` and `lang`)
//! and `POST /logout` (form field `csrf_token`).
//!
//! Rendered on the server with no script and no inline style, so it passes
//! the Content-Security-Policy as it is. A successful sign-in sets the
//! session cookie and redirects (303) to `next` when that is a path on this
//! site, else to `/`; a failure shows the form again (401, or 429 with
//! `Retry-After`). Sign-out ends the session and redirects to `/login`.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::request::{removal_cookie, session_cookie, session_secret, RequestOrigin};
use crate::api::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

/// The languages of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Nl,
    En,
}

impl Lang {
    fn parse(code: Option<&str>) -> Lang {
        match code {
            Some("en") => Lang::En,
            _ => Lang::Nl,
        }
    }

    const fn code(self) -> &'static str {
        match self {
            Lang::Nl => "nl",
            Lang::En => "en",
        }
    }
}

/// The page's words.
struct Texts {
    title: &'static str,
    username: &'static str,
    password: &'static str,
    submit: &'static str,
    failed: &'static str,
    throttled: &'static str,
    other_language: (&'static str, &'static str),
}

const fn texts(lang: Lang) -> Texts {
    match lang {
        Lang::Nl => Texts {
            title: "Inloggen",
            username: "Gebruikersnaam",
            password: "Wachtwoord",
            submit: "Inloggen",
            failed: "Onbekende gebruikersnaam of onjuist wachtwoord.",
            throttled: "Te veel mislukte pogingen. Probeer het over enkele minuten opnieuw.",
            other_language: ("en", "English"),
        },
        Lang::En => Texts {
            title: "Sign in",
            username: "Username",
            password: "Password",
            submit: "Sign in",
            failed: "Unknown username or wrong password.",
            throttled: "Too many failed attempts. Try again in a few minutes.",
            other_language: ("nl", "Nederlands"),
        },
    }
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Returns `next` if it is a path on this site, so the form cannot be made
/// to send someone elsewhere after signing in.
fn safe_next(next: Option<&str>) -> Option<&str> {
    next.filter(|path| {
        path.starts_with('/')
            && !path.starts_with("//")
            && !path.contains('\\')
            && !path.chars().any(char::is_control)
    })
}

fn render(lang: Lang, next: Option<&str>, username: &str, error: Option<&str>) -> String {
    let texts = texts(lang);
    let error = error
        .map(|message| format!("<p role=\"alert\">{}</p>\n", escape(message)))
        .unwrap_or_default();
    let next_field = safe_next(next)
        .map(|path| {
            format!(
                "<input type=\"hidden\" name=\"next\" value=\"{}\">\n",
                escape(path)
            )
        })
        .unwrap_or_default();
    let (other_code, other_name) = texts.other_language;
    format!(
        "<!doctype html>
<html lang=\"{lang}\">
<head>
<meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
<title>{title} · Thuiswacht</title>
</head>
<body>
<main>
<h1>Thuiswacht</h1>
<h2>{title}</h2>
{error}<form method=\"post\" action=\"/login\">
<input type=\"hidden\" name=\"lang\" value=\"{lang}\">
{next_field}<p><label for=\"username\">{username_label}</label><br>
<input id=\"username\" name=\"username\" value=\"{username}\" autocomplete=\"username\" required autofocus></p>
<p><label for=\"password\">{password_label}</label><br>
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></p>
<p><button type=\"submit\">{submit}</button></p>
</form>
<p><a href=\"/login?lang={other_code}\" hreflang=\"{other_code}\" lang=\"{other_code}\">{other_name}</a></p>
</main>
</body>
</html>
",
        lang = lang.code(),
        title = texts.title,
        username_label = texts.username,
        username = escape(username),
        password_label = texts.password,
        submit = texts.submit,
    )
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    lang: Option<String>,
    next: Option<String>,
}

async fn login_page(Query(query): Query<PageQuery>) -> Html<String> {
    Html(render(
        Lang::parse(query.lang.as_deref()),
        query.next.as_deref(),
        "",
        None,
    ))
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
    lang: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    origin: RequestOrigin,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    let lang = Lang::parse(form.lang.as_deref());
    match super::session::sign_in(&state, &form.username, &form.password, &origin).await {
        Ok(signed_in) => {
            // A session this browser still held ends: one browser, one session.
            if let Some(previous) = session_secret(&headers) {
                super::session::sign_out(&state, &previous, &origin).await?;
            }
            let target = safe_next(form.next.as_deref()).unwrap_or("/");
            let mut response = StatusCode::SEE_OTHER.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::LOCATION,
                HeaderValue::from_str(target).unwrap_or(HeaderValue::from_static("/")),
            );
            headers.insert(
                header::SET_COOKIE,
                session_cookie(&signed_in.secret, origin.secure_cookies(&state.settings)),
            );
            Ok(response)
        }
        Err(ApiError::SignInFailed) => {
            let page = render(
                lang,
                form.next.as_deref(),
                &form.username,
                Some(texts(lang).failed),
            );
            Ok((StatusCode::UNAUTHORIZED, Html(page)).into_response())
        }
        Err(ApiError::TooManyRequests(seconds)) => {
            let page = render(
                lang,
                form.next.as_deref(),
                &form.username,
                Some(texts(lang).throttled),
            );
            let mut response = (StatusCode::TOO_MANY_REQUESTS, Html(page)).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            Ok(response)
        }
        Err(other) => Err(other),
    }
}

/// Signs out. The CSRF guard has already checked the form's `csrf_token`
/// when the session is valid; an ended session just loses its cookie.
async fn logout(
    State(state): State<AppState>,
    origin: RequestOrigin,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(secret) = session_secret(&headers) {
        super::session::sign_out(&state, &secret, &origin).await?;
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/login"));
    response.headers_mut().insert(
        header::SET_COOKIE,
        removal_cookie(origin.secure_cookies(&state.settings)),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_dutch_by_default_and_has_no_inline_script_or_style() {
        let page = render(Lang::parse(None), None, "", None);
        assert!(page.contains("<html lang=\"nl\">"));
        assert!(page.contains("Gebruikersnaam"));
        assert!(page.contains("href=\"/login?lang=en\""));
        for forbidden in [
            "<script",
            "<style",
            "style=",
            "onclick",
            "onsubmit",
            "javascript:",
        ] {
            assert!(!page.contains(forbidden), "{forbidden}");
        }
        let english = render(Lang::parse(Some("en")), None, "", None);
        assert!(english.contains("<html lang=\"en\">") && english.contains("Username"));
    }

    #[test]
    fn typed_text_is_escaped() {
        let page = render(
            Lang::Nl,
            Some("/patients/1?x=\"><script>"),
            "<img src=x onerror=alert(1)>",
            Some("a & b"),
        );
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("a &amp; b"));
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/patients/7")), Some("/patients/7"));
        for unsafe_next in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "evil",
            "/a\nb",
        ] {
            assert_eq!(safe_next(Some(unsafe_next)), None, "{unsafe_next}");
        }
        assert_eq!(safe_next(None), None);
    }
}
