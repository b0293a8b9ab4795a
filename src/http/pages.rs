//! The hosted login app: sign-in, the protected main page, registration and forgotten passwords, plus
//! the server-rendered pages behind mailed links (email confirmed, choose a new password). Plain HTML,
//! CSS and one script, embedded in the binary and served under a configurable base path. The pages
//! are templates (`crate::templates::pages`, which an operator may override); this file chooses the
//! template and gives it its values.
//!
//! Every page carries a strict Content-Security-Policy: scripts and styles only from here (no inline
//! code at all), requests only to here, never framed. The pages behind mailed links work without
//! JavaScript, and `Referrer-Policy: no-referrer` keeps the code in a reset link from leaking.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use minijinja::context;
use minijinja::value::Value;

use super::AppState;
use super::body::{Fields, FromBody, Valid};
use super::extract::{Client, Path, Query};
use crate::error::Error;
use crate::templates::pages::FRAME;

const STYLE: &str = include_str!("../../web/style.css");
const SCRIPT: &str = include_str!("../../web/app.js");

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

/// One page to render: the name the script knows it by, its template (`<template>.html`, the name
/// unless said otherwise), its title, and whether it runs the app script.
struct Page {
    name: &'static str,
    template: &'static str,
    title: &'static str,
    script: bool,
}

impl Page {
    const fn new(name: &'static str, title: &'static str, script: bool) -> Self {
        Self {
            name,
            template: name,
            title,
            script,
        }
    }
}

// The hosted pages. The reset pages run no script: they work without JavaScript.
const LOGIN: Page = Page::new("login", "Sign in", true);
const SSO: Page = Page {
    template: "sso-redirect",
    ..Page::new("sso", "Signing in", true)
};
const HOME: Page = Page::new("home", "Your account", true);
const REGISTER: Page = Page::new("register", "Create an account", true);
const FORGOT_PASSWORD: Page = Page::new("forgot-password", "Forgot your password?", true);
const EMAIL_CONFIRMED: Page = Page::new("email-confirmed", "Email confirmed", false);
const RESET_PASSWORD: Page = Page::new("reset-password", "Choose a new password", false);
const RESET_INVALID: Page = Page::new("reset-invalid", "Link no longer works", false);
const RESET_DONE: Page = Page::new("reset-done", "Password changed", false);

/// The variables every template may use (`templates::pages` declares them).
fn common(state: &AppState) -> Value {
    context! {
        base => state.pages.base_path.as_str(),
        app_name => state.auth.app_name(),
        logo_url => state.pages.logo_url.as_deref(),
    }
}

/// Renders the page's template with `vars` and sets it into the frame.
fn render(state: &AppState, status: StatusCode, page: Page, vars: Value) -> Response {
    let file = format!("{}.html", page.template);
    let templates = &state.page_templates;
    let html = templates
        .render(&file, context! { ..vars, ..common(state) })
        .and_then(|body| {
            let frame = context! {
                title => page.title,
                page => page.name,
                script => page.script,
                // Safe to insert as it is: the page template's output, whose values the engine
                // escaped.
                body => Value::from_safe_string(body),
                ..common(state)
            };
            templates.render(FRAME, frame)
        });
    let html = match html {
        Ok(html) => html,
        // The templates were checked at start-up; what fails here is a bug, not the visitor's doing.
        Err(e) => return Error::internal(format!("page {file}: {e}")).into_response(),
    };
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
    // A "Continue with …" link per configured provider: plain links to the API's connect route, so
    // they work without the script.
    let sso_providers: Vec<Value> = state
        .auth
        .single_sign_on()
        .buttons()
        .map(|(name, display_name)| context! { name, display_name })
        .collect();
    let vars = context! {
        allow_register => state.auth.settings().allow_register,
        sso_providers,
    };
    render(&state, StatusCode::OK, LOGIN, vars)
}

/// Where a provider's sign-in lands: the script trades the one-time code for a session (cookie mode,
/// like the sign-in form) and goes on to the main page, or shows why it failed.
async fn sso_redirect(State(state): State<AppState>, Path(provider): Path<String>) -> Response {
    let Some((name, display_name)) = state
        .auth
        .single_sign_on()
        .buttons()
        .find(|(n, _)| *n == provider)
    else {
        return Error::no_route().into_response();
    };
    let vars = context! { provider => name, display_name };
    render(&state, StatusCode::OK, SSO, vars)
}

async fn home(State(state): State<AppState>) -> Response {
    render(&state, StatusCode::OK, HOME, context! {})
}

async fn register(State(state): State<AppState>) -> Response {
    if !state.auth.settings().allow_register {
        return Error::no_route().into_response();
    }
    let vars = context! { min_length => state.auth.settings().password_min_chars };
    render(&state, StatusCode::OK, REGISTER, vars)
}

async fn forgot(State(state): State<AppState>) -> Response {
    render(&state, StatusCode::OK, FORGOT_PASSWORD, context! {})
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
    render(&state, StatusCode::OK, EMAIL_CONFIRMED, context! {})
}

#[derive(Deserialize)]
struct CodeQuery {
    code: Option<String>,
}

/// `GET …/reset-password?code=…`: the new-password form.
async fn reset_form(
    State(state): State<AppState>,
    // Keyway's reader, not axum's: any query string reads (the first `code` wins), where axum's
    // would answer a repeated parameter with its own plain-text rejection.
    Query(q): Query<CodeQuery>,
) -> Response {
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
    let vars = context! {
        code,
        min_length => state.auth.settings().password_min_chars,
        error,
    };
    render(state, status, RESET_PASSWORD, vars)
}

fn invalid_link(state: &AppState) -> Response {
    render(state, StatusCode::BAD_REQUEST, RESET_INVALID, context! {})
}

/// The reset form's fields; the page answers for a missing or wrong one, so any of them may be empty.
struct ResetForm {
    code: String,
    password: String,
    confirmation: String,
}

impl FromBody for ResetForm {
    type Rules<'r> = ();

    fn from_body(fields: &mut Fields<'_>, (): ()) -> Option<Self> {
        let mut field = |k| fields.lenient_string(k).unwrap_or_default().to_owned();
        let (code, password, confirmation) = (
            field("code"),
            field("password"),
            field("passwordConfirmation"),
        );
        Some(Self {
            code,
            password,
            confirmation,
        })
    }
}

/// `POST …/reset-password` (the form): sets the password and answers with a page, so it works with
/// JavaScript off.
async fn reset_submit(
    State(state): State<AppState>,
    Client(client): Client,
    Valid(form): Valid<ResetForm>,
) -> Response {
    let (code, password, confirmation) = (
        form.code.as_str(),
        form.password.as_str(),
        form.confirmation.as_str(),
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
    match state
        .auth
        .accounts()
        .reset_password(code, password, client)
        .await
    {
        Ok(_) => render(&state, StatusCode::OK, RESET_DONE, context! {}),
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
