//! The hosted login app: sign-in, the protected main page, registration and forgotten passwords, plus
//! the server-rendered pages behind mailed links (email confirmed, choose a new password). Plain HTML,
//! CSS and one script, embedded in the binary and served under a configurable base path.
//!
//! Every page carries a strict Content-Security-Policy: scripts and styles only from here (no inline
//! code at all), requests only to here, never framed. The pages behind mailed links work without
//! JavaScript, and `Referrer-Policy: no-referrer` keeps the code in a reset link from leaking.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::AppState;
use super::extract::{Body, Client};
use crate::error::Error;

const FRAME: &str = include_str!("../../web/page.html");
const STYLE: &str = include_str!("../../web/style.css");
const SCRIPT: &str = include_str!("../../web/app.js");
const LOGIN: &str = include_str!("../../web/login.html");
const HOME: &str = include_str!("../../web/home.html");
const REGISTER: &str = include_str!("../../web/register.html");
const FORGOT: &str = include_str!("../../web/forgot-password.html");
const EMAIL_CONFIRMED: &str = include_str!("../../web/email-confirmed.html");
const RESET_FORM: &str = include_str!("../../web/reset-password.html");
const RESET_DONE: &str = include_str!("../../web/reset-done.html");
const RESET_INVALID: &str = include_str!("../../web/reset-invalid.html");
const SSO_REDIRECT: &str = include_str!("../../web/sso-redirect.html");

/// The pages, with paths relative to the base path. The reset form's post is route-limited in the
/// API route's bucket (it performs the same reset).
pub fn router(state: &AppState) -> Router<AppState> {
    let reset_submit = post(reset_submit).route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        super::limits::limit_reset_form,
    ));
    Router::new()
        .route("/", get(login))
        .route("/home", get(home))
        .route("/register", get(register))
        .route("/forgot-password", get(forgot))
        .route("/reset-password", reset_submit.get(reset_form))
        .route("/email-confirmed", get(email_confirmed))
        .route("/connect/{provider}/redirect", get(sso_redirect))
        .route("/assets/style.css", get(stylesheet))
        .route("/assets/theme.css", get(theme))
        .route("/assets/app.js", get(script))
}

/// Replaces `{{name}}` with the HTML-escaped value; unknown names become empty. Values whose name
/// ends in `_html` (and the frame's `body`) are inserted as they are: they were rendered here.
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

pub use crate::auth::mail::html_escape as escape;

/// One page to render: which, its title, whether it runs the app script, and its filled body.
struct Page<'a> {
    name: &'a str,
    title: &'a str,
    script: bool,
    body: &'a str,
}

/// The variables every page body may use.
fn common<'a>(state: &'a AppState, logo_html: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("base", state.pages.base_path.as_str()),
        ("app_name", state.auth.app_name()),
        ("logo_html", logo_html),
    ]
}

