//! `keyway migrate`: the pending migrations, applied once before new servers start.

use secrecy::ExposeSecret;

use keyway::Config;

use super::admin_error;

pub async fn run(config: Config) -> anyhow::Result<()> {
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
