//! Server-rendered pages behind the links Keyway mails: "email confirmed" and the reset-password form.
//! Plain HTML and CSS embedded in the binary; they work without JavaScript (the form posts and the
//! server answers with a page), carry a strict Content-Security-Policy, and never let the reset code in
//! their URL leak through a `Referer`.

use axum::extract::{Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashMap;

use super::AppState;
use super::extract::{Body, Client};
use crate::domain::Password;
use crate::error::Error;

const PAGE: &str = include_str!("../../web/page.html");
const STYLE: &str = include_str!("../../web/style.css");
const EMAIL_CONFIRMED: &str = include_str!("../../web/email-confirmed.html");
const RESET_FORM: &str = include_str!("../../web/reset-password.html");
const RESET_DONE: &str = include_str!("../../web/reset-done.html");
const RESET_INVALID: &str = include_str!("../../web/reset-invalid.html");

/// No script, no inline style, nothing from elsewhere; forms post only here; never framed.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// Replaces `{{name}}` with the HTML-escaped value; `{{name}}` for unknown names becomes empty.
/// Values whose name ends in `_html` are inserted as they are (they are rendered here, escaped).
fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &rest[start + 2..start + end];
        if let Some((_, value)) = vars.iter().find(|(k, _)| *k == name) {
            if name == "body" || name.ends_with("_html") {
                out.push_str(value);
            } else {
                out.push_str(&escape(value));
            }
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `body` (already filled) inside the shared frame, with the page security headers.
fn page(state: &AppState, status: StatusCode, title: &str, body: &str) -> Response {
    let html = fill(
        PAGE,
        &[
            ("title", title),
            ("app_name", state.auth.app_name()),
            ("base", "/"),
            ("body", body),
        ],
    );
    let mut response = (status, axum::response::Html(html)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// `GET /assets/style.css`.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

/// `GET /email-confirmed`: where the confirmation link lands after the redirect.
pub async fn email_confirmed(State(state): State<AppState>) -> Response {
    let body = fill(EMAIL_CONFIRMED, &[("base", "/")]);
    page(&state, StatusCode::OK, "Email confirmed", &body)
}

#[derive(Deserialize)]
pub struct CodeQuery {
    code: Option<String>,
}

/// `GET /reset-password?code=…`: the new-password form.
pub async fn reset_form(State(state): State<AppState>, Query(q): Query<CodeQuery>) -> Response {
    match q.code.filter(|c| !c.is_empty()) {
        Some(code) => reset_form_page(&state, StatusCode::OK, &code, None),
        None => invalid_link(&state),
    }
}

fn reset_form_page(
    state: &AppState,
    status: StatusCode,
    code: &str,
    error: Option<&str>,
) -> Response {
    let alert = error
        .map(|e| {
            format!(
                r#"<div class="alert error" role="alert" tabindex="-1" autofocus>{}</div>"#,
                escape(e)
            )
        })
        .unwrap_or_default();
    let min = state.auth.settings().password_min_chars.to_string();
    let body = fill(
        RESET_FORM,
        &[
            ("base", "/"),
            ("code", code),
            ("min_length", &min),
            ("alert_html", &alert),
        ],
    );
    page(state, status, "Choose a new password", &body)
}

fn invalid_link(state: &AppState) -> Response {
    let body = fill(RESET_INVALID, &[("base", "/")]);
    page(
        state,
        StatusCode::BAD_REQUEST,
        "Link no longer works",
        &body,
    )
}

/// `POST /reset-password` (the form): sets the password and answers with a page, so it works with
/// JavaScript off.
pub async fn reset_submit(
    State(state): State<AppState>,
    Client(client): Client,
    Body(body): Body,
) -> Response {
    let field = |k: &str| {
        body.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let fields: HashMap<&str, String> = ["code", "password", "passwordConfirmation"]
        .into_iter()
        .map(|k| (k, field(k)))
        .collect();
    let code = &fields["code"];
    if code.is_empty() {
        return invalid_link(&state);
    }
    if fields["password"] != fields["passwordConfirmation"] {
        return reset_form_page(
            &state,
            StatusCode::BAD_REQUEST,
            code,
            Some("The two passwords do not match."),
        );
    }
    let min = state.auth.settings().password_min_chars;
    let password = match Password::parse(&fields["password"], min) {
        Ok(p) => p,
        Err(message) => {
            let message = format!("{}{}.", &message[..1].to_uppercase(), &message[1..]);
            return reset_form_page(&state, StatusCode::BAD_REQUEST, code, Some(&message));
        }
    };
    match state.auth.reset_password(code, password, client).await {
        Ok(_) => {
            let body = fill(RESET_DONE, &[("base", "/")]);
            page(&state, StatusCode::OK, "Password changed", &body)
        }
        Err(Error::Validation(_)) => invalid_link(&state),
        Err(Error::Application(message)) => {
            reset_form_page(&state, StatusCode::BAD_REQUEST, code, Some(&message))
        }
        Err(other) => other.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_unknown_names_vanish() {
        let out = fill(
            "<p>{{name}}</p>{{missing}}<i>{{x_html}}</i>",
            &[("name", "<script>\"'&"), ("x_html", "<b>ok</b>")],
        );
        assert_eq!(out, "<p>&lt;script&gt;&quot;&#39;&amp;</p><i><b>ok</b></i>");
    }

    #[test]
    fn an_unclosed_placeholder_is_left_as_text() {
        assert_eq!(fill("a {{b", &[]), "a {{b");
    }
}
