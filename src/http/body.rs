//! Request bodies: reading one (JSON, `+json` or HTML form encoding, as Strapi's body parser does) and
//! reading its fields with Strapi's exact validation messages. Each endpoint's body is one type, next
//! to its handler, that implements [`FromBody`] (how it is read) and derives `ToSchema` (how the
//! OpenAPI document describes it); a test proves the two name the same fields. Every failure is an
//! [`Error`], so every rejection uses the Strapi envelope.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde_json::{Map, Value};

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

impl Body {
    /// Reads the body as `T` under `rules`: every field error at once, in the order `T` reads them.
    pub fn read<T: FromBody>(&self, rules: T::Rules<'_>) -> Result<T> {
        let mut fields = Fields::new(&self.0);
        let value = T::from_body(&mut fields, rules);
        fields.finish(value)
    }
}

/// A body read as `T`, for the bodies that need nothing but themselves to be read (`Rules = ()`).
/// Handlers whose rules come from elsewhere (the password policy, the caller's account) take [`Body`]
/// and call [`Body::read`].
pub struct Valid<T>(pub T);

impl<S: Send + Sync, T> FromRequest<S> for Valid<T>
where
    T: for<'r> FromBody<Rules<'r> = ()>,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let body = Body::from_request(req, state).await?;
        body.read(()).map(Valid)
    }
}

/// A request body type. `from_body` reads every field through `fields` (which collects the errors,
/// so it must read them all before giving up) and returns the value only if all of them are valid.
pub trait FromBody: Sized {
    /// What reading needs besides the body: the password policy and the names a new password must
    /// not be, for instance. `()` for most bodies.
    type Rules<'r>;

    fn from_body(fields: &mut Fields<'_>, rules: Self::Rules<'_>) -> Option<Self>;
}

/// `T` under yup's `noUnknown()`, for an endpoint that refuses keys its body type does not read
/// although the type itself (shared with a lenient endpoint) allows them.
pub struct NoUnknown<T>(pub T);

impl<T: FromBody> FromBody for NoUnknown<T> {
    type Rules<'r> = T::Rules<'r>;

    fn from_body(fields: &mut Fields<'_>, rules: Self::Rules<'_>) -> Option<Self> {
        fields.no_unknown();
        T::from_body(fields, rules).map(NoUnknown)
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

/// What happens to keys a body type does not read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum UnknownKeys {
    Allowed,
    /// Yup's `noUnknown()`: one field error with an empty path, reported before the others.
    Listed,
    /// Strapi 5's registration: "Invalid parameters: …", instead of any field error.
    Refused,
}

/// Reads fields out of a body the way Strapi's yup schemas do (strict types, every error collected),
/// so clients get the same `details.errors` they get from Strapi. Remembers which keys were read, so
/// the unknown-key rules and the schema test know the body type's fields without a second list.
pub struct Fields<'a> {
    body: &'a Map<String, Value>,
    errors: Vec<FieldError>,
    /// Every key asked for, and whether it is required.
    read: Vec<(&'static str, bool)>,
    unknown: UnknownKeys,
}

impl<'a> Fields<'a> {
    pub fn new(body: &'a Map<String, Value>) -> Self {
        Self {
            body,
            errors: Vec::new(),
            read: Vec::new(),
            unknown: UnknownKeys::Allowed,
        }
    }

    fn note(&mut self, key: &'static str, required: bool) {
        if !self.read.iter().any(|(k, _)| *k == key) {
            self.read.push((key, required));
        }
    }

