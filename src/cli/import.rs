//! `keyway import strapi`: accounts from a Strapi database, with progress on stderr and an exit status
//! that says whether everything came over.

use clap::Subcommand;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use keyway::Config;
use keyway::auth::Clock;

use super::admin_error;

#[derive(Subcommand)]
pub enum ImportCommand {
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

/// `keyway import strapi`: progress on stderr, the summary on stdout.
pub async fn import_strapi(
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
