//! The one-click unsubscribe endpoint (RFC 8058): `GET /u/{token}` shows a page with a button,
//! `POST /u/{token}` unsubscribes. No cookie, no login, no script: the token is the proof.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::domain::{Evidence, Unsubscribes};
use super::token::UnsubscribeLinks;
use crate::templates::domain::Channel;

/// Largest body taken: a one-click POST carries `List-Unsubscribe=One-Click`.
const MAX_BODY_BYTES: usize = 1024;

/// No script, nothing loaded from elsewhere, no framing (a hidden button is a click taken),
/// and forms post only here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Clone)]
struct Pages {
    links: Arc<UnsubscribeLinks>,
    unsubscribes: Arc<Unsubscribes>,
}

/// The endpoint's routes. Serve them with the peer's address
/// (`into_make_service_with_connect_info::<SocketAddr>`), as [`serve`] does: the address is
/// hashed into the evidence of each unsubscribe.
pub fn router(links: Arc<UnsubscribeLinks>, unsubscribes: Arc<Unsubscribes>) -> Router {
    Router::new()
        .route("/u/{token}", get(show).post(unsubscribe))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Pages {
            links,
            unsubscribes,
        })
}

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Sms => "text message",
        Channel::Webhook => "app notification",
    }
}

/// `text` safe inside HTML text and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// A whole page: `title`, then `body` (HTML, already escaped).
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex, nofollow\">\
         <title>{title}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;\
         line-height:1.5;color:#222}}\
         button{{font-size:1rem;padding:.6rem 1.4rem;border:0;border-radius:.3rem;\
         background:#222;color:#fff;cursor:pointer}}\
         </style></head><body><h1>{title}</h1>{body}</body></html>\n",
        title = escape(title),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        // The token is in the address: it goes nowhere else.
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        header::HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex"),
    );
    response
}

fn link_not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Link not found",
        "<p>This unsubscribe link is not valid. Use the link of a message we sent you, as it is \
         in the message.</p>",
    )
}

async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "<p>There is nothing here.</p>",
    )
}

/// The page a link opens: what the button unsubscribes from. Unsubscribes nothing: mail
/// scanners follow links.
async fn show(State(pages): State<Pages>, Path(token): Path<String>) -> Response {
    let Some((_, channel, purpose)) = pages.links.verify(&token) else {
        return link_not_found();
    };
    page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop receiving messages by {channel} for <strong>{purpose}</strong>?</p>\
             <form method=\"post\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>",
            channel = channel_name(channel),
            purpose = escape(&purpose),
        ),
    )
}

/// The one-click unsubscribe: any form body (RFC 8058's is `List-Unsubscribe=One-Click`), no
/// cookie, answered 200 with a page, never a redirect; again is 200 too.
async fn unsubscribe(
    State(pages): State<Pages>,
    Path(token): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    // Read, so a body over the limit is refused; what it says does not matter.
    _body: Bytes,
) -> Response {
    let Some((subject, channel, purpose)) = pages.links.verify(&token) else {
        return link_not_found();
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|agent| agent.to_str().ok());
    let evidence = Evidence::new(peer.ip(), user_agent);
    match pages
        .unsubscribes
        .unsubscribe(subject, channel, &purpose, evidence)
        .await
    {
        Ok(()) => page(
            StatusCode::OK,
            "Unsubscribed",
            &format!(
                "<p>You will no longer receive messages by {channel} for \
                 <strong>{purpose}</strong>.</p>",
                channel = channel_name(channel),
                purpose = escape(&purpose),
            ),
        ),
        Err(error) => {
            tracing::error!(error = %error, "cannot keep an unsubscribe");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "<p>We could not record your request just now. Please try again in a few \
                 minutes.</p>",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
