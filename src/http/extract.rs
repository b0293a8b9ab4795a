//! Extractors of the request's head: the bearer token and the authenticated user, who the client is,
//! and the path parameters and query string as typed values. Each failure is an [`Error`], so every
//! rejection uses the Strapi envelope. (The body's extractors are in `body.rs`.)

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{HeaderMap, header, request::Parts};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::net::SocketAddr;

use super::AppState;
use crate::auth::{ClientInfo, Principal};
use crate::error::{Error, Result};

/// The query string read as `T`, whose fields are `Option<String>`: the first value of each named
/// parameter, and nothing for one that is missing. Any query reads (invalid percent-encoding is
/// decoded lossily), so the handler or the core decides what a missing parameter means and answers
/// in the envelope.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        read_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// The route's path parameters as `T`. A segment that does not decode (percent-encoded bytes that
/// are not UTF-8) names nothing that exists: 404 in the envelope, where axum's own `Path` would
/// answer with its plain-text rejection.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|_| Error::no_route())
    }
}

fn read_query<T: DeserializeOwned>(raw: &str) -> Result<T> {
    let mut params = Map::new();
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        params
            .entry(name.into_owned())
            .or_insert_with(|| Value::String(value.into_owned()));
    }
    serde_json::from_value(Value::Object(params))
        .map_err(|_| Error::BadRequest("Invalid query string".into()))
}

/// The token of an `Authorization: Bearer <token>` header. As in Strapi, a header that is not exactly a
/// case-insensitive `Bearer` followed by one token is ignored: the request is anonymous.
///
/// A header that is a Bearer token but not valid UTF-8 is still a (bad) token: it gets a 401 like any
/// other token that fails verification, not the anonymous 403.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = String::from_utf8_lossy(headers.get(header::AUTHORIZATION)?.as_bytes());
    let mut parts = value.split_whitespace();
    let (scheme, token) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(token.to_owned())
}

/// The caller behind a valid bearer token. No token → 403 (the public role may not call the route);
/// a bad token → 401.
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer_token(&parts.headers).ok_or(Error::Forbidden)?;
        Ok(Authenticated(state.auth.authenticate(&token).await?))
    }
}

/// The caller if the request carries a bearer token (which must then be valid), else anonymous.
pub struct MaybeAuthenticated(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybeAuthenticated {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        match bearer_token(&parts.headers) {
            Some(token) => Ok(Self(Some(state.auth.authenticate(&token).await?))),
            None => Ok(Self(None)),
        }
    }
}

/// The client's address (from the socket) and user agent.
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        // Resolved by the `client_addr::resolve` middleware (trusted proxies); the socket otherwise.
        let ip = parts
            .extensions
            .get::<super::client_addr::ClientAddr>()
            .map(|a| a.0)
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ConnectInfo(addr)| addr.ip())
            })
            .map(|ip| ip.to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Client(ClientInfo { ip, user_agent }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn a_query_reads_the_first_value_of_each_parameter() {
        #[derive(serde::Deserialize)]
        struct Q {
            code: Option<String>,
            state: Option<String>,
            missing: Option<String>,
        }
        let q: Q = read_query("code=a+b%21&code=second&state=%FF&other=1").unwrap();
        assert_eq!(q.code.as_deref(), Some("a b!"));
        assert_eq!(
            q.state.as_deref(),
            Some("\u{fffd}"),
            "decoded lossily, not refused"
        );
        assert_eq!(q.missing, None);
        let empty: Q = read_query("").unwrap();
        assert_eq!(empty.code, None);
    }

    #[test]
    fn non_utf8_bearer_tokens_are_still_tokens() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff.\xfe").unwrap(),
        );
        assert!(bearer_token(&h).is_some());
    }

    #[test]
    fn bearer_parsing_follows_strapi() {
        assert_eq!(bearer_token(&auth("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(bearer_token(&auth("bearer abc")).as_deref(), Some("abc"));
        assert_eq!(
            bearer_token(&auth("BEARER   abc  ")).as_deref(),
            Some("abc")
        );
        assert_eq!(bearer_token(&auth("Token abc")), None);
        assert_eq!(bearer_token(&auth("Bearer")), None);
        assert_eq!(bearer_token(&auth("Bearer a b")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
