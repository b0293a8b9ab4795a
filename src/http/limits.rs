//! Route rate limits as middleware: Strapi's `X-RateLimit-*` headers on every limited response, and
//! `429 RateLimitError` with `Retry-After` past the limit.
//!
//! A request from a relay client (`relay_clients`) is counted under the identifier it names, so the
//! middleware reads that client's body first (within the body limit) and hands it on to the handler
//! untouched. Anyone else's body is never read here: for them a body field cannot open a bucket.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::body::parse_body;
use super::client_addr::ClientAddr;
use super::extract::Authenticated;
use crate::auth::throttle::{Decision, Key};
use crate::error::Error;

/// The API route whose bucket a request counts in when another path performs the same action: the
/// hosted reset form posts what `POST /api/auth/reset-password` does, and must not be a second,
/// unlimited way to try codes.
#[derive(Debug, Clone, Copy)]
pub struct CountAs(pub &'static str);

/// [`limit`] for the hosted reset form (`POST …/reset-password`), in the API route's bucket.
pub async fn limit_reset_form(state: State<AppState>, mut req: Request, next: Next) -> Response {
    req.extensions_mut()
        .insert(CountAs("/api/auth/reset-password"));
    limit(state, req, next).await
}

pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limiter = state.auth.limiter();
    let Some(ClientAddr(ip)) = req.extensions().get::<ClientAddr>().copied() else {
        return next.run(req).await;
    };
    if !limiter.enabled() {
        return next.run(req).await;
    }
    // The route pattern, not the raw path: `/API/auth/local/` is not a separate bucket.
    let route = match req.extensions().get::<CountAs>() {
        Some(CountAs(route)) => (*route).to_owned(),
        None => req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| req.uri().path().to_ascii_lowercase()),
    };
    // The bucket is the client's IPv6 network, not its address: one subscriber holds a whole /64.
    // The audit key too, or a flood from one network would write a row per address.
    let key = crate::auth::limit_key(ip, state.auth.settings().ipv6_prefix_len);
    let now = state.auth.now_millis();
    let (decision, req, bucket, detail) = if limiter.is_relay(ip) {
        let (req, who) = match relayed_identifier(&state, &route, req).await {
            Ok(read) => read,
            Err(e) => return e.into_response(),
        };
        let decision = limiter.hit_relay(&route, key, &who, now).await;
        // One audit record a minute per user of the relay, not one for all of them.
        let bucket = format!("{route}|{key}|{}", who.as_str());
        (decision, req, bucket, format!("{route} (relay client)"))
    } else {
        let decision = limiter.hit(&route, key, now).await;
        (decision, req, format!("{route}|{key}"), route.clone())
    };
    let mut response = if decision.allowed {
        next.run(req).await
    } else {
        tracing::warn!(%ip, route, "rate limit hit");
        let client = crate::auth::ClientInfo {
            ip: Some(ip.to_string()),
            user_agent: None,
        };
        state
            .auth
            .audit_refusal(&bucket, None, &client, &detail)
            .await;
        Error::RateLimited(decision.retry_after).into_response()
    };
    add_headers(&mut response, decision);
    response
}

/// The key a relay client's request is counted under: what names the user on each limited route,
/// trimmed, lower-cased and digested as the login throttle's keys are, so `Alice` and `alice ` share a
/// bucket and what was typed never becomes state of any size. A request that names nobody (no body,
/// a malformed one, a route without a body) shares the empty name's bucket, so leaving the field out
/// opens nothing new. Returns the request with its body restored for the handler.
async fn relayed_identifier(
    state: &AppState,
    route: &str,
    req: Request,
) -> Result<(Request, Key), Error> {
    let (mut parts, body) = req.into_parts();
    // The bearer's account, on the one route where the account comes from the token, not the body.
    if route.ends_with("/change-password") {
        let account = Authenticated::from_request_parts(&mut parts, state)
            .await
            .map(|Authenticated(who)| who.user.username.clone())
            .unwrap_or_default();
        return Ok((Request::from_parts(parts, body), relay_key(&account)));
    }
    // Read as the handler's extractor will, under the same body limit (its extension is in `parts`).
    let mut probe = Request::new(body);
    *probe.headers_mut() = parts.headers.clone();
    *probe.extensions_mut() = parts.extensions.clone();
    let bytes = Bytes::from_request(probe, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::BadRequest("Could not read the request body".into())
            }
        })?;
    let fields: &[&str] = match route.rsplit('/').next().unwrap_or("") {
        "local" => &["identifier"],
        "register" => &["email", "username"],
        "forgot-password" | "send-email-confirmation" => &["email"],
        // The code is the only thing that names the user; it is random enough that guessing codes
        // from a relay at its cap finds nothing, and one replayed code still meets the route limit.
        "reset-password" => &["code"],
        _ => &[],
    };
    let name = parse_body(&parts.headers, &bytes)
        .ok()
        .and_then(|body| {
            fields
                .iter()
                .find_map(|f| body.get(*f).and_then(|v| v.as_str()).map(str::to_owned))
        })
        .unwrap_or_default();
    Ok((
        Request::from_parts(parts, Body::from(bytes)),
        relay_key(&name),
    ))
}

fn relay_key(name: &str) -> Key {
    Key::account(&name.trim().to_lowercase())
}

fn add_headers(response: &mut Response, d: Decision) {
    let h = response.headers_mut();
    let pairs = [
        ("x-ratelimit-limit", d.limit as i64),
        ("x-ratelimit-remaining", d.remaining as i64),
        ("x-ratelimit-reset", d.reset_at),
    ];
    for (name, value) in pairs {
        h.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}
