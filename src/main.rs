//! The `keyway` command: parses the command line and calls the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

use keyway::config::{CommonArgs, ServeArgs};

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

mod cli;

#[derive(Parser)]
#[command(
    name = "keyway",
    version,
    about = "A Strapi-compatible authentication API"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
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
        settings: Box<ServeArgs>,
    },
    /// Apply the pending database migrations and exit. `serve` and the other commands apply them
    /// too; this lets a deployment migrate once, before starting new servers.
    Migrate,
    /// Manage accounts in the configured database.
    #[command(subcommand)]
    User(cli::user::UserCommand),
    /// Manage token signing keys.
    #[command(subcommand)]
    Keys(cli::keys::KeysCommand),
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
        settings: Box<ServeArgs>,
    },
    /// Print the OpenAPI 3 description of the API (what /api/openapi.json serves).
    Openapi,
    /// Bring accounts over from another system into the configured database.
    #[command(subcommand)]
    Import(cli::import::ImportCommand),
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // Held to the end of `main`: dropping it flushes the log lines still queued.
    let _log_guard = init_tracing();
    // `serve` and `doctor` take every setting as a flag; every command reads the same variables (an
    // admin command still hashes with the configured parameters).
    let flags = match &mut cli.command {
        Command::Serve { settings, .. } | Command::Doctor { settings } => {
            std::mem::take(settings.as_mut())
        }
        _ => ServeArgs::default(),
    };
    let overrides = std::mem::take(&mut cli.common).overrides(flags);
    let mut config = match overrides.resolve(&|k| std::env::var(k).ok()) {
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
            Command::Serve { demo, .. } => cli::serve::run(config, demo).await.map(done),
            Command::Migrate => cli::migrate::run(config).await.map(done),
            Command::User(cmd) => cli::user::run(config, cmd).await.map(done),
            Command::Keys(cmd) => cli::keys::run(config, cmd).await.map(done),
            Command::Role(cmd) => cli::role::run(&config, cmd).await.map(done),
            Command::Doctor { .. } => Ok(cli::doctor::run(&config).await),
            Command::Audit { user, since, limit } => {
                cli::audit::run(config, user, since, limit).await.map(done)
            }
            Command::Openapi => keyway::http::openapi()
                .to_pretty_json()
                .map(|doc| println!("{doc}"))
                .context("cannot serialize the OpenAPI document")
                .map(done),
            // The import reports more than success or failure: it chooses its own exit status.
            Command::Import(cli::import::ImportCommand::Strapi { from, from_file }) => {
                Ok(cli::import::import_strapi(config, from, from_file).await)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // `{:#}`: the message, then each cause a `context` added, on one line.
            eprintln!("keyway: {e:#}");
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
