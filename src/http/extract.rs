//! Extractors: the request body as a JSON object, the bearer token and the authenticated user, and who
//! the client is. Each failure is an [`Error`], so every rejection uses the Strapi envelope.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, header, request::Parts};
use serde_json::{Map, Value};
use std::net::SocketAddr;

use super::AppState;
use crate::auth::{ClientInfo, Principal};
use crate::error::{Error, FieldError, Result};

/// A request body that must be a JSON object. `application/json` (and `+json` types) and HTML form
/// encoding are read, as Strapi's body parser does; an empty body is an empty object so the field
/// validation can name what is missing.
pub struct Body(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let kind = content_kind(req.headers());
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::BadRequest("Could not read the request body".into())
            }
        })?;
        read_object(kind, &bytes).map(Body)
    }
}

/// Reads a body as [`Body`] does, for a request with these headers (only `Content-Type` matters).
/// Public so the fuzz targets (`fuzz/`) reach the parser without an HTTP stack.
pub fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> Result<Map<String, Value>> {
    read_object(content_kind(headers), bytes)
}

fn read_object(kind: ContentKind, bytes: &[u8]) -> Result<Map<String, Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value = match kind {
        ContentKind::Json => serde_json::from_slice(bytes)
            .map_err(|_| Error::BadRequest("Invalid JSON in the request body".into()))?,
        ContentKind::Form => {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
                .map_err(|_| Error::BadRequest("Invalid form data in the request body".into()))?;
            Value::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            )
        }
        ContentKind::Other => {
            return Err(Error::BadRequest(
                "Unsupported Content-Type: send application/json".into(),
            ));
        }
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::BadRequest(
            "The request body must be a JSON object".into(),
        )),
    }
}

enum ContentKind {
    Json,
    Form,
    Other,
}

fn content_kind(headers: &HeaderMap) -> ContentKind {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        // curl -d without -H sends a form type; nothing at all is most likely JSON.
        return ContentKind::Json;
    };
    let Ok(value) = value.to_str() else {
        return ContentKind::Other;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        ContentKind::Json
    } else if essence == "application/x-www-form-urlencoded" {
        ContentKind::Form
    } else {
        ContentKind::Other
    }
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

/// Reads fields out of a body the way Strapi's yup schemas do (strict types, every error collected),
/// so clients get the same `details.errors` they get from Strapi.
pub struct Fields<'a> {
    body: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    pub fn new(body: &'a Map<String, Value>) -> Self {
        Self {
            body,
            errors: Vec::new(),
        }
    }

    /// A required string field. `secret` fields are never echoed back in `value`.
    pub fn string(&mut self, key: &str, secret: bool) -> Option<&'a str> {
        let echo = |v: &Value| (!secret).then(|| v.clone());
        match self.body.get(key) {
            None | Some(Value::Null) => {
                self.errors.push(FieldError::new(
                    key,
                    format!("{key} is a required field"),
                    None,
                ));
                None
            }
            Some(Value::String(s)) if s.is_empty() => {
                let v = self.body.get(key).and_then(echo);
                self.errors.push(FieldError::new(
                    key,
                    format!("{key} is a required field"),
                    v,
                ));
                None
            }
            Some(Value::String(s)) => Some(s.as_str()),
            Some(other) => {
                let shown = if secret {
                    "[hidden]".to_owned()
                } else {
                    other.to_string()
                };
                self.errors.push(FieldError::new(
                    key,
                    format!("{key} must be a `string` type, but the final value was: `{shown}`."),
                    echo(other),
                ));
                None
            }
        }
    }

    /// An optional string field: absent or null is `None`; any other non-string is an error.
    pub fn optional_string(&mut self, key: &str) -> Option<&'a str> {
        match self.body.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(other) => {
                self.errors.push(FieldError::new(
                    key,
                    format!("{key} must be a `string` type, but the final value was: `{other}`."),
                    Some(other.clone()),
                ));
                None
            }
        }
    }

    /// A required string field parsed into a validated type.
    pub fn parsed<T>(
        &mut self,
        key: &str,
        secret: bool,
        parse: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Option<T> {
        let raw = self.string(key, secret)?;
        match parse(raw) {
            Ok(v) => Some(v),
            Err(message) => {
                let value = (!secret).then(|| Value::String(raw.to_owned()));
                self.errors.push(FieldError::new(key, message, value));
                None
            }
        }
    }

    /// Records a rule that failed outside the per-field parsers (e.g. two fields that must match).
    pub fn fail(&mut self, key: &str, message: &str) {
        self.errors.push(FieldError::new(key, message, None));
    }

    /// Yup's `noUnknown()`: keys outside `allowed` are one error with an empty path.
    pub fn no_unknown(&mut self, allowed: &[&str]) {
        let unknown: Vec<&str> = self
            .body
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        if !unknown.is_empty() {
            let message = format!("this field has unspecified keys: {}", unknown.join(", "));
            self.errors.push(FieldError::new("", message, None));
        }
    }

    /// Ends validation: every collected error at once, or the values.
    pub fn finish<T>(self, values: Option<T>) -> Result<T> {
        if !self.errors.is_empty() {
            return Err(Error::Fields(self.errors));
        }
        values.ok_or_else(|| Error::internal("field missing without a validation error"))
    }
}

/// Refuses keys outside `allowed`, as Strapi 5 does for registration.
pub fn reject_unknown_keys(body: &Map<String, Value>, allowed: &[&str]) -> Result<()> {
    let unknown: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(format!(
            "Invalid parameters: {}",
            unknown.join(", ")
        )))
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

    #[test]
    fn fields_collect_every_error_in_order() {
        let body = serde_json::json!({"identifier": 123, "password": ""});
        let map = body.as_object().unwrap();
        let mut f = Fields::new(map);
        let a = f.string("identifier", false);
        let b = f.string("password", true);
        let Err(Error::Fields(errors)) = f.finish(a.zip(b)) else {
            panic!("expected field errors");
        };
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[0].message,
            "identifier must be a `string` type, but the final value was: `123`."
        );
        assert_eq!(errors[0].value, Some(serde_json::json!(123)));
        assert_eq!(errors[1].message, "password is a required field");
        assert_eq!(errors[1].value, None, "secret values are never echoed");
    }

    #[test]
    fn unknown_keys_are_listed_in_body_order() {
        let body = serde_json::json!({"username": "a", "zeta": 1, "alpha": 2});
        let err = reject_unknown_keys(body.as_object().unwrap(), &["username"]).unwrap_err();
        assert_eq!(err.to_string(), "Invalid parameters: zeta, alpha");
    }
}
