//! `keyway audit`: the audit trail, oldest first, filtered by user and time.

use anyhow::anyhow;
use keyway::Config;

use super::admin_error;

pub async fn run(
    config: Config,
    user: Option<String>,
    since: Option<String>,
    limit: u32,
) -> anyhow::Result<()> {
    let auth = keyway::build_auth(&config, keyway::ServerRole::Admin)
        .await
        .map_err(|e| admin_error(&e))?;
    let since = match since {
        None => None,
        Some(text) => Some(match keyway::config::parse_duration(&text) {
            Ok(ago) => auth.now_millis() - ago.as_millis() as i64,
            Err(_) => chrono::DateTime::parse_from_rfc3339(&text)
                .map_err(|_| {
                    anyhow!("--since '{text}' is neither a duration (24h) nor an RFC 3339 time")
                })?
                .timestamp_millis(),
        }),
    };
    let events = auth
        .admin()
        .audit_trail(user.as_deref(), since, limit)
        .await
        .map_err(super::core_error)?;
    println!(
        "{:<24}  {:<20} {:>7}  {:<39} DETAIL",
        "AT", "EVENT", "USER", "CLIENT"
    );
    for e in &events {
        println!(
            "{:<24}  {:<20} {:>7}  {:<39} {}",
            keyway::store::iso(e.at),
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
