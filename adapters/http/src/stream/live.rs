//! `GET /live`: one page that shows the most traded active markets and updates them from the
//! stream. Its files are part of the binary; a strict Content Security Policy allows nothing but
//! this origin.

use actix_web::HttpResponse;
use actix_web::http::header::{self, CacheControl, CacheDirective, HeaderValue};

/// Nothing by default; scripts, styles, images (the favicon, `data:` URLs) and connections
/// (`fetch` and the WebSocket: `connect-src 'self'` covers `ws:`/`wss:` to the same host and port)
/// from this origin only; no inline code, no framing, no forms, no base URL.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const PAGE: &str = include_str!("../../assets/live.html");
const SCRIPT: &str = include_str!("../../assets/live.js");
const STYLE: &str = include_str!("../../assets/live.css");

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .body(body)
}

/// The page.
pub async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", PAGE)
}

/// Its script.
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// Its style sheet.
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}