    /// A required string field. `secret` fields are never echoed back in `value`.
    pub fn string(&mut self, key: &'static str, secret: bool) -> Option<&'a str> {
        self.note(key, true);
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
    pub fn optional_string(&mut self, key: &'static str) -> Option<&'a str> {
        self.note(key, false);
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

    /// An optional string field read without complaint: anything but a string is `None`.
    pub fn lenient_string(&mut self, key: &'static str) -> Option<&'a str> {
        self.note(key, false);
        self.body.get(key).and_then(Value::as_str)
    }

    /// A required string field parsed into a validated type.
    pub fn parsed<T>(
        &mut self,
        key: &'static str,
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

    /// A field's text as sent, or `""`, for a rule that looks at another field (a new password must
    /// not be the username); reading it is still the job of the field's own reader.
    pub fn peek(&self, key: &str) -> &'a str {
        self.body
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Records a rule that failed outside the per-field parsers (e.g. two fields that must match).
    pub fn fail(&mut self, key: &str, message: &str) {
        self.errors.push(FieldError::new(key, message, None));
    }

    /// Yup's `noUnknown()`: keys the body type does not read are one error with an empty path,
    /// reported first.
    pub fn no_unknown(&mut self) {
        self.unknown = UnknownKeys::Listed;
    }

    /// Refuses keys the body type does not read with "Invalid parameters: …" and no field errors, as
    /// Strapi 5 does for registration.
    pub fn refuse_unknown(&mut self) {
        self.unknown = UnknownKeys::Refused;
    }

    /// Ends validation: every collected error at once, or the values.
    pub fn finish<T>(mut self, values: Option<T>) -> Result<T> {
        let unknown: Vec<&str> = self
            .body
            .keys()
            .map(String::as_str)
            .filter(|k| !self.read.iter().any(|(read, _)| read == k))
            .collect();
        if !unknown.is_empty() {
            match self.unknown {
                UnknownKeys::Allowed => {}
                UnknownKeys::Listed => {
                    let message =
                        format!("this field has unspecified keys: {}", unknown.join(", "));
                    self.errors.insert(0, FieldError::new("", message, None));
                }
                UnknownKeys::Refused => {
                    return Err(Error::Validation(format!(
                        "Invalid parameters: {}",
                        unknown.join(", ")
                    )));
                }
            }
        }
        if !self.errors.is_empty() {
            return Err(Error::Fields(self.errors));
        }
        values.ok_or_else(|| Error::internal("field missing without a validation error"))
    }
}

/// Checks that `T`'s reader and its OpenAPI schema name the same fields, the same ones required: the
/// reader is run on an empty body, where it must ask for every field it knows.
/// Returns the schema's name.
#[cfg(test)]
pub(crate) fn assert_reader_matches_schema<T>(rules: T::Rules<'_>) -> String
where
    T: FromBody + utoipa::ToSchema,
{
    use utoipa::openapi::{RefOr, Schema};
    let empty = Map::new();
    let mut fields = Fields::new(&empty);
    let _ = T::from_body(&mut fields, rules);
    let RefOr::T(Schema::Object(schema)) = T::schema() else {
        panic!("{} is not described as an object", T::name());
    };
    let mut described: Vec<&str> = schema.properties.keys().map(String::as_str).collect();
    let mut read: Vec<&str> = fields.read.iter().map(|(k, _)| *k).collect();
    described.sort_unstable();
    read.sort_unstable();
    assert_eq!(read, described, "{}: fields read vs described", T::name());
    let mut required: Vec<&str> = schema.required.iter().map(String::as_str).collect();
    let mut must: Vec<&str> = fields
        .read
        .iter()
        .filter(|(_, required)| *required)
        .map(|(k, _)| *k)
        .collect();
    required.sort_unstable();
    must.sort_unstable();
    assert_eq!(must, required, "{}: fields required", T::name());
    T::name().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_collect_every_error_in_order() {
        let body = json!({"identifier": 123, "password": ""});
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
        assert_eq!(errors[0].value, Some(json!(123)));
        assert_eq!(errors[1].message, "password is a required field");
        assert_eq!(errors[1].value, None, "secret values are never echoed");
    }

    #[test]
    fn unknown_keys_are_listed_first_or_refused_outright() {
        let body = json!({"zeta": 1, "username": 2, "alpha": 3});
        let read = |rule: fn(&mut Fields<'_>)| {
            let mut f = Fields::new(body.as_object().unwrap());
            rule(&mut f);
            let name = f.string("username", false);
            f.finish(name)
        };
        let Err(Error::Fields(errors)) = read(|f| f.no_unknown()) else {
            panic!("expected field errors");
        };
        assert_eq!(errors[0].path, Vec::<String>::new());
        assert_eq!(
            errors[0].message,
            "this field has unspecified keys: zeta, alpha"
        );
        assert!(errors[1].message.starts_with("username must be a `string`"));
        // Registration's refusal names the keys in body order and no field error.
        let err = read(|f| f.refuse_unknown()).unwrap_err();
        assert!(matches!(err, Error::Validation(_)));
        assert_eq!(err.to_string(), "Invalid parameters: zeta, alpha");
    }
}
