//! The `keyway` command: parses the command line and calls the library.

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use keyway::auth::tokens::{KeyAlgorithm, Keys};
use keyway::auth::{AdminNewUser, Auth, Clock};
use keyway::config::{DatabaseArgs, Overrides};
use keyway::domain::{Email, Password, Username};
use keyway::store::User;

/// jemalloc instead of glibc's allocator: under load glibc's malloc and free took about a tenth of the
/// CPU of a token check (perf, `GET /api/users/me`); jemalloc serves the same requests ~40 % faster
/// (bench/). mimalloc was as fast but held twice the memory when idle.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: one arena, because per-thread caches serve nearly every
/// allocation without touching it, and each extra arena held about a megabyte when idle (measured on
/// 2 CPUs: `GET /api/users/me` was no slower). `_RJEM_MALLOC_CONF=narenas:8` in the environment
/// overrides it on a machine with many cores.
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: &[u8; 10] = b"narenas:1\0";
use keyway::{App, Config, StartError};

mod cli;

const DEMO_USERNAME: &str = "appsmith_user";
const DEMO_PASSWORD: &str = "appsmith_password";
const DEMO_EMAIL: &str = "appsmith_user@example.com";

#[derive(Parser)]
#[command(
    name = "keyway",
    version,
    about = "A Strapi-compatible authentication API"
)]
struct Cli {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API.
    Serve {
        /// Also create the confirmed demo account appsmith_user / appsmith_password.
        #[arg(long)]
        demo: bool,
        #[command(flatten)]
        settings: Box<Overrides>,
    },
    /// Apply the pending database migrations and exit. `serve` and the other commands apply them
    /// too; this lets a deployment migrate once, before starting new servers.
    Migrate,
    /// Manage accounts in the configured database.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the audit trail, oldest first.
    Audit {
        /// Only this user's events: a username, an email or an id (a deleted account's: its id).
        #[arg(long)]
        user: Option<String>,
        /// From this moment on: a duration ago (24h, 7d) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// At most this many events (the newest).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Manage the roles accounts can be given.
    #[command(subcommand)]
    Role(cli::role::RoleCommand),
    /// Check the configuration and the database as `serve` would use them, without serving: one
    /// line per check (ok, warn, fail); exit status 1 when any check fails.
    Doctor {
        #[command(flatten)]
        settings: Box<Overrides>,
    },
    /// Print the OpenAPI 3 description of the API (what /api/openapi.json serves).
    Openapi,
    /// Bring accounts over from another system into the configured database.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Import the users and roles of a Strapi 3, 4 or 5 database (SQLite or PostgreSQL). Users keep
    /// their ids and passwords; running it again imports only what is new or changed in Strapi.
    /// Exit status: 0 all imported, 2 the Strapi database cannot be used (nothing written),
    /// 3 done but some users were not imported (listed), 1 any other failure.
    Strapi {
        /// The Strapi database: a SQLite file (a path such as .tmp/data.db, or sqlite://PATH) or
        /// postgres://USER@HOST:PORT/DATABASE. Keep a password out of the command line: use
        /// KEYWAY_IMPORT_FROM, --from-file, PGPASSWORD or ~/.pgpass.
        #[arg(
            long,
            env = "KEYWAY_IMPORT_FROM",
            hide_env_values = true,
            required_unless_present = "from_file",
            conflicts_with = "from_file"
        )]
        from: Option<String>,
        /// File holding the Strapi database URL.
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a new signing key; it signs from now on, older keys keep verifying their tokens.
    /// Running servers pick it up within a second. Refused when jwt_secret is set: HS256 signs then,
    /// and is rotated by changing the secret.
    Rotate {
        /// Algorithm of the new key (default: the configured jwt_algorithm).
        #[arg(long)]
        algorithm: Option<KeyAlgorithm>,
    },
    /// List the signing keys and what each is doing.
    List,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from the first line of standard input.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Role name or type (default: the configured default role).
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        confirmed: bool,
        #[arg(long)]
        blocked: bool,
    },
    /// Change an account.
    Update {
        /// Username, email or id.
        user: String,
        /// Give it this role (name or type).
        #[arg(long, required = true)]
        role: Option<String>,
    },
    /// List accounts.
    List,
    /// Show one account and the single sign-on identities linked to it.
    Show {
        /// Username, email or id.
        user: String,
    },
    /// Block an account: its tokens stop working at once.
    Block {
        /// Username, email or id.
        user: String,
    },
    /// Unblock an account.
    Unblock {
        /// Username, email or id.
        user: String,
    },
    /// Delete an account and its sessions (its audit events stay, found by its id).
    Delete {
        /// Username, email or id.
        user: String,
    },
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // Held to the end of `main`: dropping it flushes the log lines still queued.
    let _log_guard = init_tracing();
    // `serve` and `doctor` take every setting as a flag; the other commands read the same variables
    // (an admin command still hashes with the configured parameters).
    let settings = match &mut cli.command {
        Command::Serve { settings, .. } | Command::Doctor { settings } => {
            Ok(std::mem::take(settings.as_mut()))
        }
        _ => Overrides::from_environment(),
    };
    let mut settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("keyway: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    cli.database.apply(&mut settings);
    let mut config = match settings.resolve(&|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keyway: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    // Only `serve` and `migrate` make a database: any other command run in the wrong directory would
    // otherwise create an empty one there and report, say, `0 user(s)`.
    if !matches!(cli.command, Command::Serve { .. } | Command::Migrate) {
        config.database.create_if_missing = false;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keyway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let done = |()| ExitCode::SUCCESS;
        match cli.command {
            Command::Serve { demo, .. } => serve(config, demo).await.map(done),
            Command::Migrate => migrate_command(config).await.map(done),
            Command::User(cmd) => user_command(config, cmd).await.map(done),
            Command::Keys(cmd) => keys_command(config, cmd).await.map(done),
            Command::Role(cmd) => cli::role::run(&config, cmd).await.map(done),
            Command::Doctor { .. } => Ok(cli::doctor::run(&config).await),
            Command::Audit { user, since, limit } => {
                audit_command(config, user, since, limit).await.map(done)
            }
            Command::Openapi => keyway::http::openapi()
                .to_pretty_json()
                .map(|doc| println!("{doc}"))
                .map_err(|e| format!("cannot serialize the OpenAPI document: {e}"))
                .map(done),
            // The import reports more than success or failure: it chooses its own exit status.
            Command::Import(ImportCommand::Strapi { from, from_file }) => {
                Ok(import_strapi(config, from, from_file).await)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("keyway: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Lines queued for the log writer thread before new ones are dropped. tracing-appender's default,
/// 128,000, allocates and touches its whole queue (32 bytes a line) at start: 4 MB, a fifth of an idle
/// server's memory. The writer keeps up with far more: with the access log on under full load (wrk,
/// 64 connections, 50,000-80,000 requests/s, stderr to a file or a pipe) no line was dropped.
const LOG_QUEUE_LINES: usize = 8192;

/// Logs go to stderr through a writer thread, so a request never waits for a `write` to the terminal
/// or a pipe (one line per request at `info`). Colours only when stderr is a terminal.
fn init_tracing() -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    use tracing_appender::non_blocking::NonBlockingBuilder;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("KEYWAY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer)
        .init();
    guard
}

async fn serve(mut config: Config, demo: bool) -> Result<(), String> {
    if config.mail.smtp_url.is_none() {
        // A demo is development by definition; anywhere else, reset links in the log would let
        // whoever reads the log into any account, so that takes an explicit choice.
        config.mail.to_log |= demo;
        if !config.mail.to_log {
            return Err(NO_SMTP.into());
        }
    }
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let app = App::build(config.clone(), listener)
        .await
        .map_err(|e| start_error(&e))?;
    let addr = app.local_addr().map_err(|e| e.to_string())?;
    if demo {
        ensure_demo_account(app.auth()).await?;
    }
    // Checked against the address actually bound (port 0 resolved).
    let mut bound = config.clone();
    bound.bind = addr;
    if let Some(why) = cli::doctor::public_url_mismatch(&bound) {
        tracing::warn!("{why}");
    }
    if !app.auth().mailer().is_configured() {
        tracing::warn!(
            "no SMTP server configured (smtp_url): account emails are written to this log instead \
             of being sent, links and codes included — fine for development, not for production"
        );
    }
    let limits = &config.auth.rate_limits;
    if !limits.relay_clients.is_empty() {
        let relays: Vec<String> = limits.relay_clients.iter().map(|n| n.to_string()).collect();
        // Listed so an operator sees which addresses get per-user limits, a wider door than the rest.
        tracing::info!(
            relay_clients = relays.join(", "),
            relay_rate_limit_max = limits.relay_max,
            rate_limits = limits.enabled,
            "relay clients: route limits count per user, under a cap per route and address"
        );
    }
    // Handlers go in before the start line: whoever waits for that line may signal at once.
    let shutdown =
        shutdown_signal().map_err(|e| format!("cannot install the signal handlers: {e}"))?;
    println!(
        "Keyway listening on http://{addr} (database {})",
        keyway::store::redact_url(config.database_url.expose_secret())
    );
    if demo {
        println!(
            "Demo account: {DEMO_USERNAME} / {DEMO_PASSWORD}. Try:\n  \
             curl -s http://{addr}/api/auth/local -H 'Content-Type: application/json' \
             -d '{{\"identifier\":\"{DEMO_USERNAME}\",\"password\":\"{DEMO_PASSWORD}\"}}'\n  \
             curl -s http://{addr}/api/users/me -H \"Authorization: Bearer $JWT\""
        );
    }
    app.run(shutdown).await.map_err(|e| e.to_string())?;
    println!("Keyway stopped");
    Ok(())
}

/// Why `serve` does not start without SMTP, and the two ways forward.
const NO_SMTP: &str = "no SMTP server configured: set smtp_url (KEYWAY_SMTP_URL or \
     KEYWAY_SMTP_URL_FILE) so account mail is delivered, or, for development only, mail_to_log = true \
     (KEYWAY_MAIL_TO_LOG=true) to write it, reset links included, to the log instead";

async fn ensure_demo_account(auth: &Arc<Auth>) -> Result<(), String> {
    if auth
        .find_by_username(DEMO_USERNAME)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(());
    }
    let new = AdminNewUser {
        username: Username::parse(DEMO_USERNAME)?,
        email: Email::parse(DEMO_EMAIL)?,
        password: Password::parse(DEMO_PASSWORD)?,
        role: Some("authenticated".into()),
        confirmed: true,
        blocked: false,
    };
    auth.admin_create_user(new)
        .await
        .map_err(|e| format!("cannot create the demo account: {e}"))?;
    tracing::warn!("demo account {DEMO_USERNAME} created: do not use --demo in production");
    Ok(())
}

/// Registers the SIGINT and SIGTERM handlers now and returns a future that completes on the first
/// of them. Registering is done eagerly: a signal that arrives before the future is first polled
/// would otherwise kill the process without a graceful shutdown.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing in-flight requests");
    })
}

/// What an admin command says when it cannot get going: the database named, or the cause.
fn admin_error(e: &StartError) -> String {
    match e {
        StartError::Store(store) => cli::open_error(store),
        other => format!("cannot start: {other}"),
    }
}

fn start_error(e: &StartError) -> String {
    format!("cannot start: {e}")
}

async fn migrate_command(config: Config) -> Result<(), String> {
    let database = keyway::store::redact_url(config.database_url.expose_secret());
    let applied = keyway::store::migrate(&config.database_url, &config.database)
        .await
        .map_err(|e| admin_error(&e.into()))?;
    for m in &applied {
        println!("applied {:04} {}", m.version, m.description);
    }
    if applied.is_empty() {
        println!("database {database} is up to date: nothing to apply");
    } else {
        println!("{} migration(s) applied to {database}", applied.len());
    }
    Ok(())
}

async fn user_command(config: Config, cmd: UserCommand) -> Result<(), String> {
    let auth = keyway::build_auth(&config, keyway::Role::Admin)
        .await
        .map_err(|e| admin_error(&e))?;
    let show_err = |e: keyway::error::Error| match e {
        // A policy refusal: say which rule, not "validation failed".
        keyway::error::Error::Fields(errors) => errors
            .iter()
            .map(|f| f.message.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    };
    match cmd {
        UserCommand::Add {
            username,
            email,
            password_stdin: _,
            role,
            confirmed,
            blocked,
        } => {
            let password = read_password_line()?;
            let username = Username::parse(&username)?;
            let email = Email::parse(&email)?;
            let password = auth
                .password_policy()
                .parse(&password, &[username.as_str(), email.as_str()])?;
            let new = AdminNewUser {
                username,
                email,
                password,
                role,
                confirmed,
                blocked,
            };
            let user = auth.admin_create_user(new).await.map_err(show_err)?;
            println!("created {}", describe(&user));
        }
        UserCommand::Update { user, role } => {
            let mut user = auth
                .find_user(&user)
                .await
                .map_err(show_err)?
                .ok_or_else(|| format!("no user with username, email or id '{user}'"))?;
            if let Some(role) = role {
                user = auth
                    .set_role(&user.id.to_string(), &role)
                    .await
                    .map_err(show_err)?;
            }
            println!("updated {}", describe(&user));
        }
        UserCommand::List => {
            let users = auth.list_users().await.map_err(show_err)?;
            println!(
                "{:>6}  {:<24} {:<32} {:<14} {:<9} {:<7}",
                "ID", "USERNAME", "EMAIL", "ROLE", "CONFIRMED", "BLOCKED"
            );
            for u in &users {
                println!(
                    "{:>6}  {:<24} {:<32} {:<14} {:<9} {:<7}",
                    u.id, u.username, u.email, u.role.name, u.confirmed, u.blocked
                );
            }
            println!("{} user(s)", users.len());
        }
        UserCommand::Show { user } => {
            let user = auth
                .find_user(&user)
                .await
                .map_err(show_err)?
                .ok_or_else(|| format!("no user with username, email or id '{user}'"))?;
            println!("id:         {}", user.id);
            println!("username:   {}", user.username);
            println!("email:      {}", user.email);
            println!("provider:   {}", user.provider);
            println!("role:       {}", user.role.name);
            println!("confirmed:  {}", user.confirmed);
            println!("blocked:    {}", user.blocked);
            println!("created:    {}", keyway::http::users::iso(user.created_at));
            let identities = auth.identities(user.id).await.map_err(show_err)?;
            if identities.is_empty() {
                println!("identities: none");
            } else {
                println!("identities:");
                for i in &identities {
                    println!(
                        "  {:<12} {:<40} {:<32} linked {}",
                        i.provider,
                        i.subject,
                        i.email.as_deref().unwrap_or("-"),
                        keyway::http::users::iso(i.created_at)
                    );
                }
            }
        }
        UserCommand::Block { user } => {
            let user = auth.set_blocked(&user, true).await.map_err(show_err)?;
            println!("blocked {}", describe(&user));
        }
        UserCommand::Unblock { user } => {
            let user = auth.set_blocked(&user, false).await.map_err(show_err)?;
            println!("unblocked {}", describe(&user));
        }
        UserCommand::Delete { user } => {
            let user = auth.delete_user(&user).await.map_err(show_err)?;
            println!("deleted {}", describe(&user));
        }
    }
    Ok(())
}

async fn keys_command(config: Config, cmd: KeysCommand) -> Result<(), String> {
    // The store alone: key commands need neither the hasher nor the mailer.
    let store = keyway::store::connect(&config.database_url, &config.database)
        .await
        .map_err(|e| start_error(&e.into()))?;
    let store = store.as_ref();
    let clock = keyway::auth::SystemClock;
    let iso = keyway::http::users::iso;
    match cmd {
        KeysCommand::Rotate { algorithm } => {
            // A key made now would sign nothing and be published for nothing.
            if config.tokens.secret.is_some() {
                return Err(keyway::auth::tokens::HS256_ROTATE_REFUSED.to_owned());
            }
            let alg = algorithm.unwrap_or(config.tokens.algorithm);
            let key = Keys::rotate(store, alg, clock.now_millis())
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "new signing key {} ({}); older keys verify until their tokens expire",
                key.kid, key.alg
            );
            if alg != config.tokens.algorithm {
                println!(
                    "note: jwt_algorithm is {}; a server started with that setting generates a {} key \
                     again — set jwt_algorithm = \"{}\" to keep this one",
                    config.tokens.algorithm.name(),
                    config.tokens.algorithm.name(),
                    alg.name()
                );
            }
        }
        KeysCommand::List => {
            let keys = Keys::describe(store, &config.tokens)
                .await
                .map_err(|e| e.to_string())?;
            println!("{:<18} {:<6} {:<25} STATUS", "KID", "ALG", "CREATED");
            let now = clock.now_millis();
            for k in keys {
                let mut status = match (k.signing, k.verifies_until) {
                    (true, _) => "signing".to_owned(),
                    (false, None) => "verifying until a server starts with jwt_secret".to_owned(),
                    (false, Some(t)) if t > now => format!("verifying until {}", iso(t)),
                    (false, Some(t)) => format!("retired since {}", iso(t)),
                };
                if let Some(f) = &k.fingerprint {
                    status.push_str(&format!(" (jwt_secret, fingerprint {f})"));
                }
                let created = k.created_at.map_or_else(|| "-".to_owned(), iso);
                println!("{:<18} {:<6} {created:<25} {status}", k.kid, k.alg);
            }
        }
    }
    Ok(())
}

async fn audit_command(
    config: Config,
    user: Option<String>,
    since: Option<String>,
    limit: u32,
) -> Result<(), String> {
    let auth = keyway::build_auth(&config, keyway::Role::Admin)
        .await
        .map_err(|e| admin_error(&e))?;
    let since = match since {
        None => None,
        Some(text) => Some(match keyway::config::parse_duration(&text) {
            Ok(ago) => auth.now_millis() - ago.as_millis() as i64,
            Err(_) => chrono::DateTime::parse_from_rfc3339(&text)
                .map_err(|_| {
                    format!("--since '{text}' is neither a duration (24h) nor an RFC 3339 time")
                })?
                .timestamp_millis(),
        }),
    };
    let events = auth
        .audit_trail(user.as_deref(), since, limit)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{:<24}  {:<20} {:>7}  {:<39} DETAIL",
        "AT", "EVENT", "USER", "CLIENT"
    );
    for e in &events {
        println!(
            "{:<24}  {:<20} {:>7}  {:<39} {}",
            keyway::http::users::iso(e.at),
            e.kind,
            e.user_id
                .map(|id| id.to_string())
                .unwrap_or_else(|| "-".into()),
            e.ip.as_deref().unwrap_or("-"),
            [e.detail.as_deref(), e.user_agent.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" · ")
        );
    }
    println!("{} event(s)", events.len());
    Ok(())
}

fn read_password_line() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(password)
}

