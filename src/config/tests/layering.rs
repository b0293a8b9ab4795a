//! Defaults, then the file, then the environment, then the flags; unknown keys refused; secrets and
//! their `*_FILE` settings; every refusal naming the setting and its source.

use super::*;
use crate::auth::password::HashParams;

#[test]
fn defaults_match_the_documentation() {
    let c = from_file("").unwrap();
    assert_eq!(c.transport.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(c.database_url.expose_secret(), "sqlite://keyway.db");
    assert_eq!(c.tokens.ttl, Duration::from_secs(2_592_000));
    assert!(c.tokens.secret.is_none());
    assert!(c.auth.allow_register);
    assert_eq!(c.auth.password_min_chars, 8);
    assert_eq!(
        c.auth.pwned_check, None,
        "the online check is off by default"
    );
    assert_eq!(c.hash, HashParams::default());
    assert_eq!(c.body_limit_bytes, 65_536);
    assert_eq!(format!("{c:?}"), format!("{:?}", Config::defaults()));
}

#[test]
fn flags_override_the_file() {
    let f = file_with("bind = \"0.0.0.0:9000\"\njwt_ttl = 60\nallow_register = false\n");
    let from_file = Overrides::file(f.path());
    let c = from_file.resolve(&no_env).unwrap();
    assert_eq!(c.transport.bind.to_string(), "0.0.0.0:9000");
    assert_eq!(c.tokens.ttl, Duration::from_secs(60));
    assert!(!c.auth.allow_register);

    let flagged = from_file
        .flag("bind", "127.0.0.1:7000")
        .flag("jwt_ttl", "2h");
    let c = flagged.resolve(&no_env).unwrap();
    assert_eq!(c.transport.bind.to_string(), "127.0.0.1:7000");
    assert_eq!(c.tokens.ttl, Duration::from_secs(7200));
    assert!(
        !c.auth.allow_register,
        "untouched settings keep the file's value"
    );
}

#[test]
fn the_environment_is_between_the_file_and_the_flags() {
    let f = file_with("bind = \"0.0.0.0:9000\"\nrate_limit_max = 5\naccess_log = true\n");
    let env = vars(&[
        ("KEYWAY_BIND", "0.0.0.0:9001"),
        ("KEYWAY_RATE_LIMIT_MAX", "7"),
        ("KEYWAY_ACCESS_LOG", "false"),
    ]);
    let c = Overrides::file(f.path()).resolve(&env).unwrap();
    assert_eq!(c.transport.bind.to_string(), "0.0.0.0:9001");
    assert_eq!(c.auth.rate_limits.default.max, 7, "text read as a number");
    assert!(!c.transport.access_log, "text read as a switch");
    let c = Overrides::file(f.path())
        .flag("bind", "0.0.0.0:9002")
        .resolve(&env)
        .unwrap();
    assert_eq!(c.transport.bind.to_string(), "0.0.0.0:9002");
    assert_eq!(c.auth.rate_limits.default.max, 7);
}

#[test]
fn unknown_file_keys_are_refused() {
    // A top-level key, and a table's keys too.
    for (file, key) in [
        ("bnid = \"0.0.0.0:9000\"\n", "bnid"),
        ("[sso.okta]\nclient_idd = \"x\"\n", "client_idd"),
        (
            "[rate_limit_routes]\n\"/api/auth/local\" = { max = 1, windw = 1 }\n",
            "windw",
        ),
    ] {
        let err = file_refusal(file);
        assert!(err.contains(key), "{err}");
    }
}

/// Variables no setting declares (KEYWAY_LOG, the test suite's own) are not settings: they are
/// left alone, as clap left them.
#[test]
fn other_keyway_variables_are_not_looked_at() {
    let env = vars(&[("KEYWAY_LOG", "debug"), ("KEYWAY_TEST_BACKEND", "postgres")]);
    assert!(Overrides::file(file_with("").path()).resolve(&env).is_ok());
}

/// Each source names itself: the file by its path, a variable by its name, a flag by its flag; and
/// the setting is named whichever it was.
#[test]
fn every_refusal_names_the_setting_and_where_it_came_from() {
    let f = file_with("rate_limit_max = 0\n");
    let path = f.path().display().to_string();
    let err = Overrides::file(f.path()).resolve(&no_env).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("rate_limit_max") && shown.contains(&path),
        "{shown}"
    );

    let empty = file_with("");
    let from_env = |k: &'static str, v: &'static str| {
        Overrides::file(empty.path())
            .resolve(&vars(&[(k, v)]))
            .unwrap_err()
            .to_string()
    };
    let shown = from_env("KEYWAY_RATE_LIMIT_MAX", "0");
    assert!(
        shown.starts_with("rate_limit_max (from KEYWAY_RATE_LIMIT_MAX)"),
        "{shown}"
    );
    let shown = flags_refusal(&[("rate_limit_max", "0")]);
    assert!(
        shown.starts_with("rate_limit_max (from --rate-limit-max)"),
        "{shown}"
    );

    // A value of the wrong kind, refused while reading, is named the same way.
    let shown = file_refusal("rate_limit_max = \"many\"\n");
    assert!(
        shown.contains("rate_limit_max") && shown.contains("many"),
        "{shown}"
    );
    let shown = from_env("KEYWAY_JWT_TTL", "soon");
    assert!(
        shown.starts_with("jwt_ttl (from KEYWAY_JWT_TTL)") && shown.contains("soon"),
        "{shown}"
    );
    let shown = flags_refusal(&[("jwt_algorithm", "HS512")]);
    assert!(
        shown.starts_with("jwt_algorithm (from --jwt-algorithm)") && shown.contains("HS512"),
        "{shown}"
    );
    // A table's key, from its variable.
    let shown = Overrides::file(empty.path())
        .flag("sso_providers", "okta")
        .resolve(&vars(&[
            ("KEYWAY_SSO_OKTA_CLIENT_ID", "x"),
            ("KEYWAY_SSO_OKTA_ISSUER", "ftp://x"),
        ]))
        .unwrap_err()
        .to_string();
    assert!(
        shown.starts_with("sso.okta.issuer (from KEYWAY_SSO_OKTA_ISSUER)"),
        "{shown}"
    );
}

