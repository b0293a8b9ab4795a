//! Route rate limits as middleware: Strapi's `X-RateLimit-*` headers on every limited response, and
//! `429 RateLimitError` with `Retry-After` past the limit.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::client::ClientAddr;
use crate::auth::throttle::Decision;
use crate::error::Error;

pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limiter = state.auth.limiter();
    let Some(ClientAddr(ip)) = req.extensions().get::<ClientAddr>().copied() else {
        return next.run(req).await;
    };
    if !limiter.enabled() {
        return next.run(req).await;
    }
    // The route pattern, not the raw path: `/API/auth/local/` is not a separate bucket.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_ascii_lowercase());
    // The bucket is the client's IPv6 network, not its address: one subscriber holds a whole /64.
    // The audit key too, or a flood from one network would write a row per address.
    let key = crate::auth::limit_key(ip, state.auth.settings().ipv6_prefix_len);
    let decision = limiter.hit(&route, key, state.auth.now_millis()).await;
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
            .audit_refusal(&format!("{route}|{key}"), None, &client, &route)
            .await;
        Error::RateLimited(decision.retry_after).into_response()
    };
    add_headers(&mut response, decision);
    response
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
