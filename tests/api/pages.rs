//! The hosted pages as a browser receives them: every page's HTML (and the headers that guard it)
//! pinned by a snapshot in `tests/api/snapshots/`, with the default settings and with an operator's
//! branding whose values try to break out of the markup. A changed byte shows as a diff; accept an
//! intended change with `cargo insta review` (or `INSTA_UPDATE=always`).

use crate::helpers::*;
use keyway::auth::sso::{Protocol, ProviderSettings};
use reqwest::Method;
use secrecy::SecretString;
use url::Url;

/// Status, the security headers, and the body of `method path` (a form `body` when posting).
async fn page(app: &TestApp, method: Method, path: &str, body: Option<&str>) -> String {
    let mut request = app.client.request(method, app.url(path));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
    }
    let res = request.send().await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let head = format!(
        "status: {}\ncontent-type: {}\ncontent-security-policy: {}\nreferrer-policy: {}\n\
         x-frame-options: {}\n\n",
        res.status().as_u16(),
        header("content-type"),
        header("content-security-policy"),
        header("referrer-policy"),
        header("x-frame-options"),
    );
    // The end is marked: a snapshot ignores trailing line breaks, the byte comparison must not.
    head + &res.text().await.unwrap() + "[end]"
}

fn provider(name: &str, display_name: &str) -> ProviderSettings {
    ProviderSettings {
        name: name.into(),
        display_name: display_name.into(),
        protocol: Protocol::GitHub {
            auth_url: "https://github.example/login/oauth/authorize".into(),
            token_url: "https://github.example/login/oauth/access_token".into(),
            api_url: "https://api.github.example".into(),
        },
        client_id: "client".into(),
        client_secret: Some(SecretString::from("secret")),
        scopes: vec!["read:user".into()],
        callback: Url::parse(&format!("http://127.0.0.1:9/auth/connect/{name}/redirect")).unwrap(),
    }
}

#[tokio::test]
async fn every_page_with_the_default_settings() {
    let app = TestApp::spawn().await.with_user("rita").await;
    let code = crate::policy::reset_code(&app, "rita").await;
    let cases = [
        ("login", Method::GET, "/".to_owned(), None),
        ("home", Method::GET, "/home".into(), None),
        ("register", Method::GET, "/register".into(), None),
        (
            "forgot-password",
            Method::GET,
            "/forgot-password".into(),
            None,
        ),
        (
            "email-confirmed",
            Method::GET,
            "/email-confirmed".into(),
            None,
        ),
        (
            "reset-password",
            Method::GET,
            "/reset-password?code=a%22%3E%3Cscript%3E%26".into(),
            None,
        ),
        ("reset-invalid", Method::GET, "/reset-password".into(), None),
        (
            "reset-password-mismatch",
            Method::POST,
            "/reset-password".into(),
            Some(format!(
                "code={code}&password=rita-one-pass&passwordConfirmation=rita-two-pass"
            )),
        ),
        (
            "reset-done",
            Method::POST,
            "/reset-password".into(),
            Some(format!(
                "code={code}&password=rita-new-pass&passwordConfirmation=rita-new-pass"
            )),
        ),
    ];
    for (name, method, path, body) in cases {
        let shown = page(&app, method, &path, body.as_deref()).await;
        insta::assert_snapshot!(format!("default-{name}"), shown);
    }
}

#[tokio::test]
async fn every_branded_page_escapes_what_the_operator_set() {
    let app = TestApp::spawn_with(|c| {
        c.pages.base_path = "/auth/".into();
        c.auth.pages_path = "/auth/".into();
        c.pages.logo_url = Some("https://cdn.example.com/logo.svg?a=1&b=\"><script>".into());
        c.pages.accent_color = Some("#0a7".into());
        c.mail.app_name = "Acme <script>alert('x')</script> & \"Co\"".into();
        c.auth.allow_register = false;
        c.sso.public_url = "http://127.0.0.1:9".into();
        c.sso.providers = vec![
            provider("github", "GitHub"),
            provider("okta", "Okta <b>\"&'</b>"),
        ];
    })
    .await;
    let cases = [
        ("login", "/auth/"),
        ("home", "/auth/home"),
        ("forgot-password", "/auth/forgot-password"),
        ("sso-redirect", "/auth/connect/okta/redirect"),
        ("reset-password", "/auth/reset-password?code=abc"),
    ];
    for (name, path) in cases {
        let shown = page(&app, Method::GET, path, None).await;
        insta::assert_snapshot!(format!("branded-{name}"), shown);
    }
}

#[tokio::test]
async fn an_override_is_served_instead_of_the_built_in_and_escapes_its_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("login.html"),
        "<h1>Welcome to {{ app_name }}</h1>\n\
         {% for p in sso_providers %}<a href=\"/api/connect/{{ p.name }}\">{{ p.display_name }}</a>{% endfor %}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("page.html"),
        "<html data-base=\"{{ base }}\"><title>{{ title }}</title>{{ body }}</html>\n",
    )
    .unwrap();
    let app = TestApp::spawn_with(|c| {
        c.pages.templates_dir = Some(dir.path().to_owned());
        c.mail.app_name = "<script>alert(1)</script>".into();
        c.sso.public_url = "http://127.0.0.1:9".into();
        c.sso.providers = vec![provider("okta", "Okta <b>")];
    })
    .await;
    let html = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(html.status(), 200);
    assert_eq!(
        html.text().await.unwrap(),
        "<html data-base=\"/\"><title>Sign in</title><h1>Welcome to \
         &lt;script&gt;alert(1)&lt;/script&gt;</h1>\n\
         <a href=\"/api/connect/okta\">Okta &lt;b&gt;</a>\n</html>\n"
    );
    // The pages without an override keep the built-in body, in the overridden frame.
    let home = app.client.get(app.url("/home")).send().await.unwrap();
    let home = home.text().await.unwrap();
    assert!(
        home.starts_with(
            "<html data-base=\"/\"><title>Your account</title><header class=\"brand\">"
        ),
        "{home}"
    );
    assert!(home.contains("Checking your session"), "{home}");
}
