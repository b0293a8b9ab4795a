//! The account lifecycle over real SMTP: email confirmation, forgotten passwords, the pages behind the
//! mailed links (the contract's tests §5 H, the reset half of §5 G), and what Keyway adds: codes that
//! expire, work once, and end every session when they reset a password.

use crate::helpers::*;
use crate::smtp::{Email, SmtpSink};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;

/// An app that mails through `sink`, with links under `public`.
pub(crate) async fn app_with_mail(
    sink: &SmtpSink,
    change: impl FnOnce(&mut keyway::Config),
) -> TestApp {
    let url = sink.url();
    TestApp::spawn_with(move |c| {
        c.mail.smtp_url = Some(SecretString::from(url));
        c.mail.public_url = "https://auth.example.com".into();
        change(c);
    })
    .await
}

/// The value of `name=` in the first link of a mail's plain text.
fn param_in_link(mail: &Email, name: &str) -> String {
    let key = format!("{name}=");
    let start = mail.text.find(&key).expect("link with the parameter") + key.len();
    mail.text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// Waits (bounded) for a mail to `to` whose subject contains `about`, besides any earlier ones.
/// Chosen by content, not position: two mails delivered in one second have no reliable order.
async fn mail_about(sink: &SmtpSink, to: &str, about: &str, skip: &[&str]) -> Email {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = sink.all().into_iter().find(|m| {
            m.to.eq_ignore_ascii_case(to)
                && m.subject.to_lowercase().contains(about)
                && !skip.iter().any(|code| m.text.contains(code))
        });
        if let Some(mail) = found {
            return mail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no mail to {to} about {about:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn confirm(app: &TestApp, code: &str) -> reqwest::Response {
    no_redirects()
        .get(app.url(&format!("/api/auth/email-confirmation?confirmation={code}")))
        .send()
        .await
        .unwrap()
}

pub(crate) async fn reset(app: &TestApp, code: &str, password: &str) -> reqwest::Response {
    app.post(
        "/api/auth/reset-password",
        json!({"code": code, "password": password, "passwordConfirmation": password}),
    )
    .await
}

/// Asks for a reset of `name`'s password and returns the code from the mail.
pub(crate) async fn reset_code(app: &TestApp, sink: &SmtpSink, name: &str) -> String {
    let res = app
        .post(
            "/api/auth/forgot-password",
            json!({ "email": format!("{name}@example.com") }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mail = mail_about(sink, &format!("{name}@example.com"), "reset", &[]).await;
    param_in_link(&mail, "code")
}

async fn register(app: &TestApp, name: &str) -> reqwest::Response {
    app.post(
        "/api/auth/local/register",
        json!({"username": name, "email": format!("{name}@example.com"), "password": password_of(name)}),
    )
    .await
}

// ---- §5 H: email confirmation ----

#[tokio::test]
async fn registering_with_confirmation_mails_a_link_that_confirms() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |c| c.auth.email_confirmation = true).await;
    let res = register(&app, "nina").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("jwt").is_none());
    assert_eq!(body["user"]["confirmed"], false);
    assert!(body["user"]["id"].is_i64());

    let mail = sink.wait_for("nina@example.com").await;
    assert!(
        mail.subject.to_lowercase().contains("confirm"),
        "{}",
        mail.subject
    );
    assert!(
        mail.text
            .contains("https://auth.example.com/api/auth/email-confirmation?confirmation="),
        "{}",
        mail.text
    );
    assert!(mail.html.contains("email-confirmation?confirmation="));
    assert_error(
        app.login("nina", "nina-password").await,
        400,
        "ApplicationError",
        "Your account email is not confirmed",
    )
    .await;

    let res = confirm(&app, &param_in_link(&mail, "confirmation")).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        res.headers()["location"],
        "https://auth.example.com/email-confirmed"
    );
    let res = app.login("nina", "nina-password").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["confirmed"], true);
}

#[tokio::test]
async fn the_confirmation_redirect_is_configurable() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |c| {
        c.auth.email_confirmation = true;
        c.auth.confirmation_redirect = Some("https://app.example.com/welcome".into());
    })
    .await;
    register(&app, "olga").await;
    let mail = sink.wait_for("olga@example.com").await;
    let res = confirm(&app, &param_in_link(&mail, "confirmation")).await;
    assert_eq!(res.headers()["location"], "https://app.example.com/welcome");
}

