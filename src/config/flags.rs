//! The command-line flags, derived from the declarations: a flag per setting that has one, its help
//! the setting's doc comment and default. `serve` and `doctor` take every setting's flag
//! ([`ServeArgs`]); every command takes the configuration file and the database ones
//! ([`CommonArgs`]). Flags give text, read by the same rules as the variables.

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use std::path::PathBuf;

use super::Overrides;
use crate::settings::{Reach, Setting};

fn arg(s: &'static Setting) -> Arg {
    let flag = s.flag().unwrap_or_default();
    Arg::new(s.key)
        .long(flag.trim_start_matches('-').to_owned())
        .value_name(s.key.to_uppercase())
        .help(s.help())
        .value_parser(clap::value_parser!(String))
        // A list may be given as one comma-separated value or as the flag repeated.
        .action(match s.ty {
            "List" => ArgAction::Append,
            _ => ArgAction::Set,
        })
}

fn given(m: &ArgMatches, reach: Reach) -> Vec<(String, String)> {
    super::settings()
        .filter(|s| s.reach == reach)
        .filter_map(|s| {
            let values: Vec<&str> = m.get_many::<String>(s.key)?.map(String::as_str).collect();
            Some((s.key.to_owned(), values.join(",")))
        })
        .collect()
}

/// Every setting's flag: `serve`'s and `doctor`'s.
#[derive(Debug, Clone, Default)]
pub struct ServeArgs(Vec<(String, String)>);

impl FromArgMatches for ServeArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self(given(m, Reach::Serve)))
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for ServeArgs {
    fn augment_args(cmd: Command) -> Command {
        cmd.args(
            super::settings()
                .filter(|s| s.reach == Reach::Serve)
                .map(arg),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

/// What every command takes: the configuration file and the database. Global flags, so they may stand
/// before or after the subcommand, and the only ones besides a command's own in its `--help`.
#[derive(Debug, Clone, Default)]
pub struct CommonArgs {
    config: Option<PathBuf>,
    flags: Vec<(String, String)>,
}

impl CommonArgs {
    /// The overrides of the command line: these and `serve`'s flags, when the command has them.
    pub fn overrides(self, serve: ServeArgs) -> Overrides {
        let mut flags = self.flags;
        flags.extend(serve.0);
        Overrides {
            config: self.config,
            flags,
        }
    }
}

impl FromArgMatches for CommonArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self {
            config: m.get_one::<PathBuf>("config").cloned(),
            flags: given(m, Reach::Global),
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for CommonArgs {
    fn augment_args(cmd: Command) -> Command {
        let config = Arg::new("config")
            .long("config")
            .env("KEYWAY_CONFIG")
            .value_name("CONFIG")
            .value_parser(clap::value_parser!(PathBuf))
            .help("Configuration file (TOML). Default: ./keyway.toml when it exists.");
        cmd.next_help_heading("Configuration and database (every command)")
            .arg(config.global(true))
            .args(
                super::settings()
                    .filter(|s| s.reach == Reach::Global)
                    .map(|s| arg(s).global(true)),
            )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}
