//! The single sign-on section: tables, their variables, presets and refusals.

use super::*;
use crate::auth::sso::Protocol;

#[test]
fn sso_providers_come_from_tables_and_variables_with_presets() {
    let secret = file_with("from-file\n");
    let toml = format!(
        "public_url = \"https://auth.acme.test\"\n\
         base_path = \"/login\"\n\
         sso_callback_allowlist = [\"https://app.acme.test/done\"]\n\
         [sso.google]\nclient_id = \"g-id\"\nclient_secret_file = \"{}\"\n\
         [sso.keycloak]\nissuer = \"https://kc.acme.test/realms/x/\"\nclient_id = \"kc\"\n\
         display_name = \"Staff\"\nscopes = [\"openid\", \"email\"]\n",
        secret.path().display()
    );
    let f = file_with(&toml);
    let env = vars(&[
        ("KEYWAY_SSO_GITHUB_CLIENT_ID", "gh-id"),
        ("KEYWAY_SSO_GITHUB_CLIENT_SECRET", "gh-secret"),
        ("KEYWAY_SSO_KEYCLOAK_CLIENT_ID", "kc-env"),
    ]);
    let c = Overrides::file(f.path())
        .flag("sso_providers", "github, google")
        .resolve(&env)
        .unwrap();
    let sso = &c.sso;
    let names: Vec<&str> = sso.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["google", "keycloak", "github"]);
    let [google, keycloak, github] = &sso.providers[..] else {
        panic!("three providers expected: {names:?}");
    };
    assert_eq!(
        google.protocol,
        Protocol::Oidc {
            issuer: "https://accounts.google.com".into()
        }
    );
    assert_eq!(google.display_name, "Google");
    assert_eq!(
        google.client_secret.as_ref().unwrap().expose_secret(),
        "from-file"
    );
    assert_eq!(google.scopes, ["openid", "email", "profile"]);
    assert_eq!(
        google.callback.as_str(),
        "https://auth.acme.test/login/connect/google/redirect"
    );
    assert_eq!(keycloak.client_id, "kc-env", "the variable beats the table");
    assert_eq!(keycloak.display_name, "Staff");
    assert_eq!(keycloak.scopes, ["openid", "email"]);
    assert_eq!(
        keycloak.protocol,
        Protocol::Oidc {
            issuer: "https://kc.acme.test/realms/x".into()
        }
    );
    assert!(keycloak.client_secret.is_none());
    assert_eq!(
        github.protocol,
        Protocol::GitHub {
            auth_url: "https://github.com/login/oauth/authorize".into(),
            token_url: "https://github.com/login/oauth/access_token".into(),
            api_url: "https://api.github.com".into(),
        }
    );
    assert_eq!(github.scopes, ["read:user", "user:email"]);
    assert_eq!(
        github.client_secret.as_ref().unwrap().expose_secret(),
        "gh-secret"
    );
    assert_eq!(
        sso.callback_allowlist[0].as_str(),
        "https://app.acme.test/done"
    );
    assert!(!sso.link_verified_email);
    assert_eq!(sso.public_url, "https://auth.acme.test");
    assert!(
        !format!("{google:?}").contains("from-file"),
        "secrets stay out of Debug"
    );
}

#[test]
fn sso_variables_give_scopes_and_the_secret_file() {
    let secret = file_with("s3cret\n");
    let path = secret.path().display().to_string();
    let c = Overrides::file(file_with("").path())
        .resolve(&vars(&[
            ("KEYWAY_SSO_PROVIDERS", "okta"),
            ("KEYWAY_SSO_OKTA_CLIENT_ID", "id"),
            ("KEYWAY_SSO_OKTA_ISSUER", "https://okta.example.com"),
            ("KEYWAY_SSO_OKTA_SCOPES", "openid,email groups"),
            ("KEYWAY_SSO_OKTA_CLIENT_SECRET", "ignored"),
            ("KEYWAY_SSO_OKTA_CLIENT_SECRET_FILE", &path),
        ]))
        .unwrap();
    let okta = &c.sso.providers[0];
    assert_eq!(okta.scopes, ["openid", "email", "groups"]);
    assert_eq!(
        okta.client_secret.as_ref().unwrap().expose_secret(),
        "s3cret"
    );
}

#[test]
fn sso_mistakes_stop_start_up_with_the_setting_named() {
    let refused = |providers: &str, env: &[(&str, &str)]| {
        Overrides::file(file_with("").path())
            .flag("sso_providers", providers)
            .resolve(&vars(env))
            .unwrap_err()
            .to_string()
    };
    assert!(refused("okta", &[]).contains("sso.okta.client_id"));
    let issuer = refused("okta", &[("KEYWAY_SSO_OKTA_CLIENT_ID", "x")]);
    assert!(issuer.contains("sso.okta.issuer"), "{issuer}");
    let tenant = refused("microsoft", &[("KEYWAY_SSO_MICROSOFT_CLIENT_ID", "x")]);
    assert!(tenant.contains("tenant"), "{tenant}");
    assert!(refused("Bad Name", &[]).contains("must be lower-case"));
    assert!(refused("local", &[]).contains("taken"));
    let kind = refused(
        "x",
        &[
            ("KEYWAY_SSO_X_CLIENT_ID", "x"),
            ("KEYWAY_SSO_X_KIND", "saml"),
        ],
    );
    assert!(kind.contains("sso.x.kind"), "{kind}");
    let url = refused(
        "x",
        &[
            ("KEYWAY_SSO_X_CLIENT_ID", "x"),
            ("KEYWAY_SSO_X_ISSUER", "ftp://x"),
        ],
    );
    assert!(url.contains("sso.x.issuer"), "{url}");
}
