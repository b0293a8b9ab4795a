//! The `keyway` subcommands, one module per command group; `main.rs` only parses and dispatches. Each
//! returns an [`anyhow::Result`]: `main` prints the error after `keyway: `, starting lower-case with
//! what could not be done, then why (the import, which reports more than that, picks its exit status).
//! Messages are whole sentences built where the error is met: the store's and the core's errors
//! already name their cause, so they are formatted in, not chained as `context`, which would print
//! the cause twice.

pub mod audit;
pub mod doctor;
pub mod import;
pub mod keys;
pub mod migrate;
pub mod role;
pub mod serve;
pub mod user;

use anyhow::anyhow;
use keyway::StartError;
use keyway::store::StoreError;

/// The message for a database that cannot be opened: `cannot open the database URL: cause`, the URL
/// redacted (the store names it in every engine error).
pub fn open_error(e: &StoreError) -> anyhow::Error {
    match e {
        StoreError::Database(inner) => anyhow!("cannot open the database {inner}"),
        other => anyhow!("cannot open the database: {other}"),
    }
}

/// What an admin command says when it cannot get going: the database named, or the cause.
pub fn admin_error(e: &StartError) -> anyhow::Error {
    match e {
        StartError::Store(store) => open_error(store),
        other => start_error(other),
    }
}

/// A core error as the admin sees it: its own message, which already names the cause (`internal
/// error: …`), so the cause is not chained again.
pub fn core_error(e: keyway::error::Error) -> anyhow::Error {
    anyhow!("{e}")
}

pub fn start_error(e: &StartError) -> anyhow::Error {
    anyhow!("cannot start: {e}")
}
