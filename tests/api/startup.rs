//! What `keyway serve` refuses to start with, and what it leaves on disk: the SQLite database (which
//! holds the private signing keys) is owner-only, and account mail (reset links) goes to the log only
//! when someone asked for that.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use tokio::process::Command;

use crate::cli::{Server, keyway, run, serve, stderr, tempdir};

/// `keyway serve` through `sh` with the usual umask, 022, so files made with default modes would be
/// world-readable (the umask of the test runner itself could hide that).
fn serve_with_umask_022(dir: &Path) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.current_dir(dir)
        .env_clear()
        .env("KEYWAY_ARGON2_MEMORY_KIB", "1024")
        .env("KEYWAY_ARGON2_ITERATIONS", "1")
        .env("KEYWAY_MAIL_TO_LOG", "true")
        .env(
            "KEYWAY_DATABASE_URL",
            format!("sqlite://{}", dir.join("keyway.db").display()),
        )
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .args(["-c", "umask 022 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_keyway"))
        .args(["serve", "--demo", "--bind", "127.0.0.1:0"]);
    cmd
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The attack: the database, its WAL and its shared-memory file were created 0644, so any local
/// user could copy the private signing keys out of them and forge tokens for any account.
#[tokio::test]
async fn the_database_and_its_wal_and_shm_are_owner_only() {
    let dir = tempdir();
    let server = Server::start(serve_with_umask_022(dir.path())).await;
    // A write, so the WAL has content and the shared memory is in use.
    server.login_ok("appsmith_user", "appsmith_password").await;
    for name in ["keyway.db", "keyway.db-wal", "keyway.db-shm"] {
        let path = dir.path().join(name);
        assert_eq!(mode(&path), 0o600, "{name} is {:o}", mode(&path));
    }
    server.stop().await;
}

/// A database someone made readable (an older Keyway, a copy, a chmod) stops start-up with the fix;
/// `allow_readable_database` accepts it knowingly.
#[tokio::test]
async fn a_database_others_can_read_stops_start_up_with_the_fix() {
    let dir = tempdir();
    let db = dir.path().join("keyway.db");
    let url = format!("sqlite://{}", db.display());
    let mut migrate = keyway(dir.path());
    migrate.env("KEYWAY_DATABASE_URL", &url).arg("migrate");
    let out = run(migrate, "").await;
    assert!(out.status.success(), "migrate: {}", stderr(&out));
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();

    let mut cmd = serve(keyway(dir.path()), &[]);
    cmd.env("KEYWAY_DATABASE_URL", &url);
    let out = run(cmd, "").await;
    assert!(!out.status.success());
    let said = stderr(&out);
    let fix = format!("chmod 600 {}", db.display());
    assert!(said.contains(&fix), "no `{fix}` in:\n{said}");
    assert!(said.contains("allow_readable_database"), "{said}");

    let mut cmd = serve(keyway(dir.path()), &[]);
    cmd.env("KEYWAY_DATABASE_URL", &url)
        .env("KEYWAY_ALLOW_READABLE_DATABASE", "true");
    Server::start(cmd).await.stop().await;
}

/// The attack: without SMTP, every reset link was written to the log at warn level, in production
/// too, so whoever reads the logs (a log shipper, a shared dashboard) could reset any password. Now
/// `serve` without `smtp_url` starts only with `--demo` or an explicit `mail_to_log = true`.
#[tokio::test]
async fn serve_without_smtp_refuses_to_start_unless_mail_to_log_is_chosen() {
    let dir = tempdir();
    let mut cmd = serve(keyway(dir.path()), &[]);
    cmd.env_remove("KEYWAY_MAIL_TO_LOG");
    let out = run(cmd, "").await;
    assert!(!out.status.success());
    let said = stderr(&out);
    for part in ["no SMTP server configured", "smtp_url", "mail_to_log"] {
        assert!(said.contains(part), "no `{part}` in:\n{said}");
    }

    let mut cmd = serve(keyway(dir.path()), &[]);
    cmd.env("KEYWAY_MAIL_TO_LOG", "false");
    assert!(!run(cmd, "").await.status.success());

    // --demo is development by definition, and so is an explicit mail_to_log.
    let mut cmd = serve(keyway(dir.path()), &["--demo"]);
    cmd.env_remove("KEYWAY_MAIL_TO_LOG");
    Server::start(cmd).await.stop().await;
    Server::start(serve(keyway(dir.path()), &[]))
        .await
        .stop()
        .await;
}

/// A template override with a syntax error or an unknown variable stops `serve`, and the message
/// names the file and the line: the page overrides by `--pages-templates-dir` and
/// `KEYWAY_PAGES_TEMPLATES_DIR`, the mail overrides by `KEYWAY_MAIL_TEMPLATES_DIR`.
#[tokio::test]
async fn broken_template_overrides_stop_serve_with_the_file_and_line() {
    let dir = tempdir();
    let folder = dir.path().join("templates");
    std::fs::create_dir_all(&folder).unwrap();
    let flag = ["--pages-templates-dir", folder.to_str().unwrap()];
    let cases = [
        (
            &flag[..],
            None,
            "home.html",
            "<h1>\n{% for x in %}\n",
            "2: syntax error",
        ),
        (
            &[],
            Some("KEYWAY_PAGES_TEMPLATES_DIR"),
            "home.html",
            "<h1>{{ app_name }}</h1>\n{{ usr }}\n",
            "2: unknown variable 'usr'",
        ),
        (
            &[],
            Some("KEYWAY_MAIL_TEMPLATES_DIR"),
            "reset-password.html",
            "<p>\n\n{{ link }</p>\n",
            "3: syntax error",
        ),
        (
            &[],
            Some("KEYWAY_MAIL_TEMPLATES_DIR"),
            "reset-password.html",
            "<p>{{ link }}</p>\n<p>{{ nmae }}</p>\n",
            "2: unknown variable 'nmae'",
        ),
    ];
    for (args, env, file, text, expected) in cases {
        for old in std::fs::read_dir(&folder).unwrap() {
            std::fs::remove_file(old.unwrap().path()).unwrap();
        }
        std::fs::write(folder.join(file), text).unwrap();
        let mut cmd = serve(keyway(dir.path()), args);
        if let Some(name) = env {
            cmd.env(name, &folder);
        }
        let out = run(cmd, "").await;
        assert!(!out.status.success(), "{file}: {text}");
        let said = stderr(&out);
        let at = format!("{}:{expected}", folder.join(file).display());
        assert!(said.contains(&at), "no `{at}` in:\n{said}");
    }
}
