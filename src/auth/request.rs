//! What a request says about where it comes from and what it carries: the
//! client address and user agent for the audit trail, whether it came over
//! https, the session cookie and a bearer token.
//!
//! Proxy headers are believed only with `trust_proxy_headers`: then the
//! client address is the last `X-Forwarded-For` entry (the one our proxy
//! appended; earlier entries are the client's own claims) and
//! `X-Forwarded-Proto: https` counts as https.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use cookie::{Cookie, SameSite};

use crate::api::AppState;
use crate::settings::Settings;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "thuiswacht_session";

/// User agents longer than this are cut for the audit trail.
const MAX_USER_AGENT_CHARS: usize = 256;

/// Where a request comes from, as the audit trail records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    /// The client's IP address (absent when the server was not started
    /// with connection info, as in router tests).
    pub address: Option<String>,
    pub user_agent: Option<String>,
    /// Whether the client reached us over https.
    pub https: bool,
}

impl RequestOrigin {
    /// Reads the origin of a request.
    pub fn of(parts: &Parts, settings: &Settings) -> RequestOrigin {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip().to_string());
        let forwarded_for = settings
            .trust_proxy_headers
            .then(|| header_text(&parts.headers, "x-forwarded-for"))
            .flatten()
            .and_then(|list| list.rsplit(',').next())
            .map(str::trim)
            .filter(|address| address.parse::<std::net::IpAddr>().is_ok())
            .map(str::to_owned);
        let forwarded_https = settings.trust_proxy_headers
            && header_text(&parts.headers, "x-forwarded-proto")
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
        RequestOrigin {
            address: forwarded_for.or(peer),
            user_agent: header_text(&parts.headers, header::USER_AGENT.as_str())
                .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect()),
            https: forwarded_https,
        }
    }

    /// Returns whether cookies set on this request's response must be `Secure`.
    pub fn secure_cookies(&self, settings: &Settings) -> bool {
        settings.cookie_secure || self.https
    }
}

impl FromRequestParts<AppState> for RequestOrigin {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<RequestOrigin, Infallible> {
        Ok(RequestOrigin::of(parts, &state.settings))
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Returns the session cookie's secret, if the request carries one.
pub fn session_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == SESSION_COOKIE && !cookie.value().is_empty())
        .map(|cookie| cookie.value().to_owned())
}

/// Returns the bearer token's secret, if the request carries one.
pub fn bearer_secret(headers: &HeaderMap) -> Option<&str> {
    header_text(headers, header::AUTHORIZATION.as_str())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|secret| !secret.is_empty())
}

/// Returns the `Set-Cookie` value that starts a session: `HttpOnly` (no
/// script can read it), `SameSite=Strict` (no other site can make the
/// browser send it), `Path=/`, `Secure` when asked. No `Max-Age`: the
/// browser forgets it when closed, and the server ends it anyway.
pub fn session_cookie(secret: &str, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((SESSION_COOKIE, secret.to_owned()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(secure)
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("a hex secret makes a valid header")
}

/// Returns the `Set-Cookie` value that removes the session cookie.
pub fn removal_cookie(secure: bool) -> HeaderValue {
    let cookie = Cookie::build((SESSION_COOKIE, ""))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(secure)
        .removal()
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("a removal cookie is a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(headers: &[(&str, &str)], peer: Option<&str>) -> Parts {
        let mut request = Request::builder().uri("/");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        if let Some(peer) = peer {
            parts
                .extensions
                .insert(ConnectInfo::<SocketAddr>(peer.parse().unwrap()));
        }
        parts
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_secure_when_asked() {
        let plain = session_cookie("abc123", false).to_str().unwrap().to_owned();
        assert_eq!(
            plain,
            "thuiswacht_session=abc123; HttpOnly; SameSite=Strict; Path=/"
        );
        let secure = session_cookie("abc123", true).to_str().unwrap().to_owned();
        assert!(secure.contains("; Secure"), "{secure}");
        let removal = removal_cookie(false).to_str().unwrap().to_owned();
        assert!(removal.starts_with("thuiswacht_session=;"), "{removal}");
        assert!(removal.contains("Max-Age=0"), "{removal}");
    }

    #[test]
    fn the_secret_is_found_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("lang=en; other=1"));
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("x=y; thuiswacht_session=s3cr3t"),
        );
        assert_eq!(session_secret(&headers).as_deref(), Some("s3cr3t"));
        assert_eq!(session_secret(&HeaderMap::new()), None);
        let mut empty = HeaderMap::new();
        empty.insert(
            header::COOKIE,
            HeaderValue::from_static("thuiswacht_session="),
        );
        assert_eq!(session_secret(&empty), None);
    }

    #[test]
    fn proxy_headers_count_only_when_trusted() {
        let headers = [
            ("x-forwarded-for", "203.0.113.9, 198.51.100.4"),
            ("x-forwarded-proto", "https"),
            ("user-agent", "Firefox"),
        ];
        let mut settings = Settings::defaults();
        let untrusted = RequestOrigin::of(&parts(&headers, Some("127.0.0.1:5000")), &settings);
        assert_eq!(untrusted.address.as_deref(), Some("127.0.0.1"));
        assert!(!untrusted.https);
        assert!(!untrusted.secure_cookies(&settings));
        assert_eq!(untrusted.user_agent.as_deref(), Some("Firefox"));

        settings.trust_proxy_headers = true;
        let trusted = RequestOrigin::of(&parts(&headers, Some("127.0.0.1:5000")), &settings);
        // The last entry is the one our proxy added; the first is the client's claim.
        assert_eq!(trusted.address.as_deref(), Some("198.51.100.4"));
        assert!(trusted.https);
        assert!(trusted.secure_cookies(&settings));
    }

    #[test]
    fn a_bearer_token_is_read_from_the_authorization_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_secret(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tw_abc "),
        );
        assert_eq!(bearer_secret(&headers), Some("tw_abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(bearer_secret(&headers), None);
    }
}