#[tokio::test]
async fn confirmation_codes_are_single_use_and_unknown_ones_refused() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |c| c.auth.email_confirmation = true).await;
    register(&app, "pia").await;
    let code = param_in_link(&sink.wait_for("pia@example.com").await, "confirmation");
    assert_eq!(confirm(&app, &code).await.status(), StatusCode::FOUND);
    for bad in [code.as_str(), "not-a-code"] {
        assert_error(
            confirm(&app, bad).await,
            400,
            "ValidationError",
            "Invalid token",
        )
        .await;
    }
    let res = no_redirects()
        .get(app.url("/api/auth/email-confirmation"))
        .send()
        .await
        .unwrap();
    assert_error(
        res,
        400,
        "ValidationError",
        "confirmation is a required field",
    )
    .await;
}

const INVALID_TOKEN: &str = "Missing or invalid credentials";

/// The documented lifetimes (README `confirmation_code_ttl`, `reset_code_ttl`). A code works once,
/// so each boundary takes two accounts whose codes were issued at the same instant of a frozen
/// clock: one used a millisecond before the end, the other at it.
const CONFIRMATION_TTL: Duration = Duration::from_secs(24 * 3600);
const RESET_TTL: Duration = Duration::from_secs(3600);
const MS: Duration = Duration::from_millis(1);

#[tokio::test]
async fn confirmation_codes_expire_after_a_day() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |c| c.auth.email_confirmation = true).await;
    app.clock.freeze();
    register(&app, "quinn").await;
    register(&app, "paula").await;
    let late = param_in_link(&sink.wait_for("quinn@example.com").await, "confirmation");
    let in_time = param_in_link(&sink.wait_for("paula@example.com").await, "confirmation");

    app.clock.advance(CONFIRMATION_TTL - MS);
    let res = confirm(&app, &in_time).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        res.headers()["location"],
        "https://auth.example.com/email-confirmed"
    );
    app.clock.advance(MS);
    assert_error(
        confirm(&app, &late).await,
        400,
        "ValidationError",
        "Invalid token",
    )
    .await;
    assert_eq!(app.login("paula", "paula-password").await.status(), 200);
    assert_error(
        app.login("quinn", "quinn-password").await,
        400,
        "ApplicationError",
        "Your account email is not confirmed",
    )
    .await;
}

#[tokio::test]
async fn a_resend_replaces_the_code() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |c| c.auth.email_confirmation = true).await;
    register(&app, "rosa").await;
    let stale = param_in_link(&sink.wait_for("rosa@example.com").await, "confirmation");
    let res = app
        .post(
            "/api/auth/send-email-confirmation",
            json!({"email": "rosa@example.com"}),
        )
        .await;
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"email": "rosa@example.com", "sent": true})
    );
    let fresh = param_in_link(
        &mail_about(&sink, "rosa@example.com", "confirm", &[&stale]).await,
        "confirmation",
    );
    assert_ne!(stale, fresh);
    assert_error(
        confirm(&app, &stale).await,
        400,
        "ValidationError",
        "Invalid token",
    )
    .await;
    assert_eq!(confirm(&app, &fresh).await.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn a_failed_confirmation_mail_is_reported_and_the_account_kept() {
    // SMTP that nobody answers: the registration is kept, the mail failure is reported as Strapi does,
    // and once mail works again a resend completes the confirmation.
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(|c| {
        c.auth.email_confirmation = true;
        c.mail.smtp_url = Some(SecretString::from("smtp://127.0.0.1:9"));
        c.mail.attempts = 1;
    })
    .await;
    assert_error(
        register(&app, "sami").await,
        400,
        "ApplicationError",
        "Error sending confirmation email",
    )
    .await;
    let kept: i64 = with_db!(app.db().await, |db| sqlx::query_scalar(
        "SELECT COUNT(*) FROM users WHERE username = 'sami'"
    )
    .fetch_one(db)
    .await
    .unwrap());
    assert_eq!(kept, 1);

    let mut config = app.config.clone();
    config.mail.smtp_url = Some(SecretString::from(sink.url()));
    let app = app.restart_with(config).await;
    app.post(
        "/api/auth/send-email-confirmation",
        json!({"email": "sami@example.com"}),
    )
    .await;
    let code = param_in_link(&sink.wait_for("sami@example.com").await, "confirmation");
    assert_eq!(confirm(&app, &code).await.status(), StatusCode::FOUND);
    assert_eq!(
        app.login("sami", "sami-password").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn send_email_confirmation_says_the_same_for_every_address() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |_| {}).await.with_user("tara").await;
    // Unconfirmed, so only the block can be what keeps the mail from her.
    app.create_user("bella", |u| {
        u.confirmed = false;
        u.blocked = true;
    })
    .await;
    app.create_user("una", |u| u.confirmed = false).await;
    for email in [
        "tara@example.com",
        "Nobody@Example.com",
        "bella@example.com",
        "una@example.com",
    ] {
        let res = app
            .post(
                "/api/auth/send-email-confirmation",
                json!({ "email": email }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"email": email, "sent": true})
        );
    }
    let sent = sink.settle(&app).await;
    let to: Vec<_> = sent.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(
        to,
        ["una@example.com"],
        "only una is unconfirmed and unblocked: tara is confirmed, nobody does not exist, bella \
         is blocked"
    );
    assert!(sent[0].subject.to_lowercase().contains("confirm"));
}

