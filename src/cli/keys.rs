//! `keyway keys …`: signing keys, from the store alone (neither the hasher nor the mailer is needed).

use anyhow::bail;
use clap::Subcommand;

use keyway::Config;
use keyway::auth::Clock;
use keyway::auth::tokens::{KeyAlgorithm, Keys};

use super::start_error;

#[derive(Subcommand)]
pub enum KeysCommand {
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

pub async fn run(config: Config, cmd: KeysCommand) -> anyhow::Result<()> {
    // The store alone: key commands need neither the hasher nor the mailer.
    let store = keyway::store::connect(&config.database_url, &config.database)
        .await
        .map_err(|e| start_error(&e.into()))?;
    let store = store.as_ref();
    let clock = keyway::auth::SystemClock;
    let iso = keyway::store::iso;
    match cmd {
        KeysCommand::Rotate { algorithm } => {
            // A key made now would sign nothing and be published for nothing.
            if config.tokens.secret.is_some() {
                bail!(keyway::auth::tokens::HS256_ROTATE_REFUSED);
            }
            let alg = algorithm.unwrap_or(config.tokens.algorithm);
            let key = Keys::rotate(store, alg, clock.now_millis())
                .await
                .map_err(super::core_error)?;
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
                .map_err(super::core_error)?;
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
