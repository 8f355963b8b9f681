//! `GET /admin/ui`: the dashboard, a static page and script compiled into
//! the binary (no build step).
//!
//! How a browser authenticates: the page and its script hold no data and
//! are served without the key; the script asks for the admin key once (a
//! password field, or `#key=...` in the URL fragment, which browsers never
//! send to the server or put in logs; the script removes it from the
//! address bar), keeps it in `sessionStorage` (gone when the tab closes)
//! and sends it as `Authorization: Bearer` on its polls of
//! `GET /admin/overview`, which refuses without it like every `/admin/*`
//! JSON route. No cookie, so no cross-site request can ride on a session;
//! the CSP allows only same-origin script and fetches, and the script
//! writes untrusted text (plugin reasons, names) with `textContent` only.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const PAGE: &str = include_str!("ui/dashboard.html");
const SCRIPT: &str = include_str!("ui/dashboard.js");
const STYLE: &str = include_str!("ui/dashboard.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The page and its assets (no admin key: they carry no data).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/admin/ui",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/admin/ui/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/admin/ui/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
}
