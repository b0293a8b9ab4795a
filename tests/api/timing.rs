//! Account enumeration by timing: the endpoints that answer the same for a registered and an unknown
//! identifier must also take the same time, or the clock tells what the body hides.
//!
//! Measured against a server with the DEFAULT argon2id parameters (m=19456 KiB, t=2, p=1): the point
//! is the real cost of the verification that an unknown identifier must still pay (the dummy hash).
//! Each test takes many interleaved samples of both cases after a warm-up and compares medians, which
//! shrug off the outliers a busy two-core machine produces. The tests run one at a time (a lock shared
//! by this module only), so they do not load each other; `scripts/test.sh` keeps them out of the
//! parallel runs and runs them alone afterwards (`--test-threads=1`), and the interleaving spreads
//! whatever load remains over both cases alike.
//!
//! Registration is left out on purpose: a taken username or email is answered "Email or Username are
//! already taken" (as in Strapi), so the answer itself says what timing could, and a taken name
//! legitimately skips the hash of the new password.

use crate::helpers::*;
use crate::smtp::SmtpSink;
use keyway::auth::password::HashParams;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// One timing test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WARM_UP: usize = 4;
const SAMPLES: usize = 40;

/// A server with production hash parameters, mailing through `sink` (so a mail sent before the
/// answer would cost a real SMTP conversation), with `alice` (confirmed) and `una` (unconfirmed).
async fn app(sink: &SmtpSink) -> TestApp {
    let url = sink.url();
    // Rate limits and login throttling are off in TestApp: the samples below are many requests
    // from one address, and what is measured is the work behind a single answer.
    let app = TestApp::spawn_with(move |c| {
        c.hash = HashParams::default();
        c.mail.smtp_url = Some(SecretString::from(url));
    })
    .await
    .with_user("alice")
    .await;
    app.create_user("una", |u| u.confirmed = false).await;
    assert_eq!(app.config.hash, HashParams::default());
    app
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let n = samples.len();
    (samples[(n - 1) / 2] + samples[n / 2]) / 2
}

/// Times POSTs of `known` and `unknown` to `path`, interleaved (known, unknown, unknown, known, …) so
/// drift and background load fall on both alike, and returns their medians. Both must get the same
/// status and body (up to echoed fields): this is about what the clock adds, not what the answer
/// says.
async fn medians(app: &TestApp, path: &str, known: Value, unknown: Value) -> (Duration, Duration) {
    let mut times = [Vec::new(), Vec::new()];
    let mut answers = [None, None];
    for round in 0..WARM_UP + SAMPLES {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let body = if which == 0 { &known } else { &unknown };
            let started = Instant::now();
            let res = app.post(path, body.clone()).await;
            let status = res.status();
            let mut text = res.text().await.unwrap();
            let took = started.elapsed();
            // An echoed field (send-email-confirmation returns the address) is not a difference.
            for value in body.as_object().unwrap().values().filter_map(Value::as_str) {
                text = text.replace(value, "…");
            }
            if round >= WARM_UP {
                times[which].push(took);
            }
            let answer = (status, text);
            match &answers[which] {
                None => answers[which] = Some(answer),
                Some(first) => assert_eq!(first, &answer, "{path} answered differently"),
            }
        }
    }
    assert_eq!(
        answers[0], answers[1],
        "{path}: known and unknown get the same answer"
    );
    let [a, b] = times;
    (median(a), median(b))
}

fn gap(a: Duration, b: Duration) -> Duration {
    a.max(b) - a.min(b)
}

/// What one argon2id verification with the server's parameters costs here (median of a few), the
/// work a skipped dummy verification would save.
async fn verification_cost(app: &TestApp) -> Duration {
    let hasher = app.auth.hasher();
    let hash = hasher
        .hash(SecretString::from("some-password"))
        .await
        .unwrap();
    let mut samples = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        hasher
            .verify(SecretString::from("other-password"), Some(hash.clone()))
            .await
            .unwrap();
        samples.push(started.elapsed());
    }
    median(samples)
}

#[tokio::test]
async fn login_takes_as_long_for_an_unknown_identifier_as_for_a_wrong_password() {
    let _serial = SERIAL.lock().await;
    let sink = SmtpSink::start().await;
    let app = app(&sink).await;
    let cost = verification_cost(&app).await;
    let (wrong_password, unknown) = medians(
        &app,
        "/api/auth/local",
        json!({ "identifier": "alice", "password": "not-her-password" }),
        json!({ "identifier": "nobody-by-that-name", "password": "not-her-password" }),
    )
    .await;
    eprintln!(
        "login: one verification {cost:?}; medians: wrong password {wrong_password:?}, \
         unknown identifier {unknown:?}"
    );
    // A skipped verification would open a gap of a whole verification (~30 ms in a release build,
    // several times that in the debug build tests run in). A third of it — 10 ms for a release
    // build — leaves the noise of a loaded two-core machine room on both sides, and never less than
    // 10 ms is allowed for a machine fast enough to hash in under 30 ms.
    let bound = (cost / 3).max(Duration::from_millis(10));
    assert!(
        gap(wrong_password, unknown) < bound,
        "login time tells whether an account exists: wrong password {wrong_password:?}, unknown \
         {unknown:?} (bound {bound:?}, one verification {cost:?})"
    );
}

