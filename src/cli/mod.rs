//! Bodies of the `keyway` subcommands that outgrew `main.rs`. Each returns `Result<_, String>`: the
//! message `main` prints after `keyway: `, starting lower-case with what could not be done, then why.

pub mod doctor;
pub mod role;

use keyway::store::StoreError;

/// The message for a database that cannot be opened: `cannot open the database URL: cause`, the URL
/// redacted (the store names it in every engine error).
pub fn open_error(e: &StoreError) -> String {
    match e {
        StoreError::Database(inner) => format!("cannot open the database {inner}"),
        other => format!("cannot open the database: {other}"),
    }
}
