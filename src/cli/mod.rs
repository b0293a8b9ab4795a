//! The `keyway` subcommands, one module per command group; `main.rs` only parses and dispatches. Each
//! returns `Result<_, String>`: the message `main` prints after `keyway: `, starting lower-case with
//! what could not be done, then why (the import, which reports more than that, picks its exit status).

pub mod audit;
pub mod doctor;
pub mod import;
pub mod keys;
pub mod migrate;
pub mod role;
pub mod serve;
pub mod user;

use keyway::StartError;
use keyway::store::StoreError;

/// The message for a database that cannot be opened: `cannot open the database URL: cause`, the URL
/// redacted (the store names it in every engine error).
pub fn open_error(e: &StoreError) -> String {
    match e {
        StoreError::Database(inner) => format!("cannot open the database {inner}"),
        other => format!("cannot open the database: {other}"),
    }
}

/// What an admin command says when it cannot get going: the database named, or the cause.
pub fn admin_error(e: &StartError) -> String {
    match e {
        StartError::Store(store) => open_error(store),
        other => format!("cannot start: {other}"),
    }
}

pub fn start_error(e: &StartError) -> String {
    format!("cannot start: {e}")
}