/// `smtp+starttls://` against a server without STARTTLS: a registration that must mail reports the
/// failure (without its cause), a reset request answers as ever, and neither message was sent.
#[tokio::test]
async fn with_starttls_required_nothing_goes_to_a_server_without_it() {
    let sink = SmtpSink::start().await;
    let port = sink.url().rsplit(':').next().unwrap().to_owned();
    let app = TestApp::spawn_with(|c| {
        c.auth.email_confirmation = true;
        c.mail.smtp_url = Some(SecretString::from(format!(
            "smtp+starttls://127.0.0.1:{port}"
        )));
        c.mail.public_url = "https://auth.example.com".into();
    })
    .await
    .with_user("ivy")
    .await;
    assert_error(
        register(&app, "ian").await,
        400,
        "ApplicationError",
        "Error sending confirmation email",
    )
    .await;
    let res = app
        .post(
            "/api/auth/forgot-password",
            json!({"email": "ivy@example.com"}),
        )
        .await;
    assert_eq!(res.text().await.unwrap(), r#"{"ok":true}"#);
    // The reset mail's attempt is over; then a sentinel from an app with plain SMTP arrives alone.
    crate::smtp::wait_idle(&app).await;
    let plain = app_with_mail(&sink, |_| {}).await;
    let sent = sink.settle(&plain).await;
    assert!(sent.is_empty(), "{sent:?}");
}

// ---- forgotten passwords ----

#[tokio::test]
async fn forgot_password_answers_ok_for_any_address_and_mails_only_accounts() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |_| {}).await.with_user("uma").await;
    for email in ["nobody@example.com", "uma@example.com"] {
        let res = app
            .post("/api/auth/forgot-password", json!({ "email": email }))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.text().await.unwrap(), r#"{"ok":true}"#);
    }
    let mail = sink.wait_for("uma@example.com").await;
    assert!(
        mail.text
            .contains("https://auth.example.com/reset-password?code=")
    );
    let sent = sink.settle(&app).await;
    assert_eq!(sent.len(), 1, "no mail for an unknown address: {sent:?}");
}

#[tokio::test]
async fn forgot_password_validates_like_strapi() {
    let app = TestApp::spawn().await;
    let res = app
        .post(
            "/api/auth/forgot-password",
            json!({"email": "not-an-email"}),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"data":null,"error":{"status":400,"name":"ValidationError","message":"email must be a valid email","details":{"errors":[{"path":["email"],"message":"email must be a valid email","name":"ValidationError","value":"not-an-email"}]}}}"#,
        "exactly Strapi 5.54's recorded answer"
    );
    assert_error(
        app.post(
            "/api/auth/forgot-password",
            json!({"email": "a@example.com", "url": "https://evil.example"}),
        )
        .await,
        400,
        "ValidationError",
        "this field has unspecified keys: url",
    )
    .await;
}

