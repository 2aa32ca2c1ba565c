//! The nurses' web pages, rendered on the server: the worklist (`/`) and the
//! patient page (`/patients/{id}`), with their stylesheet and script.
//!
//! In: requests from signed-in people (the session cookie; bearer tokens
//! are for integrations and get the JSON API instead). Out: HTML, and SVG
//! trend charts. Data comes from the store through the same scoping and
//! audit helpers as the JSON API ([`crate::auth`]), so every page that
//! shows patient data leaves its audit rows.
//!
//! # Choices
//!
//! - HTML from [`maud`] (compile-time checked, escaped by default), no
//!   front-end framework: pages are light and fast on a laptop between
//!   visits. One small script (`assets/app.js`) adds what needs it: the live
//!   stream (SSE), the actions through the JSON API with the CSRF header,
//!   and the countdown to the response target. No inline script or style,
//!   so the Content-Security-Policy stays strict.
//! - Dutch by default. `?lang=en` (or `nl`) switches and is remembered in a
//!   `thuiswacht_lang` cookie, so every page and the live updates follow.
//! - A request without a valid session is sent to `/login?next=…`.
//! - Native elements carry the accessibility: headings per patient, lists,
//!   `<details>` for the explanation card (keyboard and screen reader
//!   without script), labelled form controls, a polite live region that
//!   announces updates, and priority shown by text and shape besides colour.

mod assets;
mod burden_page;
mod chart;
mod explain;
pub mod i18n;
mod patient_page;
mod protocol_texts;
mod protocols_page;
mod threshold_forms;
mod trend;
mod worklist_page;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, DOCTYPE};

use crate::api::{ApiError, AppState};
use crate::auth::{Caller, SignedIn};
use crate::store::Role;
use crate::worklist::Lang;
use i18n::{texts, Texts};
use protocol_texts::protocol_texts;

/// The cookie that remembers the chosen language.
const LANG_COOKIE: &str = "thuiswacht_lang";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(worklist_page::page))
        .route("/worklist/rows", get(worklist_page::rows_fragment))
        .route("/patients/{patient_id}", get(patient_page::page))
        .route("/alarm-burden", get(burden_page::page))
        .route("/protocols", get(protocols_page::list))
        .route("/protocols/{protocol_id}", get(protocols_page::page))
        .route("/alerts/{alert_id}/trend.svg", get(trend::svg))
        .route("/assets/{file}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
}

/// A signed-in person viewing a page, with the language to show it in.
pub(crate) struct Viewer {
    pub signed_in: SignedIn,
    pub lang: Lang,
    /// Set when the language was chosen in this request, to remember it.
    pub remember_lang: bool,
    /// The team time zone for showing moments.
    pub zone: chrono_tz::Tz,
}

impl Viewer {
    pub fn caller(&self) -> Caller {
        self.signed_in.caller()
    }

    pub fn texts(&self) -> &'static Texts {
        texts(self.lang)
    }
}

/// Returns the language of a request: `?lang=`, then the cookie, then Dutch.
fn request_lang(parts: &Parts) -> (Lang, bool) {
    let from_query = parts.uri.query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "lang")
            .and_then(|(_, value)| Lang::parse(&value))
    });
    if let Some(lang) = from_query {
        return (lang, true);
    }
    let from_cookie = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == LANG_COOKIE)
        .and_then(|(_, value)| Lang::parse(value));
    (from_cookie.unwrap_or_default(), false)
}

/// Where to come back to after signing in: this page, path and query.
fn login_redirect(parts: &Parts, lang: Lang) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("next", &next)
        .append_pair("lang", lang.code())
        .finish();
    Redirect::to(&format!("/login?{query}")).into_response()
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Viewer, Response> {
        let (lang, remember_lang) = request_lang(parts);
        let zone = state
            .settings
            .time_zone
            .parse::<chrono_tz::Tz>()
            .unwrap_or(chrono_tz::Europe::Amsterdam);
        match SignedIn::from_request_parts(parts, state).await {
            Ok(signed_in) => Ok(Viewer {
                signed_in,
                lang,
                remember_lang,
                zone,
            }),
            Err(ApiError::Unauthorized | ApiError::SessionExpired) => {
                Err(login_redirect(parts, lang))
            }
            Err(error) => Err(error.into_response()),
        }
    }
}