fn describe(u: &User) -> String {
    format!(
        "user {} '{}' <{}> (role {}, confirmed {}, blocked {})",
        u.id, u.username, u.email, u.role.name, u.confirmed, u.blocked
    )
}

/// `keyway import strapi`: progress on stderr, the summary on stdout.
async fn import_strapi(
    config: Config,
    from: Option<String>,
    from_file: Option<PathBuf>,
) -> ExitCode {
    use keyway::import::strapi;
    let source = match (from, from_file) {
        (Some(url), _) => url,
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().to_owned(),
            Err(e) => {
                eprintln!("keyway: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        // clap requires one of the two.
        (None, None) => return ExitCode::from(2),
    };
    // The source first: when it cannot be used, Keyway's database is not even opened.
    let snapshot = match strapi::read(&source).await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            eprintln!("keyway: import failed: {e}");
            return ExitCode::from(2);
        }
    };
    let store = match keyway::store::connect(&config.database_url, &config.database).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("keyway: {}", admin_error(&e.into()));
            return ExitCode::FAILURE;
        }
    };
    let options = strapi::Options {
        default_role: config.auth.default_role.clone(),
        now: keyway::auth::SystemClock.now_millis(),
    };
    let mut progress = ProgressLine::new();
    let result = strapi::import(store.as_ref(), snapshot, &options, &mut |p| {
        progress.show(p)
    })
    .await;
    progress.finish();
    match result {
        Ok(report) => {
            println!("{report}");
            if report.complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("keyway: import failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The import's progress on stderr: one line rewritten in place on a terminal, a line every
/// [`Self::EVERY`] users otherwise (a log stays readable).
struct ProgressLine {
    terminal: bool,
    open: bool,
}

impl ProgressLine {
    const EVERY: usize = 1000;

    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            open: false,
        }
    }

    fn show(&mut self, progress: &keyway::import::strapi::Progress) {
        use keyway::import::strapi::Progress;
        match *progress {
            Progress::Read {
                version,
                users,
                roles,
            } => eprintln!("read the {version} database: {users} users, {roles} roles"),
            Progress::Users { done, total } => {
                let step = if self.terminal { 100 } else { Self::EVERY };
                if done % step != 0 && done != total {
                    return;
                }
                if self.terminal {
                    eprint!("\rusers: {done}/{total}");
                    let _ = std::io::stderr().flush();
                    self.open = true;
                } else {
                    eprintln!("users: {done}/{total}");
                }
            }
        }
    }

    /// Ends a line left open on the terminal.
    fn finish(&mut self) {
        if self.open {
            eprintln!();
            self.open = false;
        }
    }
}
