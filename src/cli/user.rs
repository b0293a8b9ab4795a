//! `keyway user …`: accounts from the command line, through the same core as the API (so the same
//! password policy and the same revocation).

use anyhow::{anyhow, bail};
use clap::Subcommand;
use std::io::BufRead;

use keyway::Config;
use keyway::auth::admin::AdminNewUser;
use keyway::domain::{Email, Username};
use keyway::store::User;

use super::admin_error;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is read from the first line of standard input.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Role name or type (default: the configured default role).
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        confirmed: bool,
        #[arg(long)]
        blocked: bool,
    },
    /// Change an account.
    Update {
        /// Username, email or id.
        user: String,
        /// Give it this role (name or type).
        #[arg(long, required = true)]
        role: Option<String>,
    },
    /// List accounts.
    List,
    /// Show one account and the single sign-on identities linked to it.
    Show {
        /// Username, email or id.
        user: String,
    },
    /// Block an account: its tokens stop working at once.
    Block {
        /// Username, email or id.
        user: String,
    },
    /// Unblock an account.
    Unblock {
        /// Username, email or id.
        user: String,
    },
    /// Delete an account and its sessions (its audit events stay, found by its id).
    Delete {
        /// Username, email or id.
        user: String,
    },
}

pub async fn run(config: Config, cmd: UserCommand) -> anyhow::Result<()> {
    let auth = keyway::build_auth(&config, keyway::ServerRole::Admin)
        .await
        .map_err(|e| admin_error(&e))?;
    let show_err = |e: keyway::error::Error| match e {
        // A policy refusal: say which rule, not "validation failed".
        keyway::error::Error::Fields(errors) => anyhow!(
            errors
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => super::core_error(other),
    };
    let blocking = matches!(cmd, UserCommand::Block { .. });
    match cmd {
        UserCommand::Add {
            username,
            email,
            password_stdin: _,
            role,
            confirmed,
            blocked,
        } => {
            let password = read_password_line()?;
            let username = Username::parse(&username).map_err(anyhow::Error::msg)?;
            let email = Email::parse(&email).map_err(anyhow::Error::msg)?;
            let password = auth
                .password_policy()
                .parse(&password, &[username.as_str(), email.as_str()])
                .map_err(anyhow::Error::msg)?;
            let new = AdminNewUser {
                username,
                email,
                password,
                role,
                confirmed,
                blocked,
            };
            let user = auth.admin().create_user(new).await.map_err(show_err)?;
            println!("created {}", describe(&user));
        }
        UserCommand::Update { user, role } => {
            let mut user = auth
                .admin()
                .find_user(&user)
                .await
                .map_err(show_err)?
                .ok_or_else(|| anyhow!("no user with username, email or id '{user}'"))?;
            if let Some(role) = role {
                user = auth
                    .admin()
                    .set_role(&user.id.to_string(), &role)
                    .await
                    .map_err(show_err)?;
            }
            println!("updated {}", describe(&user));
        }
        UserCommand::List => {
            let users = auth.admin().list_users().await.map_err(show_err)?;
            println!(
                "{:>6}  {:<24} {:<32} {:<14} {:<9} {:<7}",
                "ID", "USERNAME", "EMAIL", "ROLE", "CONFIRMED", "BLOCKED"
            );
            for u in &users {
                println!(
                    "{:>6}  {:<24} {:<32} {:<14} {:<9} {:<7}",
                    u.id, u.username, u.email, u.role.name, u.confirmed, u.blocked
                );
            }
            println!("{} user(s)", users.len());
        }
        UserCommand::Show { user } => {
            let user = auth
                .admin()
                .find_user(&user)
                .await
                .map_err(show_err)?
                .ok_or_else(|| anyhow!("no user with username, email or id '{user}'"))?;
            println!("id:         {}", user.id);
            println!("username:   {}", user.username);
            println!("email:      {}", user.email);
            println!("provider:   {}", user.provider);
            println!("role:       {}", user.role.name);
            println!("confirmed:  {}", user.confirmed);
            println!("blocked:    {}", user.blocked);
            println!("created:    {}", keyway::store::iso(user.created_at));
            let identities = auth.admin().identities(user.id).await.map_err(show_err)?;
            if identities.is_empty() {
                println!("identities: none");
            } else {
                println!("identities:");
                for i in &identities {
                    println!(
                        "  {:<12} {:<40} {:<32} linked {}",
                        i.provider,
                        i.subject,
                        i.email.as_deref().unwrap_or("-"),
                        keyway::store::iso(i.created_at)
                    );
                }
            }
        }
        UserCommand::Block { user } | UserCommand::Unblock { user } => {
            let user = auth
                .admin()
                .set_blocked(&user, blocking)
                .await
                .map_err(show_err)?;
            let done = if blocking { "blocked" } else { "unblocked" };
            println!("{done} {}", describe(&user));
        }
        UserCommand::Delete { user } => {
            let user = auth.admin().delete_user(&user).await.map_err(show_err)?;
            println!("deleted {}", describe(&user));
        }
    }
    Ok(())
}

fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| anyhow!("cannot read the password from standard input: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

fn describe(u: &User) -> String {
    format!(
        "user {} '{}' <{}> (role {}, confirmed {}, blocked {})",
        u.id, u.username, u.email, u.role.name, u.confirmed, u.blocked
    )
}