#[test]
fn short_jwt_secret_is_refused() {
    let f = file_with("");
    let o = Overrides::file(f.path());
    let err = o
        .resolve(&|k| (k == "KEYWAY_JWT_SECRET").then(|| "too-short".into()))
        .unwrap_err();
    assert!(err.to_string().contains("at least 32"), "{err}");
    let ok = o
        .resolve(&|k| (k == "KEYWAY_JWT_SECRET").then(|| "x".repeat(32)))
        .unwrap();
    assert!(ok.tokens.secret.is_some());
}

#[test]
fn secret_files_win_and_lose_their_trailing_newline() {
    let secret = file_with(&format!("{}\n", "s".repeat(40)));
    let cfg = file_with(&format!("jwt_secret = \"{}\"\n", "f".repeat(40)));
    let c = Overrides::file(cfg.path())
        .flag("jwt_secret_file", secret.path().display().to_string())
        .resolve(&|k| (k == "KEYWAY_JWT_SECRET").then(|| "e".repeat(40)))
        .unwrap();
    assert_eq!(c.tokens.secret.unwrap().expose_secret(), "s".repeat(40));
}

#[test]
fn environment_secret_overrides_the_file() {
    let cfg = file_with(&format!("jwt_secret = \"{}\"\n", "f".repeat(40)));
    let c = Overrides::file(cfg.path())
        .resolve(&|k| (k == "KEYWAY_JWT_SECRET").then(|| "e".repeat(40)))
        .unwrap();
    assert_eq!(c.tokens.secret.unwrap().expose_secret(), "e".repeat(40));
}

#[test]
fn database_url_file_is_read() {
    let url = file_with("sqlite:///tmp/from-file.db\n");
    let c = from_flags(&[("database_url_file", &url.path().display().to_string())]).unwrap();
    assert_eq!(c.database_url.expose_secret(), "sqlite:///tmp/from-file.db");
}