fn logo_html(state: &AppState) -> String {
    state
        .pages
        .logo_url
        .as_deref()
        .map(|url| format!(r#"<img src="{}" alt="">"#, escape(url)))
        .unwrap_or_default()
}

fn render(state: &AppState, status: StatusCode, page: Page<'_>) -> Response {
    let base = state.pages.base_path.as_str();
    let script = if page.script {
        format!(
            r#"<script src="{}assets/app.js" defer></script>"#,
            escape(base)
        )
    } else {
        String::new()
    };
    let html = fill(
        FRAME,
        &[
            ("title", page.title),
            ("app_name", state.auth.app_name()),
            ("base", base),
            ("page", page.name),
            ("script_html", &script),
            ("body", page.body),
        ],
    );
    let mut response = (status, axum::response::Html(html)).into_response();
    let h = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&csp(state)) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
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

/// Scripts, styles and requests only from this origin; images also from the logo's origin.
fn csp(state: &AppState) -> String {
    let logo_origin = state
        .pages
        .logo_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| format!(" {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:{logo_origin}; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

pub(super) async fn login(State(state): State<AppState>) -> Response {
    let register_link = if state.auth.settings().allow_register {
        format!(
            r#"<a href="{}register">Create an account</a>"#,
            escape(&state.pages.base_path)
        )
    } else {
        String::new()
    };
    let logo = logo_html(&state);
    let sso = sso_buttons(&state);
    let mut vars = common(&state, &logo).to_vec();
    vars.push(("register_link_html", &register_link));
    vars.push(("sso_html", &sso));
    let body = fill(LOGIN, &vars);
    let page = Page {
        name: "login",
        title: "Sign in",
        script: true,
        body: &body,
    };
    render(&state, StatusCode::OK, page)
}

/// A "Continue with …" link per configured provider: plain links to the API's connect route, so they
/// work without the script.
fn sso_buttons(state: &AppState) -> String {
    let buttons: String = state
        .auth
        .sso()
        .buttons()
        .map(|(name, display)| {
            format!(
                r#"<a class="button sso" data-provider="{n}" href="/api/connect/{n}">Continue with {d}</a>"#,
                n = escape(name),
                d = escape(display),
            )
        })
        .collect();
    if buttons.is_empty() {
        String::new()
    } else {
        format!(r#"<div class="sso-options"><p class="or">or</p>{buttons}</div>"#)
    }
}

/// Where a provider's sign-in lands: the script trades the one-time code for a session (cookie mode,
/// like the sign-in form) and goes on to the main page, or shows why it failed.
async fn sso_redirect(
    State(state): State<AppState>,
    axum::extract::Path(provider): axum::extract::Path<String>,
) -> Response {
    let Some((name, display)) = state.auth.sso().buttons().find(|(n, _)| *n == provider) else {
        return Error::NotFound("Not Found".into()).into_response();
    };
    let logo = logo_html(&state);
    let mut vars = common(&state, &logo).to_vec();
    vars.push(("provider", name));
    vars.push(("display_name", display));
    let body = fill(SSO_REDIRECT, &vars);
    let page = Page {
        name: "sso",
        title: "Signing in",
        script: true,
        body: &body,
    };
    render(&state, StatusCode::OK, page)
}

async fn home(State(state): State<AppState>) -> Response {
    let logo = logo_html(&state);
    let body = fill(HOME, &common(&state, &logo));
    let page = Page {
        name: "home",
        title: "Your account",
        script: true,
        body: &body,
    };
    render(&state, StatusCode::OK, page)
}

async fn register(State(state): State<AppState>) -> Response {
    if !state.auth.settings().allow_register {
        return Error::NotFound("Not Found".into()).into_response();
    }
    let logo = logo_html(&state);
    let min = state.auth.settings().password_min_chars.to_string();
    let mut vars = common(&state, &logo).to_vec();
    vars.push(("min_length", &min));
    let body = fill(REGISTER, &vars);
    let page = Page {
        name: "register",
        title: "Create an account",
        script: true,
        body: &body,
    };
    render(&state, StatusCode::OK, page)
}

async fn forgot(State(state): State<AppState>) -> Response {
    let logo = logo_html(&state);
    let body = fill(FORGOT, &common(&state, &logo));
    let page = Page {
        name: "forgot-password",
        title: "Forgot your password?",
        script: true,
        body: &body,
    };
    render(&state, StatusCode::OK, page)
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLE.to_owned())
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT.to_owned())
}

/// The configured accent colour, as a stylesheet (inline styles are forbidden by the CSP).
async fn theme(State(state): State<AppState>) -> Response {
    let css = match &state.pages.accent_color {
        Some(color) => format!(":root {{ --accent: {color}; }}\n"),
        None => String::new(),
    };
    asset("text/css; charset=utf-8", css)
}

fn asset(content_type: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Where the confirmation link lands after the redirect.
async fn email_confirmed(State(state): State<AppState>) -> Response {
    let body = fill(EMAIL_CONFIRMED, &[("base", state.pages.base_path.as_str())]);
    let page = Page {
        name: "email-confirmed",
        title: "Email confirmed",
        script: false,
        body: &body,
    };
    render(&state, StatusCode::OK, page)
}

#[derive(Deserialize)]
struct CodeQuery {
    code: Option<String>,
}

/// `GET …/reset-password?code=…`: the new-password form.
async fn reset_form(State(state): State<AppState>, Query(q): Query<CodeQuery>) -> Response {
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
            ("base", state.pages.base_path.as_str()),
            ("code", code),
            ("min_length", &min),
            ("alert_html", &alert),
        ],
    );
    let page = Page {
        name: "reset-password",
        title: "Choose a new password",
        script: false,
        body: &body,
    };
    render(state, status, page)
}

fn invalid_link(state: &AppState) -> Response {
    let body = fill(RESET_INVALID, &[("base", state.pages.base_path.as_str())]);
    let page = Page {
        name: "reset-invalid",
        title: "Link no longer works",
        script: false,
        body: &body,
    };
    render(state, StatusCode::BAD_REQUEST, page)
}

/// `POST …/reset-password` (the form): sets the password and answers with a page, so it works with
/// JavaScript off.
async fn reset_submit(
    State(state): State<AppState>,
    Client(client): Client,
    Body(body): Body,
) -> Response {
    let field = |k: &str| body.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let (code, password, confirmation) = (
        field("code"),
        field("password"),
        field("passwordConfirmation"),
    );
    if code.is_empty() {
        return invalid_link(&state);
    }
    if password != confirmation {
        let message = "The two passwords do not match.";
        return reset_form_page(&state, StatusCode::BAD_REQUEST, code, Some(message));
    }
    let sentence = |m: &str| format!("{}{}.", &m[..1].to_uppercase(), &m[1..]);
    let password = match state.auth.password_policy().parse(password, &[]) {
        Ok(p) => p,
        Err(message) => {
            let message = sentence(&message);
            return reset_form_page(&state, StatusCode::BAD_REQUEST, code, Some(&message));
        }
    };
    match state.auth.reset_password(code, password, client).await {
        Ok(_) => {
            let body = fill(RESET_DONE, &[("base", state.pages.base_path.as_str())]);
            let page = Page {
                name: "reset-done",
                title: "Password changed",
                script: false,
                body: &body,
            };
            render(&state, StatusCode::OK, page)
        }
        Err(Error::Validation(_)) => invalid_link(&state),
        // The policy, with what only the core knows (the account's name, the online check).
        Err(Error::Fields(errors)) if !errors.is_empty() => {
            let message = sentence(&errors[0].message);
            reset_form_page(&state, StatusCode::BAD_REQUEST, code, Some(&message))
        }
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

    #[test]
    fn every_template_placeholder_is_known() {
        // A typo in a template would silently render as nothing; list what each may use.
        let known = [
            "base",
            "app_name",
            "logo_html",
            "register_link_html",
            "sso_html",
            "provider",
            "display_name",
            "min_length",
            "code",
            "alert_html",
            "title",
            "page",
            "script_html",
            "body",
        ];
        for template in [
            FRAME,
            LOGIN,
            HOME,
            REGISTER,
            FORGOT,
            EMAIL_CONFIRMED,
            RESET_FORM,
            RESET_DONE,
            RESET_INVALID,
            SSO_REDIRECT,
        ] {
            let mut rest = template;
            while let Some(start) = rest.find("{{") {
                let end = rest[start..].find("}}").expect("closed placeholder");
                let name = &rest[start + 2..start + end];
                assert!(known.contains(&name), "unknown placeholder {{{{{name}}}}}");
                rest = &rest[start + end + 2..];
            }
        }
    }
}