/// An account imported from Strapi keeps its bcrypt hash until its first successful login. bcrypt
/// refuses a password of 72 bytes or more outright, and that refusal used to be the whole check: such a
/// guess was answered at once for an imported account and after a dummy argon2id verification for an
/// unknown name, so a stopwatch listed the imported accounts. Now the refusal pays the dummy too.
///
/// What stays distinguishable is measured and printed, not asserted: a shorter wrong password is
/// checked with bcrypt itself, at the hash's own cost (Strapi's 10), which is not argon2id's.
#[tokio::test]
async fn a_long_password_takes_as_long_for_an_imported_bcrypt_account_as_for_an_unknown_name() {
    let _serial = SERIAL.lock().await;
    let sink = SmtpSink::start().await;
    let app = app(&sink).await;
    app.create_user("bea", |_| {}).await;
    // What `keyway import strapi` stores for a Strapi account: its bcrypt hash (bcryptjs, cost 10).
    let strapi_hash = bcrypt::hash("bea-strapi-password", 10).unwrap();
    with_db!(app.db().await, |pool| sqlx::query(
        "UPDATE users SET password_hash = $1 WHERE username = $2"
    )
    .bind(&strapi_hash)
    .bind("bea")
    .execute(pool)
    .await
    .map(|done| done.rows_affected())
    .unwrap());
    let cost = verification_cost(&app).await;
    let long = "a-guess-of-exactly-seventy-two-bytes-".repeat(2)[..72].to_owned();
    let (imported, unknown) = medians(
        &app,
        "/api/auth/local",
        json!({ "identifier": "bea", "password": long }),
        json!({ "identifier": "nobody-by-that-name", "password": long }),
    )
    .await;
    let bound = (cost / 3).max(Duration::from_millis(10));
    eprintln!(
        "login, 72-byte password: one verification {cost:?}; medians: imported {imported:?}, \
         unknown {unknown:?}"
    );
    assert!(
        gap(imported, unknown) < bound,
        "login time tells an imported account from an unknown name: imported {imported:?}, \
         unknown {unknown:?} (bound {bound:?}, one verification {cost:?})"
    );

    // The known limit: bcrypt's own cost against argon2id's, until the account's first login.
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..WARM_UP + 10 {
        for (which, who) in ["bea", "nobody-by-that-name"].into_iter().enumerate() {
            let started = Instant::now();
            let res = app.login(who, "a-short-wrong-guess").await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST);
            res.bytes().await.unwrap();
            if round >= WARM_UP {
                times[which].push(started.elapsed());
            }
        }
    }
    let [bcrypt_account, unknown] = times;
    eprintln!(
        "login, short password (known limit, not asserted): imported account with a cost-10 \
         bcrypt hash {:?}, unknown name (argon2id dummy) {:?}",
        median(bcrypt_account),
        median(unknown)
    );
}

/// Forgot-password and the confirmation resend answer before any mail work, so a registered and an
/// unknown address differ by noise only. Measured here: about 1-2 ms between the medians (the mail
/// task spawned for a registered address competes for the two cores while the answer is written),
/// against ~55 ms when the SMTP conversation is awaited before answering. 10 ms is generous for the
/// first and catches the second; a lone database write awaited before the answer (~0.5 ms) is below
/// what any bound here could see.
const MAIL_BOUND: Duration = Duration::from_millis(10);

#[tokio::test]
async fn forgot_password_takes_as_long_for_an_unknown_address() {
    let _serial = SERIAL.lock().await;
    let sink = SmtpSink::start().await;
    let app = app(&sink).await;
    let (known, unknown) = medians(
        &app,
        "/api/auth/forgot-password",
        json!({ "email": "alice@example.com" }),
        json!({ "email": "nobody@example.com" }),
    )
    .await;
    eprintln!("forgot-password medians: registered {known:?}, unknown {unknown:?}");
    assert!(
        gap(known, unknown) < MAIL_BOUND,
        "forgot-password time tells whether an address is registered: {known:?} vs {unknown:?}"
    );
    // The registered address did get its mails, after the answers.
    sink.wait_for("alice@example.com").await;
}

#[tokio::test]
async fn send_email_confirmation_takes_as_long_for_an_unknown_address() {
    let _serial = SERIAL.lock().await;
    let sink = SmtpSink::start().await;
    let app = app(&sink).await;
    let (known, unknown) = medians(
        &app,
        "/api/auth/send-email-confirmation",
        json!({ "email": "una@example.com" }),
        json!({ "email": "nobody@example.com" }),
    )
    .await;
    eprintln!(
        "send-email-confirmation medians: unconfirmed account {known:?}, unknown {unknown:?}"
    );
    assert!(
        gap(known, unknown) < MAIL_BOUND,
        "send-email-confirmation time tells whether an address is registered: {known:?} vs \
         {unknown:?}"
    );
    sink.wait_for("una@example.com").await;
}

#[tokio::test]
async fn the_measurement_sees_a_skipped_hash() {
    // The harness must be able to see what it guards against: a login that verifies a password next
    // to one refused before any hash (a missing field) must differ by more than the login bound.
    let _serial = SERIAL.lock().await;
    let sink = SmtpSink::start().await;
    let app = app(&sink).await;
    let cost = verification_cost(&app).await;
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..WARM_UP + 10 {
        for (which, body) in [
            json!({ "identifier": "alice", "password": "not-her-password" }),
            json!({ "identifier": "alice" }),
        ]
        .into_iter()
        .enumerate()
        {
            let started = Instant::now();
            let res = app.post("/api/auth/local", body).await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST);
            res.bytes().await.unwrap();
            if round >= WARM_UP {
                times[which].push(started.elapsed());
            }
        }
    }
    let [hashed, refused] = times;
    let (hashed, refused) = (median(hashed), median(refused));
    eprintln!("a verification is visible: {hashed:?} with, {refused:?} without");
    assert!(
        gap(hashed, refused) > (cost / 3).max(Duration::from_millis(10)),
        "a request that skips the hash must stand out: {hashed:?} vs {refused:?}"
    );
}
