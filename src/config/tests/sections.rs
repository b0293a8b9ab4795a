//! Each section's values and refusals, through the layers.

use super::*;
use crate::store::SslMode;

#[test]
fn relay_clients_resolve_canonical_from_file_and_flags() {
    let defaults = from_file("").unwrap();
    assert!(defaults.auth.rate_limits.relay_clients.is_empty());
    assert_eq!(defaults.auth.rate_limits.relay_max, 600);

    let f = file_with(
        "relay_clients = [\"::ffff:172.17.0.0/112\", \"10.0.0.7\", \"2001:db8::/64\"]\n\
         relay_rate_limit_max = 50\n",
    );
    let c = Overrides::file(f.path()).resolve(&no_env).unwrap();
    let nets =
        |list: &[&str]| -> Vec<ipnet::IpNet> { list.iter().map(|n| n.parse().unwrap()).collect() };
    assert_eq!(
        c.auth.rate_limits.relay_clients,
        nets(&["172.17.0.0/16", "10.0.0.7/32", "2001:db8::/64"]),
        "mapped networks are IPv4, bare addresses are /32"
    );
    assert_eq!(c.auth.rate_limits.relay_max, 50);

    // The flag (and the variable, read the same way) is comma-separated and wins over the file.
    let c = Overrides::file(f.path())
        .flag("relay_clients", "192.0.2.10, ::ffff:192.0.2.11,")
        .flag("relay_rate_limit_max", "120")
        .resolve(&no_env)
        .unwrap();
    assert_eq!(
        c.auth.rate_limits.relay_clients,
        nets(&["192.0.2.10/32", "192.0.2.11/32"])
    );
    assert_eq!(c.auth.rate_limits.relay_max, 120);

    refused_files(&[
        "relay_clients = [\"appsmith\"]",
        "relay_clients = [\"10.0.0.0/33\"]",
        "relay_rate_limit_max = 0",
    ]);
}

#[test]
fn edge_settings_resolve_and_are_validated() {
    let defaults = from_file("").unwrap();
    assert_eq!(
        defaults.transport.forwarded_header,
        ForwardedHeader::XForwardedFor
    );
    assert_eq!(defaults.auth.ipv6_prefix_len, 64);
    assert_eq!(
        defaults.transport.connections.idle_timeout,
        Duration::from_secs(60)
    );
    assert_eq!(defaults.transport.connections.http2_max_streams, 100);

    let c = from_file(
        "forwarded_header = \"forwarded\"\nipv6_prefix_len = 56\nidle_timeout = \"90s\"\n\
         http2_max_streams = 32\ntrusted_proxies = [\"::ffff:10.0.0.0/104\"]\n",
    )
    .unwrap();
    assert_eq!(c.transport.forwarded_header, ForwardedHeader::Forwarded);
    assert_eq!(c.auth.ipv6_prefix_len, 56);
    assert_eq!(
        c.transport.connections.idle_timeout,
        Duration::from_secs(90)
    );
    assert_eq!(c.transport.connections.http2_max_streams, 32);
    assert_eq!(
        c.transport.trusted_proxies,
        vec!["10.0.0.0/8".parse::<ipnet::IpNet>().unwrap()],
        "an IPv4-mapped network is compared as the IPv4 network it is"
    );

    refused_files(&[
        "ipv6_prefix_len = 0",
        "ipv6_prefix_len = 129",
        "idle_timeout = 0",
        "http2_max_streams = 0",
        "forwarded_header = \"x-real-ip\"",
        "max_header_bytes = 100",
        "bind = \"localhost\"",
        "cors_origins = [\"https://app.example.com/path\"]",
    ]);
}

#[test]
fn database_settings_default_and_layer() {
    let c = from_file("").unwrap();
    assert_eq!(c.database, DatabaseSettings::default());
    assert_eq!(c.database.pool_size, None, "the engine's own default");
    assert_eq!(c.database.statement_timeout, Duration::from_secs(30));
    assert_eq!(c.database.ssl_mode, None, "the URL's, else prefer");

    let f = file_with(
        "database_url = \"postgres://k@db/keyway\"\n\
         database_pool_size = 25\n\
         database_statement_timeout = \"2m\"\n\
         database_sslmode = \"verify-full\"\n",
    );
    let from_file = Overrides::file(f.path());
    let c = from_file.resolve(&no_env).unwrap();
    assert_eq!(c.database.pool_size, Some(25));
    assert_eq!(c.database.statement_timeout, Duration::from_secs(120));
    assert_eq!(c.database.ssl_mode, Some(SslMode::VerifyFull));

    let c = from_file
        .flag("database_pool_size", "3")
        .flag("database_statement_timeout", "0")
        .flag("database_sslmode", "require")
        .resolve(&no_env)
        .unwrap();
    assert_eq!(c.database.pool_size, Some(3));
    assert_eq!(
        c.database.statement_timeout,
        Duration::ZERO,
        "0 is no limit"
    );
    assert_eq!(c.database.ssl_mode, Some(SslMode::Require));

    assert!(flags_refusal(&[("database_pool_size", "0")]).contains("database_pool_size"));
    assert!(
        flags_refusal(&[("database_statement_timeout", "soon")])
            .contains("database_statement_timeout")
    );
    let bad_mode = file_refusal("database_sslmode = \"sometimes\"\n");
    assert!(bad_mode.contains("sometimes"), "{bad_mode}");
}