#[tokio::test]
async fn blocked_accounts_get_no_reset_mail() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |_| {}).await;
    app.create_user("vic", |u| u.blocked = true).await;
    let res = app
        .post(
            "/api/auth/forgot-password",
            json!({"email": "vic@example.com"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let sent = sink.settle(&app).await;
    assert!(sent.is_empty(), "{sent:?}");
}

#[tokio::test]
async fn a_reset_sets_the_password_ends_old_sessions_and_tells_the_owner() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |_| {}).await.with_user("wes").await;
    // Two sessions that both refreshed before the reset (§5 G).
    let mut olds = Vec::new();
    for _ in 0..2 {
        let body: Value = app.login("wes", "wes-password").await.json().await.unwrap();
        let refreshed: Value = app
            .post(
                "/api/auth/refresh",
                json!({"refreshToken": body["refreshToken"]}),
            )
            .await
            .json()
            .await
            .unwrap();
        olds.push((
            refreshed["jwt"].as_str().unwrap().to_owned(),
            refreshed["refreshToken"].as_str().unwrap().to_owned(),
        ));
    }

    let code = reset_code(&app, &sink, "wes").await;
    let res = reset(&app, &code, "a-whole-new-password").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "wes");
    let new_jwt = body["jwt"].as_str().unwrap();
    let new_refresh = body["refreshToken"].as_str().unwrap();
    assert_eq!(app.me(new_jwt).await.status(), StatusCode::OK);
    let res = app
        .post("/api/auth/refresh", json!({"refreshToken": new_refresh}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    for (jwt, refresh) in &olds {
        assert_error(app.me(jwt).await, 401, "UnauthorizedError", INVALID_TOKEN).await;
        assert_error(
            app.post("/api/auth/refresh", json!({"refreshToken": refresh}))
                .await,
            401,
            "UnauthorizedError",
            "Invalid refresh token",
        )
        .await;
    }
    assert_eq!(
        app.login("wes", "a-whole-new-password").await.status(),
        StatusCode::OK
    );
    assert_invalid_login(app.login("wes", "wes-password").await).await;

    // The owner hears about it: the reset mail first, then the notice.
    let notice = mail_about(&sink, "wes@example.com", "changed", &[]).await;
    assert_eq!(notice.to, "wes@example.com");
    assert!(
        notice.subject.to_lowercase().contains("password"),
        "{}",
        notice.subject
    );
    assert!(!notice.text.contains(&code), "the notice carries no code");
}

#[tokio::test]
async fn reset_codes_work_once() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |_| {}).await.with_user("xena").await;
    let code = reset_code(&app, &sink, "xena").await;
    assert_eq!(reset(&app, &code, "first-new-pass").await.status(), 200);
    assert_error(
        reset(&app, &code, "second-new-pass").await,
        400,
        "ValidationError",
        "Incorrect code provided",
    )
    .await;
    assert_eq!(
        app.login("xena", "first-new-pass").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn reset_codes_expire_after_an_hour() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |_| {})
        .await
        .with_user("yuri")
        .await
        .with_user("zora")
        .await;
    app.clock.freeze();
    let code = reset_code(&app, &sink, "yuri").await;
    let in_time = reset_code(&app, &sink, "zora").await;
    app.clock.advance(RESET_TTL - MS);
    assert_eq!(reset(&app, &in_time, "just-in-time").await.status(), 200);
    assert_eq!(app.login("zora", "just-in-time").await.status(), 200);
    app.clock.advance(MS);
    assert_error(
        reset(&app, &code, "too-late-pass").await,
        400,
        "ValidationError",
        "Incorrect code provided",
    )
    .await;
    assert_eq!(
        app.login("yuri", "yuri-password").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_new_reset_request_kills_the_previous_code() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |_| {}).await.with_user("zoe").await;
    let first = reset_code(&app, &sink, "zoe").await;
    app.post(
        "/api/auth/forgot-password",
        json!({"email": "zoe@example.com"}),
    )
    .await;
    let second = param_in_link(
        &mail_about(&sink, "zoe@example.com", "reset", &[&first]).await,
        "code",
    );
    assert_error(
        reset(&app, &first, "new-pass-one").await,
        400,
        "ValidationError",
        "Incorrect code provided",
    )
    .await;
    assert_eq!(reset(&app, &second, "new-pass-two").await.status(), 200);
}

#[tokio::test]
async fn reset_codes_are_stored_only_as_hashes() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |_| {}).await.with_user("abe").await;
    let code = reset_code(&app, &sink, "abe").await;
    assert!(code.len() >= 43, "≥256 bits: {code}");
    let stored: Vec<String> = with_db!(app.db().await, |db| sqlx::query_scalar(
        "SELECT hash FROM one_time_codes"
    )
    .fetch_all(db)
    .await
    .unwrap());
    assert_eq!(stored, [keyway::auth::sessions::hash_token(&code)]);
}

