//! The pages' stylesheet and script, compiled into the binary and served at
//! `/assets/{file}`. Public (the login page uses the stylesheet too) and
//! cacheable for a few minutes; they hold no data.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");
const PROTOCOLS_JS: &str = include_str!("assets/protocols.js");
const FAVICON: &str = include_str!("assets/favicon.svg");

/// How long browsers may keep an asset: short, so an upgrade shows soon.
const CACHE_CONTROL: &str = "public, max-age=300";

pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "protocols.js" => (PROTOCOLS_JS, "text/javascript; charset=utf-8"),
        "favicon.svg" => (FAVICON, "image/svg+xml"),
        _ => return crate::api::ApiError::NotFound.into_response(),
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    response
}

/// `GET /favicon.ico`, which browsers ask for by themselves: the same icon.
pub async fn favicon() -> Response {
    serve(Path("favicon.svg".to_owned())).await
}