#[test]
fn sslmode_in_the_url_and_the_setting_must_agree() {
    let with = |url: &str, mode: Option<&str>| {
        let mut flags = vec![("database_url", url)];
        flags.extend(mode.map(|m| ("database_sslmode", m)));
        from_flags(&flags)
    };
    let c = with("postgres://k@db/keyway?sslmode=require", None).unwrap();
    assert_eq!(c.database.ssl_mode, None, "left to the URL");
    let c = with("postgres://k@db/keyway?sslmode=Require", Some("require")).unwrap();
    assert_eq!(c.database.ssl_mode, Some(SslMode::Require));
    let err = with(
        "postgresql://k:hunter2@db/keyway?sslmode=verify-full",
        Some("disable"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("database_sslmode") && err.contains("verify-full"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        with("sqlite://keyway.db", Some("require")).is_ok(),
        "SQLite ignores it"
    );
}

#[test]
fn mail_to_log_and_readable_database_are_off_unless_chosen() {
    let c = from_file("").unwrap();
    assert!(!c.mail.to_log && !c.database.allow_readable_file);
    let f = file_with("mail_to_log = true\nallow_readable_database = true\n");
    let c = Overrides::file(f.path()).resolve(&no_env).unwrap();
    assert!(c.mail.to_log && c.database.allow_readable_file);
    let c = Overrides::file(f.path())
        .flag("mail_to_log", "false")
        .flag("allow_readable_database", "false")
        .resolve(&no_env)
        .unwrap();
    assert!(
        !c.mail.to_log && !c.database.allow_readable_file,
        "flags win"
    );
}

#[test]
fn mail_defaults() {
    let c = from_file("").unwrap();
    assert!(c.mail.smtp_url.is_none());
    assert_eq!(c.mail.from, "Keyway <no-reply@localhost>");
    assert_eq!(c.mail.public_url, "http://127.0.0.1:8080");
    assert_eq!(c.mail.app_name, "Keyway");
    assert!(c.mail.templates_dir.is_none());
    assert_eq!(c.mail.attempts, 3);
}

#[test]
fn mail_settings_come_from_the_file_and_flags_win() {
    let templates = tempfile::tempdir().unwrap();
    let f = file_with(&format!(
        "mail_from = \"Acme <hello@acme.test>\"\n\
         public_url = \"https://auth.acme.test/\"\n\
         app_name = \"Acme\"\n\
         mail_templates_dir = \"{}\"\n\
         smtp_url = \"smtp://127.0.0.1:2525\"\n",
        templates.path().display()
    ));
    let from_file = Overrides::file(f.path());
    let c = from_file.resolve(&no_env).unwrap();
    assert_eq!(c.mail.from, "Acme <hello@acme.test>");
    assert_eq!(
        c.mail.public_url, "https://auth.acme.test",
        "trailing slash gone"
    );
    assert_eq!(c.mail.app_name, "Acme");
    assert_eq!(c.mail.templates_dir.as_deref(), Some(templates.path()));
    assert_eq!(
        c.mail.smtp_url.unwrap().expose_secret(),
        "smtp://127.0.0.1:2525"
    );

    let other_templates = tempfile::tempdir().unwrap();
    let c = from_file
        .flag("mail_from", "no-reply@example.com")
        .flag("public_url", "http://localhost:9000")
        .flag("app_name", "Example")
        .flag(
            "mail_templates_dir",
            other_templates.path().display().to_string(),
        )
        .resolve(&no_env)
        .unwrap();
    assert_eq!(c.mail.from, "no-reply@example.com");
    assert_eq!(c.mail.public_url, "http://localhost:9000");
    assert_eq!(c.mail.app_name, "Example");
    assert_eq!(
        c.mail.templates_dir.as_deref(),
        Some(other_templates.path())
    );
}

#[test]
fn bad_mail_settings_stop_start_up() {
    let refuse = |k: &str, v: &str| flags_refusal(&[(k, v)]);
    let err = refuse("public_url", "auth.acme.test");
    assert!(err.contains("http:// or https://"), "{err}");
    let err = refuse("mail_from", "nobody");
    assert!(err.contains("mail_from"), "{err}");
    let err = refuse("mail_templates_dir", "/nonexistent/keyway-mail");
    assert!(err.contains("/nonexistent/keyway-mail"), "{err}");

    let err = Overrides::file(file_with("").path())
        .resolve(&vars(&[(
            "KEYWAY_SMTP_URL",
            "imap://u:hunter2@mail.example.com",
        )]))
        .unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("smtp_url") && shown.contains("imap"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn lifecycle_settings() {
    let c = from_file_and_flags(
        "reset_code_ttl = \"15m\"\nreset_url = \"https://app.example.com/reset\"\n",
        &[("confirmation_code_ttl", "2d")],
    )
    .unwrap();
    assert_eq!(c.auth.reset_code_ttl, Duration::from_secs(900));
    assert_eq!(c.auth.confirmation_code_ttl, Duration::from_secs(172_800));
    assert_eq!(
        c.auth.reset_url.as_deref(),
        Some("https://app.example.com/reset")
    );
    assert_eq!(c.auth.confirmation_redirect, None);
    let bad = file_refusal("confirmation_redirect = \"javascript:alert(1)\"\n");
    assert!(bad.contains("confirmation_redirect"), "{bad}");
    let c = from_flags(&[("audit_retention", "7d")]).unwrap();
    assert_eq!(c.auth.audit_retention, Duration::from_secs(7 * 86_400));
}

#[test]
fn page_settings() {
    let c = from_file_and_flags(
        "base_path = \"login\"\naccent_color = \"#0a7\"\n",
        &[("logo_url", "https://cdn.example.com/logo.svg")],
    )
    .unwrap();
    assert_eq!(c.pages.base_path, "/login/");
    assert_eq!(c.auth.pages_path, "/login/");
    assert_eq!(c.pages.accent_color.as_deref(), Some("#0a7"));
    assert_eq!(
        c.pages.logo_url.as_deref(),
        Some("https://cdn.example.com/logo.svg")
    );
    for (key, bad) in [
        ("accent_color", "red;}"),
        ("base_path", "/api/x"),
        ("base_path", "/a/../b"),
        ("logo_url", "javascript:x"),
        ("refresh_cookie_name", "a b"),
    ] {
        let err = flags_refusal(&[(key, bad)]);
        assert!(err.contains(key), "{key} = {bad}: {err}");
    }
}

#[test]
fn pwned_check_url() {
    let on = from_file("pwned_check_url = \"https://api.pwnedpasswords.com/range/\"\n").unwrap();
    let check = on.auth.pwned_check.unwrap();
    assert_eq!(check.range_url, "https://api.pwnedpasswords.com/range");
    assert_eq!(
        check.timeout,
        crate::auth::policy::DEFAULT_BREACH_CHECK_TIMEOUT
    );
    let off = from_file_and_flags(
        "pwned_check_url = \"https://example.com/range\"\n",
        &[("pwned_check_url", "")],
    )
    .unwrap();
    assert_eq!(off.auth.pwned_check, None, "empty turns it off");
    let bad = flags_refusal(&[("pwned_check_url", "ftp://example.com/range")]);
    assert!(bad.contains("pwned_check_url"), "{bad}");
}

#[test]
fn rate_limit_routes_name_limited_routes() {
    let c = from_file("[rate_limit_routes]\n\"/api/auth/local\" = { max = 20, window = \"2m\" }\n")
        .unwrap();
    let limit = c.auth.rate_limits.routes["/api/auth/local"];
    assert_eq!((limit.max, limit.window), (20, Duration::from_secs(120)));
    let err = file_refusal("[rate_limit_routes]\n\"/api/nope\" = { max = 20, window = 60 }\n");
    assert!(
        err.contains("/api/nope") && err.contains("/api/auth/local"),
        "{err}"
    );
}

#[test]
fn pages_templates_dir_is_loaded_and_checked_at_start_up() {
    let good = tempfile::tempdir().unwrap();
    std::fs::write(good.path().join("login.html"), "<p>{{ app_name }}</p>\n").unwrap();
    let f = file_with(&format!(
        "pages_templates_dir = \"{}\"\n",
        good.path().display()
    ));
    let from_file = Overrides::file(f.path());
    let c = from_file.resolve(&no_env).unwrap();
    assert_eq!(c.pages.templates_dir.as_deref(), Some(good.path()));
    assert!(Config::defaults().pages.templates_dir.is_none());

    let refuse = |text: &str| {
        let bad = tempfile::tempdir().unwrap();
        std::fs::write(bad.path().join("register.html"), text).unwrap();
        from_file
            .clone()
            .flag("pages_templates_dir", bad.path().display().to_string())
            .resolve(&no_env)
            .unwrap_err()
            .to_string()
    };
    let err = refuse("<h1>\n{% if min_length %}\n");
    assert!(
        err.contains("page template ")
            && err.contains("register.html:")
            && err.contains("syntax error"),
        "{err}"
    );
    let err = refuse("<h1>\n\n<p>{{ min_lenght }}</p>\n");
    assert!(
        err.contains("register.html:3: unknown variable 'min_lenght'"),
        "{err}"
    );
    let err = from_file
        .flag("pages_templates_dir", "/nonexistent/keyway-pages")
        .resolve(&no_env)
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/keyway-pages"),
        "{err}"
    );
}