/// Strapi's two email schemas: forgot-password's has `noUnknown()`, send-email-confirmation's does
/// not; each reports a missing address once.
#[tokio::test]
async fn email_bodies_follow_strapi() {
    let app = TestApp::spawn().await;
    let missing = "email is a required field";
    let once = json!([{"path": ["email"], "message": missing, "name": "ValidationError"}]);
    for path in [
        "/api/auth/forgot-password",
        "/api/auth/send-email-confirmation",
    ] {
        let err = assert_error(
            app.post(path, json!({})).await,
            400,
            "ValidationError",
            missing,
        )
        .await;
        assert_eq!(err["details"]["errors"], once, "{path}");
    }
    let extra = json!({"email": "Nobody@Example.com", "extra": 1});
    let err = assert_error(
        app.post("/api/auth/forgot-password", extra.clone()).await,
        400,
        "ValidationError",
        "this field has unspecified keys: extra",
    )
    .await;
    assert_eq!(err["details"]["errors"][0]["path"], json!([]));
    let res = app.post("/api/auth/send-email-confirmation", extra).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"email": "Nobody@Example.com", "sent": true})
    );
}

#[tokio::test]
async fn reset_password_validation_follows_strapi() {
    let app = TestApp::spawn().await;
    let err = assert_error(
        app.post("/api/auth/reset-password", json!({})).await,
        400,
        "ValidationError",
        "3 errors occurred",
    )
    .await;
    let paths: Vec<&str> = err["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"][0].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["passwordConfirmation", "password", "code"]);
    let err = assert_error(
        app.post(
            "/api/auth/reset-password",
            json!({"code": "x", "password": "new-pass-1", "passwordConfirmation": "new-pass-2"}),
        )
        .await,
        400,
        "ValidationError",
        "Passwords do not match",
    )
    .await;
    assert_eq!(
        err["details"]["errors"][0]["path"],
        json!(["passwordConfirmation"])
    );
    assert_error(
        reset(&app, "no-such-code", "new-pass-1").await,
        400,
        "ValidationError",
        "Incorrect code provided",
    )
    .await;
}

