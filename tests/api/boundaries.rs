//! Both sides of every brute-force window: route limits and the per-account login throttle, each
//! tried one millisecond before its window or pause ends (still refused) and at its end (let
//! through), on a frozen test clock so a slow machine cannot move the instant a request is decided.
//! The lifetimes of codes, sessions and tokens are tested next to their features (account.rs,
//! sessions.rs, jwt.rs).

use crate::helpers::*;
use std::time::Duration;

const LIMIT_MESSAGE: &str = "Too many requests, please try again later.";
const MS: Duration = Duration::from_millis(1);
/// Strapi's route limit (README Security model): 10 requests a minute.
const ROUTE_MAX: usize = 10;
const ROUTE_WINDOW: Duration = Duration::from_secs(60);
/// How long a failed login stays counted against its account (README: "in an hour").
const THROTTLE_WINDOW: Duration = Duration::from_secs(3600);

async fn assert_limited(res: reqwest::Response) {
    assert_error(res, 429, "RateLimitError", LIMIT_MESSAGE).await;
}

/// A route's window refuses until its last millisecond and opens a new one at its end, counted
/// from the window's first request, not its last.
#[tokio::test]
async fn a_route_limit_window_ends_exactly_a_minute_after_its_first_request() {
    let app = TestApp::spawn_with(|c| c.auth.rate_limits.enabled = true)
        .await
        .with_user("alice")
        .await;
    app.clock.freeze();
    assert_invalid_login(app.login("alice", "wrong-password").await).await;
    // The rest of the allowance later in the window: the window still dates from the first one.
    app.clock.advance(ROUTE_WINDOW / 2);
    for _ in 1..ROUTE_MAX {
        assert_invalid_login(app.login("alice", "wrong-password").await).await;
    }
    assert_limited(app.login("alice", "alice-password").await).await;

    app.clock.advance(ROUTE_WINDOW / 2 - MS);
    assert_limited(app.login("alice", "alice-password").await).await;
    app.clock.advance(MS);
    let res = app.login("alice", "alice-password").await;
    assert_eq!(res.status(), 200, "a new window");
    assert_eq!(res.headers()["x-ratelimit-remaining"], "9");
}

/// An app whose login throttle is on (the suite turns it off elsewhere).
async fn throttled_app(change: impl FnOnce(&mut keyway::Config)) -> TestApp {
    let app = TestApp::spawn_with(|c| {
        c.auth.throttle.enabled = true;
        change(c);
    })
    .await
    .with_user("alice")
    .await;
    app.clock.freeze();
    app
}

async fn guess(app: &TestApp) -> reqwest::Response {
    app.login("alice", "guess").await
}

/// README: five failures free, then a pause before each next attempt that doubles from 1 s up to
/// 15 minutes. Each pause refuses a millisecond before its end, even the right password, and lets
/// the next guess through at its end.
#[tokio::test]
async fn each_throttle_pause_ends_exactly_when_it_doubles_to() {
    let app = throttled_app(|_| {}).await;
    for _ in 0..5 {
        assert_invalid_login(guess(&app).await).await;
    }
    let max = Duration::from_secs(15 * 60);
    // 1, 2, 4 … 512 s, then the 15-minute cap twice: 2,823 s in all, inside the hour, so every
    // failure stays counted.
    for doubling in 0..12 {
        let pause = (Duration::from_secs(1) * (1 << doubling.min(10))).min(max);
        app.clock.advance(pause - MS);
        let res = app.login("alice", "alice-password").await;
        assert_eq!(res.headers()["retry-after"], "1", "pause {pause:?}");
        assert_limited(res).await;
        app.clock.advance(MS);
        assert_invalid_login(guess(&app).await).await;
    }
}

/// The hourly cap counts the failures of the last hour: each one stops counting exactly an hour
/// after it was made. Pauses are off here (more free failures than the cap) so only the cap decides.
#[tokio::test]
async fn a_failure_stops_counting_against_the_hourly_cap_exactly_an_hour_later() {
    let app = throttled_app(|c| {
        c.auth.throttle.hourly_cap = 3;
        c.auth.throttle.free_failures = 1000;
    })
    .await;
    let step = Duration::from_secs(10 * 60);
    for i in 0..3 {
        if i > 0 {
            app.clock.advance(step);
        }
        assert_invalid_login(guess(&app).await).await;
    }
    // 20 minutes in; the first failure stops counting at 60.
    app.clock.advance(THROTTLE_WINDOW - 2 * step - MS);
    let res = guess(&app).await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_limited(res).await;
    app.clock.advance(MS);
    assert_invalid_login(guess(&app).await).await;
    // That failure filled the cap again, until the second one's hour is over.
    assert_limited(guess(&app).await).await;
    app.clock.advance(step - MS);
    assert_limited(guess(&app).await).await;
    app.clock.advance(MS);
    assert_invalid_login(guess(&app).await).await;
}

/// The login that lifts a pause is the one at its end, whatever the password: the right one then
/// signs in (the control that the refusals above are the pause's, not the account's).
#[tokio::test]
async fn the_right_password_signs_in_the_moment_a_pause_ends() {
    let app = throttled_app(|_| {}).await;
    for _ in 0..5 {
        assert_invalid_login(guess(&app).await).await;
    }
    app.clock.advance(Duration::from_secs(1) - MS);
    assert_limited(app.login("alice", "alice-password").await).await;
    app.clock.advance(MS);
    let res = app.login("alice", "alice-password").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice", "{body}");
}
