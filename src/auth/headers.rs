//! Security headers on every response. Each is set only when the handler
//! did not set its own (a static file may choose its own `Cache-Control`).
//!
//! - `Content-Security-Policy`: scripts, styles, images and connections from
//!   our own origin only — no inline script or style, no framing, no
//!   `<base>`, forms post only to us. Pages must therefore keep scripts and
//!   styles in files under our origin.
//! - `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` (older
//!   browsers), `Referrer-Policy: no-referrer` (patient ids in URLs stay here),
//!   `Permissions-Policy` switching off powerful features nobody here needs,
//!   `Cross-Origin-Opener-Policy: same-origin`.
//! - `Cache-Control: no-store`: patient data must not stay in a shared
//!   workstation's browser cache or in a proxy.
//! - `Strict-Transport-Security` when `cookie_secure` says we are served
//!   over https.

use axum::http::{header, HeaderName, HeaderValue};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::settings::Settings;

/// The Content-Security-Policy of every response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

const PERMISSIONS_POLICY: &str = "camera=(), microphone=(), geolocation=(), payment=(), usb=()";

/// Returns the headers [`apply`] sets, in order.
pub fn security_headers(settings: &Settings) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = vec![
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(PERMISSIONS_POLICY),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    if settings.cookie_secure {
        headers.push((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    headers
}

/// Adds the security headers to every response of `router`.
pub fn apply<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    settings: &Settings,
) -> Router<S> {
    security_headers(settings)
        .into_iter()
        .fold(router, |router, (name, value)| {
            router.layer(SetResponseHeaderLayer::if_not_present(name, value))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_no_inline_script_or_framing() {
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self';"));
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn hsts_only_when_served_over_https() {
        let mut settings = Settings::defaults();
        let names = |settings: &Settings| -> Vec<HeaderName> {
            security_headers(settings)
                .into_iter()
                .map(|(name, _)| name)
                .collect()
        };
        assert!(!names(&settings).contains(&header::STRICT_TRANSPORT_SECURITY));
        settings.cookie_secure = true;
        assert!(names(&settings).contains(&header::STRICT_TRANSPORT_SECURITY));
    }
}