#[tokio::test]
async fn a_reset_proves_the_address_and_confirms_it() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |c| c.auth.email_confirmation = true).await;
    app.create_user("ben", |u| u.confirmed = false).await;
    let code = reset_code(&app, &sink, "ben").await;
    let body: Value = reset(&app, &code, "bens-new-pass")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["user"]["confirmed"], true);
    assert_eq!(
        app.login("ben", "bens-new-pass").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn changing_the_password_sends_a_notice() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |_| {}).await.with_user("cara").await;
    let jwt = app.token_for("cara").await;
    let res = app
        .client
        .post(app.url("/api/auth/change-password"))
        .bearer_auth(&jwt)
        .json(&json!({"currentPassword": "cara-password", "password": "caras-new-pass", "passwordConfirmation": "caras-new-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let notice = sink.wait_for("cara@example.com").await;
    assert!(notice.subject.to_lowercase().contains("password"));
}

// ---- the pages behind the links, without a browser ----

#[tokio::test]
async fn the_reset_page_shows_a_form_that_posts_the_code() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/reset-password?code=abc123"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"<form method="post" action="/reset-password">"#));
    assert!(html.contains(r#"name="code" value="abc123""#));
    assert!(html.contains(r#"autocomplete="new-password""#));
    assert!(html.contains("<label>New password"), "labelled inputs");
}

#[tokio::test]
async fn the_reset_page_escapes_what_it_echoes() {
    let app = TestApp::spawn().await;
    let html = app
        .client
        .get(app.url("/reset-password?code=%22%3E%3Cscript%3Ealert(1)%3C/script%3E"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>"));
    assert!(html.contains("&quot;&gt;&lt;script&gt;"));
}

/// A query string the form cannot use (the code twice, one badly encoded) still gets a page: the
/// first code's form, or the invalid-link page, never a framework's plain-text rejection.
#[tokio::test]
async fn the_reset_page_reads_any_query_string() {
    let app = TestApp::spawn().await;
    let get = |query: &'static str| {
        let app = &app;
        async move {
            let res = app
                .client
                .get(app.url(&format!("/reset-password{query}")))
                .send()
                .await
                .unwrap();
            let status = res.status();
            let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
            (status, kind, res.text().await.unwrap())
        }
    };
    let (status, kind, html) = get("?code=first&code=second").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(html.contains(r#"name="code" value="first""#), "{html}");
    for query in ["?code=", "", "?code", "?other=1"] {
        let (status, kind, html) = get(query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {html}");
        assert!(kind.starts_with("text/html"), "{query}: {kind}");
        assert!(!html.contains("deserialize"), "{query}: {html}");
    }
    let (status, _, html) = get("?code=%FF%FE").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(!html.contains("deserialize"), "{html}");
}

async fn post_form(app: &TestApp, body: &str) -> reqwest::Response {
    app.client
        .post(app.url("/reset-password"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_reset_form_sets_the_password_without_javascript() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |_| {}).await.with_user("dora").await;
    let old_jwt = app.token_for("dora").await;
    let code = reset_code(&app, &sink, "dora").await;

    let res = post_form(
        &app,
        &format!("code={code}&password=dora-one&passwordConfirmation=dora-two"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(
        html.contains(r#"role="alert""#) && html.contains("do not match"),
        "{html}"
    );
    assert!(
        html.contains(&format!(r#"value="{code}""#)),
        "the form keeps the code"
    );

    let res = post_form(
        &app,
        &format!("code={code}&password=dora-new-pass&passwordConfirmation=dora-new-pass"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Password changed"));
    assert_eq!(
        app.login("dora", "dora-new-pass").await.status(),
        StatusCode::OK
    );
    // The old sessions ended.
    assert_error(
        app.me(&old_jwt).await,
        401,
        "UnauthorizedError",
        INVALID_TOKEN,
    )
    .await;

    let res = post_form(
        &app,
        &format!("code={code}&password=dora-again&passwordConfirmation=dora-again"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("no longer works"));
}

#[tokio::test]
async fn the_reset_form_explains_a_too_short_password() {
    let app = TestApp::spawn().await;
    let res = post_form(&app, "code=whatever&password=abc&passwordConfirmation=abc").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Password must be at least 8 characters.")
    );
}

#[tokio::test]
async fn the_confirmed_page_says_so() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/email-confirmed"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Your email address is confirmed")
    );
    let css = app
        .client
        .get(app.url("/assets/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}

// ---- the whole story, as the issue tells it ----

#[tokio::test]
async fn register_confirm_login_forget_reset_through_the_page() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink, |c| c.auth.email_confirmation = true).await;
    register(&app, "eve").await;
    let confirmation = sink.wait_for("eve@example.com").await;
    assert_eq!(
        confirm(&app, &param_in_link(&confirmation, "confirmation"))
            .await
            .status(),
        StatusCode::FOUND
    );
    let old_jwt = app.token_for("eve").await;

    app.post(
        "/api/auth/forgot-password",
        json!({"email": "eve@example.com"}),
    )
    .await;
    let reset_mail = mail_about(&sink, "eve@example.com", "reset", &[]).await;
    let code = param_in_link(&reset_mail, "code");
    let page = app
        .client
        .get(app.url(&format!("/reset-password?code={code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let res = post_form(
        &app,
        &format!("code={code}&password=eves-fresh-pass&passwordConfirmation=eves-fresh-pass"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);

    let old_password = app.login("eve", "eve-password").await;
    assert_invalid_login(old_password).await;
    assert_error(
        app.me(&old_jwt).await,
        401,
        "UnauthorizedError",
        INVALID_TOKEN,
    )
    .await;
    assert_eq!(
        app.login("eve", "eves-fresh-pass").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_pages_live_under_the_base_path() {
    let app = TestApp::spawn_with(|c| {
        c.pages.base_path = "/auth/".into();
        c.auth.pages_path = "/auth/".into();
    })
    .await;
    for path in [
        "/auth/",
        "/auth",
        "/auth/home",
        "/auth/register",
        "/auth/email-confirmed",
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    let css = app
        .client
        .get(app.url("/auth/assets/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    let html = app
        .client
        .get(app.url("/auth/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"href="/auth/assets/style.css""#),
        "assets under the base"
    );
    assert!(html.contains(r#"src="/auth/assets/app.js""#));
    for path in ["/", "/home"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path} is not a page any more");
    }
}
