//! The session cookie against other sites: its `Secure` attribute follows `public_url`, never the
//! `Host` a proxy forwards, and the routes that set or use it refuse what a page on another site can
//! make a browser send (a form, plain text, a body without a type), unless the request proves it comes
//! from this server's own pages or a trusted front end.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const COOKIE_MODE: (&str, &str) = ("x-strapi-refresh-cookie", "httpOnly");
const FORM: &str = "application/x-www-form-urlencoded";
const EVIL: &str = "https://evil.example";

fn set_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Cookie mode on for every login, as a site that keeps its sessions in the cookie sets it: a
/// cross-site form cannot send the `x-strapi-refresh-cookie` header, so this is where login CSRF bites.
async fn cookie_app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.cookie.always = true;
        c.mail.public_url = "https://auth.example.com".into();
        c.transport.cors_origins = vec!["https://app.example.com".into()];
    })
    .await
    .with_user("alice")
    .await
}

/// A form post of alice's credentials with these extra headers.
async fn form_login(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/auth/local"))
        .header("content-type", FORM)
        .body(format!(
            "identifier=alice&password={}",
            password_of("alice")
        ));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// The attack: behind a reverse proxy that forwards `Host: 127.0.0.1:8080`, Keyway guessed "local
/// development" from the Host and sent the production refresh cookie without `Secure`, so any plain
/// http:// request to the site leaked it.
#[tokio::test]
async fn the_cookie_is_secure_when_public_url_is_https_whatever_the_host() {
    let app = TestApp::spawn_with(|c| c.mail.public_url = "https://auth.example.com".into())
        .await
        .with_user("alice")
        .await;
    let res = app
        .client
        .post(app.url("/api/auth/local"))
        .header("host", "127.0.0.1:8080")
        .header(COOKIE_MODE.0, COOKIE_MODE.1)
        .json(&json!({"identifier": "alice", "password": password_of("alice")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = set_cookie(&res).expect("Set-Cookie");
    assert!(cookie.contains("Secure"), "{cookie}");

    let res = app
        .client
        .post(app.url("/api/auth/refresh"))
        .header("host", "localhost")
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let renewed = set_cookie(&res).expect("Set-Cookie");
    assert!(renewed.contains("Secure"), "{renewed}");
}

/// Plain-http development (the default public_url, http://127.0.0.1:8080) keeps a cookie the browser
/// will store, whatever name the server is reached by; `always` overrides it.
#[tokio::test]
async fn a_plain_http_public_url_gets_no_secure_unless_always() {
    let app = TestApp::spawn().await.with_user("alice").await;
    let login = |app: &TestApp| {
        app.client
            .post(app.url("/api/auth/local"))
            .header("host", "auth.example.com")
            .header(COOKIE_MODE.0, COOKIE_MODE.1)
            .json(&json!({"identifier": "alice", "password": password_of("alice")}))
            .send()
    };
    let cookie = set_cookie(&login(&app).await.unwrap()).expect("Set-Cookie");
    assert!(!cookie.contains("Secure"), "{cookie}");

    let mut config = app.config.clone();
    config.cookie.secure = keyway::config::CookieSecure::Always;
    let app = app.restart_with(config).await;
    let cookie = set_cookie(&login(&app).await.unwrap()).expect("Set-Cookie");
    assert!(cookie.contains("Secure"), "{cookie}");
}

/// The attack (login CSRF): a page on another site auto-submits a form with the attacker's
/// credentials to /api/auth/local; the victim's browser follows it and stores the attacker's session
/// cookie, so whatever the victim then does is done in the attacker's account.
#[tokio::test]
async fn a_cross_site_form_cannot_sign_a_browser_in() {
    let app = cookie_app().await;
    for headers in [
        // Today's browsers: Origin and fetch metadata.
        &[("origin", EVIL), ("sec-fetch-site", "cross-site")][..],
        // Older ones: Origin only.
        &[("origin", EVIL)][..],
        // A sibling subdomain that is not a trusted front end.
        &[
            ("origin", "https://blog.example.com"),
            ("sec-fetch-site", "same-site"),
        ][..],
        // A privacy setting or an extension that strips Origin.
        &[][..],
    ] {
        let res = form_login(&app, headers).await;
        assert!(set_cookie(&res).is_none(), "{headers:?}: a cookie was set");
        assert_error(res, 403, "ForbiddenError", "Forbidden").await;
    }
}

/// The same refusal on the other cookie routes: registering, refreshing and logging out from a
/// cross-site form, and the single sign-on trade from a cross-site page.
#[tokio::test]
async fn the_other_cookie_routes_refuse_cross_site_requests_too() {
    let app = cookie_app().await;
    let res = app
        .client
        .post(app.url("/api/auth/local"))
        .json(&json!({"identifier": "alice", "password": password_of("alice")}))
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&res).expect("Set-Cookie");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let jwt = res.json::<Value>().await.unwrap()["jwt"]
        .as_str()
        .unwrap()
        .to_owned();

    let cross_site = |path: &str, body: &str| {
        app.client
            .post(app.url(path))
            .header("origin", EVIL)
            .header("sec-fetch-site", "cross-site")
            .header("content-type", FORM)
            .header("cookie", cookie.as_str())
            .body(body.to_owned())
            .send()
    };
    let res = cross_site(
        "/api/auth/local/register",
        "username=mallory&email=mallory%40example.com&password=correct-horse-battery",
    )
    .await
    .unwrap();
    assert_error(res, 403, "ForbiddenError", "Forbidden").await;
    // No account was made.
    let res = app.login("mallory", "correct-horse-battery").await;
    assert_invalid_login(res).await;

    let res = cross_site("/api/auth/refresh", "").await.unwrap();
    assert!(set_cookie(&res).is_none());
    assert_error(res, 403, "ForbiddenError", "Forbidden").await;

    let res = cross_site("/api/auth/logout", "").await.unwrap();
    assert!(set_cookie(&res).is_none());
    assert_error(res, 403, "ForbiddenError", "Forbidden").await;
    assert_eq!(
        app.me(&jwt).await.status(),
        StatusCode::OK,
        "still signed in"
    );

    let res = app
        .client
        .get(app.url("/api/auth/google/callback?code=x"))
        .header("origin", EVIL)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "ForbiddenError", "Forbidden").await;
}

/// What must keep working: JSON from clients that are not browsers (no Origin: curl, Appsmith's
/// server, Strapi SDKs), forms from this server's own pages, and a trusted front end.
#[tokio::test]
async fn json_clients_same_origin_forms_and_trusted_front_ends_still_sign_in() {
    let app = cookie_app().await;
    let res = app
        .post(
            "/api/auth/local",
            json!({"identifier": "alice", "password": password_of("alice")}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookie(&res).is_some());

    for headers in [
        &[("origin", "https://auth.example.com")][..],
        &[
            ("origin", "http://localhost:8080"),
            ("sec-fetch-site", "same-origin"),
        ][..],
        &[
            ("origin", "https://app.example.com"),
            ("sec-fetch-site", "same-site"),
        ][..],
    ] {
        let res = form_login(&app, headers).await;
        assert_eq!(res.status(), StatusCode::OK, "{headers:?}");
        assert!(set_cookie(&res).is_some(), "{headers:?}");
    }

    // A refresh with the cookie and no body at all, as curl or a server sends it.
    let res = form_login(&app, &[("origin", "https://auth.example.com")]).await;
    let cookie = set_cookie(&res).unwrap();
    let res = app
        .client
        .post(app.url("/api/auth/refresh"))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
