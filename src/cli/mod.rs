//! Bodies of the `keyway` subcommands that outgrew `main.rs`. Each returns `Result<_, String>`: the
//! message `main` prints after `keyway: `, starting lower-case with what could not be done, then why.

pub mod doctor;
pub mod role;