/// Finishes a page: no caching of patient data, and the language cookie
/// when it was chosen in this request.
pub(crate) fn page_response(viewer: &Viewer, status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if viewer.remember_lang {
        let cookie = format!(
            "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Strict",
            viewer.lang.code()
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

fn role_text(texts: &Texts, role: Role) -> &'static str {
    match role {
        Role::Nurse => texts.role_nurse,
        Role::Coordinator => texts.role_coordinator,
        Role::Admin => texts.role_admin,
    }
}

/// The frame of every page: head, skip link, header with the user, the
/// language switch and sign-out, and the live region.
pub(crate) fn layout(viewer: &Viewer, title: &str, current: &str, main: Markup) -> Markup {
    let texts = viewer.texts();
    let user = &viewer.signed_in.session.user;
    let teams: Vec<&str> = user.teams.iter().map(|team| team.name.as_str()).collect();
    let other = match viewer.lang {
        Lang::Nl => Lang::En,
        Lang::En => Lang::Nl,
    };
    html! {
        (DOCTYPE)
        html lang=(viewer.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(viewer.signed_in.session.csrf_token);
                meta name="lang" content=(viewer.lang.code());
                title { (title) " · Thuiswacht" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
                script src="/assets/app.js" defer {}
            }
            body data-text-left=(texts.left) data-text-over=(texts.over) data-text-waited=(texts.waited)
                data-text-done=(texts.done) data-text-claimed=(texts.conflict_claimed)
                data-text-conflict=(texts.conflict) data-text-failed=(texts.failed) {
                a class="skip-link" href="#main" { (texts.skip_link) }
                header class="top" {
                    a class="brand" href="/" { "Thuiswacht" }
                    nav aria-label=(texts.nav_label) {
                        a href="/" aria-current=[(current == "/").then_some("page")] { (texts.nav_worklist) }
                        @if user.role == Role::Coordinator {
                            " "
                            a href="/alarm-burden" aria-current=[(current == "/alarm-burden").then_some("page")] { (texts.nav_burden) }
                        }
                        " "
                        a href="/protocols" aria-current=[(current == "/protocols").then_some("page")] { (protocol_texts(viewer.lang).nav) }
                    }
                    p class="who" {
                        span class="sr-only" { (texts.signed_in_as) " " }
                        strong { (user.display_name) }
                        " (" (role_text(texts, user.role))
                        @if !teams.is_empty() { ", " (teams.join(", ")) }
                        ")"
                    }
                    a class="lang-switch" lang=(other.code()) hreflang=(other.code())
                        href=(format!("?lang={}", other.code())) { (texts.other_language) }
                    form class="sign-out" method="post" action="/logout" {
                        input type="hidden" name="csrf_token" value=(viewer.signed_in.session.csrf_token);
                        button type="submit" { (texts.sign_out) }
                    }
                }
                main id="main" tabindex="-1" { (main) }
                div id="announcer" class="sr-only" role="status" aria-live="polite" {}
            }
        }
    }
}

/// The page shown for a patient or alert that does not exist or is out of
/// the viewer's teams (404 either way, so existence does not leak).
pub(crate) fn not_found(viewer: &Viewer) -> Response {
    let texts = viewer.texts();
    let main = html! {
        h1 { (texts.not_found_title) }
        p { (texts.not_found_text) }
        p { a href="/" { (texts.back_to_worklist) } }
    };
    page_response(
        viewer,
        StatusCode::NOT_FOUND,
        layout(viewer, texts.not_found_title, "", main),
    )
}

/// Turns an error of a page's data into a response: 404 as the page above,
/// anything else as the API's problem detail.
pub(crate) fn page_error(viewer: &Viewer, error: ApiError) -> Response {
    match error {
        ApiError::NotFound => not_found(viewer),
        other => other.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(uri: &str, cookie: Option<&str>) -> Parts {
        let mut builder = Request::builder().uri(uri);
        if let Some(cookie) = cookie {
            builder = builder.header(header::COOKIE, cookie);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_language_comes_from_the_query_then_the_cookie_then_dutch() {
        assert_eq!(request_lang(&parts("/", None)), (Lang::Nl, false));
        assert_eq!(request_lang(&parts("/?lang=en", None)), (Lang::En, true));
        assert_eq!(
            request_lang(&parts("/", Some("a=b; thuiswacht_lang=en"))),
            (Lang::En, false)
        );
        assert_eq!(
            request_lang(&parts("/?lang=nl", Some("thuiswacht_lang=en"))),
            (Lang::Nl, true)
        );
        assert_eq!(request_lang(&parts("/?lang=xx", None)), (Lang::Nl, false));
    }

    #[test]
    fn the_login_redirect_comes_back_to_the_page_asked_for() {
        let response = login_redirect(&parts("/patients/abc?days=7", None), Lang::En);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        assert_eq!(location, "/login?next=%2Fpatients%2Fabc%3Fdays%3D7&lang=en");
    }
}