#[test]
fn debug_output_hides_secrets() {
    let mut c = Config::defaults();
    c.database_url = SecretString::from("postgres://u:hunter2@db/k");
    c.tokens.secret = Some(SecretString::from("x".repeat(40)));
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains(&"x".repeat(40)),
        "{shown}"
    );
}

fn smtp_env(url: &'static str) -> impl Fn(&str) -> Option<String> {
    move |k| (k == "KEYWAY_SMTP_URL").then(|| url.into())
}

#[test]
fn smtp_url_precedence_file_setting_then_environment_then_config_file() {
    let cfg = file_with("smtp_url = \"smtp://127.0.0.1:1001\"\n");
    let o = Overrides::file(cfg.path());
    let url = |c: Config| c.mail.smtp_url.unwrap().expose_secret().to_owned();
    assert_eq!(url(o.resolve(&no_env).unwrap()), "smtp://127.0.0.1:1001");
    let env = smtp_env("smtps://u:p@mail.example.com");
    assert_eq!(
        url(o.resolve(&env).unwrap()),
        "smtps://u:p@mail.example.com"
    );

    let secret = file_with("smtp+starttls://apikey:s3cret@smtp.example.com:587\n");
    let with_file = o.flag("smtp_url_file", secret.path().display().to_string());
    assert_eq!(
        url(with_file.resolve(&env).unwrap()),
        "smtp+starttls://apikey:s3cret@smtp.example.com:587",
        "the *_FILE setting wins, without its trailing newline"
    );
}

#[test]
fn smtp_url_file_can_be_named_in_the_config_file() {
    let secret = file_with("smtp://127.0.0.1:2525\n");
    let cfg = file_with(&format!(
        "smtp_url_file = \"{}\"\n",
        secret.path().display()
    ));
    let c = Overrides::file(cfg.path())
        .resolve(&smtp_env("smtp://127.0.0.1:1"))
        .unwrap();
    assert_eq!(
        c.mail.smtp_url.unwrap().expose_secret(),
        "smtp://127.0.0.1:2525"
    );

    let shown = flags_refusal(&[("smtp_url_file", "/nonexistent/smtp-url")]);
    assert!(
        shown.contains("/nonexistent/smtp-url") && shown.contains("--smtp-url-file"),
        "{shown}"
    );
}

#[test]
fn empty_smtp_url_means_none() {
    let c = Overrides::file(file_with("").path())
        .resolve(&smtp_env(""))
        .unwrap();
    assert!(c.mail.smtp_url.is_none());
}

#[test]
fn debug_output_hides_the_smtp_password() {
    let mut c = Config::defaults();
    c.mail.smtp_url = Some(SecretString::from("smtps://u:hunter2@mail.example.com"));
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

/// The flags come from the declarations: `serve` takes each setting that has one, with its help.
#[test]
fn flags_are_parsed_into_overrides() {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        serve: ServeArgs,
    }
    let cli = <Cli as clap::Parser>::try_parse_from([
        "keyway",
        "--relay-clients",
        "192.0.2.10,",
        "--relay-clients",
        "::ffff:192.0.2.11",
        "--database-pool-size",
        "3",
        "--rate-limit",
        "false",
    ])
    .unwrap();
    let o = cli.common.overrides(cli.serve);
    let c = Overrides {
        config: Some(file_with("").path().to_owned()),
        ..o
    }
    .resolve(&no_env)
    .unwrap();
    let nets: Vec<ipnet::IpNet> = ["192.0.2.10/32", "192.0.2.11/32"]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(c.auth.rate_limits.relay_clients, nets);
    assert_eq!(c.database.pool_size, Some(3));
    assert!(!c.auth.rate_limits.enabled);
    // A flag that is no list is given once.
    assert!(
        <Cli as clap::Parser>::try_parse_from(["keyway", "--bind", "a", "--bind", "b"]).is_err()
    );
    // Secrets have no flag.
    assert!(<Cli as clap::Parser>::try_parse_from(["keyway", "--jwt-secret", "x"]).is_err());
    assert!(<Cli as clap::Parser>::try_parse_from(["keyway", "--smtp-url", "x"]).is_err());
}
