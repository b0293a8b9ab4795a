//! `keyway role list|add|rename|remove`: the roles accounts can be given, on the store directly (no
//! hasher or keys needed). A role is named by its name (any case) or its type.

use anyhow::{anyhow, bail};
use clap::Subcommand;
use keyway::Config;
use keyway::store::{NewRole, RoleRemoval, Store, UserRole};

/// The two roles every database starts with: `authenticated` is the default role of new accounts and
/// `public` is Strapi's role of anonymous callers; Strapi clients expect both to exist.
const SEEDED: [&str; 2] = ["authenticated", "public"];

#[derive(Subcommand)]
pub enum RoleCommand {
    /// List the roles and how many accounts have each.
    List,
    /// Create a role.
    Add {
        /// Display name, e.g. "Editor".
        name: String,
        /// Machine name, unique (default: the name in lower case, spaces as dashes).
        #[arg(long = "type")]
        kind: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Rename a role; its type, and so every account's role, stays.
    Rename {
        /// The role's name or type.
        role: String,
        new_name: String,
    },
    /// Delete a role no account has (`authenticated`, `public` and the configured default_role
    /// cannot be removed).
    Remove {
        /// The role's name or type.
        role: String,
    },
}

pub async fn run(config: &Config, cmd: RoleCommand) -> anyhow::Result<()> {
    let store = keyway::store::connect(&config.database_url, &config.database)
        .await
        .map_err(|e| super::open_error(&e))?;
    let store = store.as_ref();
    let failed = |what: &str| {
        let what = what.to_owned();
        move |e: keyway::store::StoreError| anyhow!("cannot {what}: {e}")
    };
    match cmd {
        RoleCommand::List => {
            let roles = store.list_roles().await.map_err(failed("list the roles"))?;
            println!(
                "{:>4}  {:<24} {:<24} {:>6}  DESCRIPTION",
                "ID", "NAME", "TYPE", "USERS"
            );
            for (r, users) in &roles {
                println!(
                    "{:>4}  {:<24} {:<24} {:>6}  {}",
                    r.id, r.name, r.kind, users, r.description
                );
            }
            println!("{} role(s)", roles.len());
        }
        RoleCommand::Add {
            name,
            kind,
            description,
        } => {
            let name = checked_name(&name)?;
            let kind = match kind {
                Some(k) => checked_type(&k)?,
                None => checked_type(&name.to_lowercase().replace(' ', "-"))?,
            };
            let role = store
                .create_role(&NewRole {
                    name: name.clone(),
                    description,
                    kind: kind.clone(),
                })
                .await
                .map_err(|e| match e {
                    keyway::store::StoreError::Conflict => anyhow!(
                        "cannot add role '{name}': a role already has the name '{name}' or the \
                         type '{kind}'"
                    ),
                    other => anyhow!("cannot add role '{name}': {other}"),
                })?;
            println!("added {}", describe(&role));
        }
        RoleCommand::Rename { role, new_name } => {
            let found = find(store, &role).await?;
            let new_name = checked_name(&new_name)?;
            let now = chrono::Utc::now().timestamp_millis();
            match store.rename_role(found.id, &new_name, now).await {
                Ok(true) => println!("renamed role {} '{}' to '{new_name}'", found.id, found.name),
                Ok(false) => bail!("cannot rename role '{role}': it is gone"),
                Err(keyway::store::StoreError::Conflict) => {
                    bail!("cannot rename role '{role}': another role is named '{new_name}'");
                }
                Err(e) => bail!("cannot rename role '{role}': {e}"),
            }
        }
        RoleCommand::Remove { role } => {
            let found = find(store, &role).await?;
            if SEEDED.contains(&found.kind.as_str()) {
                bail!(
                    "cannot remove role '{}': '{}' is one of the two built-in roles",
                    found.name,
                    found.kind
                );
            }
            let default = &config.auth.default_role;
            if found.kind == *default || found.name.eq_ignore_ascii_case(default) {
                bail!(
                    "cannot remove role '{}': it is the default_role new accounts get",
                    found.name
                );
            }
            match store.delete_role(found.id).await {
                Ok(RoleRemoval::Removed) => println!("removed {}", describe(&found)),
                Ok(RoleRemoval::NotFound) => {
                    bail!("cannot remove role '{role}': it is gone");
                }
                Ok(RoleRemoval::InUse(n)) => {
                    bail!(
                        "cannot remove role '{}': {n} account(s) have it; give them another \
                         first (keyway user update USER --role ROLE)",
                        found.name
                    );
                }
                Err(e) => bail!("cannot remove role '{role}': {e}"),
            }
        }
    }
    Ok(())
}

async fn find(store: &dyn Store, role: &str) -> anyhow::Result<UserRole> {
    store
        .role_by_name_or_kind(role)
        .await
        .map_err(|e| anyhow!("cannot look up role '{role}': {e}"))?
        .ok_or_else(|| anyhow!("no role named '{role}' (see `keyway role list`)"))
}

fn checked_name(name: &str) -> anyhow::Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        bail!("role name '{name}' must be 1 to 100 characters, without control characters");
    }
    Ok(name.to_owned())
}

/// Types are machine names (Strapi's): lower-case letters, digits, `-` and `_`.
fn checked_type(kind: &str) -> anyhow::Result<String> {
    let ok = !kind.is_empty()
        && kind.len() <= 100
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!(
            "role type '{kind}' must be lower-case letters, digits, '-' or '_' (set it with --type)"
        );
    }
    Ok(kind.to_owned())
}

fn describe(r: &UserRole) -> String {
    format!("role {} '{}' (type {})", r.id, r.name, r.kind)
}
