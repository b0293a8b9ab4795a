//! One Strapi user at a time: imported as a new account, or the account an earlier run made of it
//! refreshed with what changed in Strapi since, or left out with the reason (module docs of `strapi`).

use crate::auth::password;
use crate::store::{
    ImportedAccount, ImportedUser, Millis, NewUser, Revoke, Store, StoreError, StoreResult,
    StrapiState, UserRole,
};

use super::source::UserRow;

/// What became of one Strapi user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Imported,
    Updated,
    Unchanged,
    Kept,
    Conflict(String),
    /// A conflict on the id itself, which Strapi's tokens carry.
    IdTaken(String),
    Invalid(String),
}

pub(super) fn nonblank(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.trim().is_empty())
}

pub(super) fn has_verifiable_password(row: &UserRow) -> bool {
    row.password.as_deref().is_some_and(password::is_verifiable)
}

/// Imports one Strapi user, or refreshes the account an earlier import made of it.
pub(super) async fn import_user(
    store: &dyn Store,
    row: &UserRow,
    role: &UserRole,
    now: Millis,
) -> StoreResult<Outcome> {
    let (Some(username), Some(email)) = (nonblank(&row.username), nonblank(&row.email)) else {
        return Ok(Outcome::Invalid(
            "Strapi has no username or no email for it".into(),
        ));
    };
    let account = NewUser {
        // Strapi 5's document id is what its API called `documentId`: clients may have kept it.
        document_id: nonblank(&row.document_id).unwrap_or_else(crate::auth::document_id),
        username,
        // As every email Keyway stores, and as login looks them up.
        email: email.to_lowercase(),
        provider: nonblank(&row.provider).unwrap_or_else(|| "local".into()),
        // A hash no verifier can match would only ever fail; without one the account can still
        // set a password through forgot-password.
        password_hash: row.password.clone().filter(|h| password::is_verifiable(h)),
        confirmed: row.confirmed,
        blocked: row.blocked,
        role_id: role.id,
        created_at: row.created_at.or(row.updated_at).unwrap_or(now),
    };
    let wanted = ImportedUser {
        strapi_id: row.id,
        account,
        updated_at: row.updated_at.or(row.created_at).unwrap_or(now),
        strapi: StrapiState {
            // Strapi's hash as it is, kept or not: a change of it is a password changed in Strapi.
            password_digest: row.password.as_deref().map(digest),
            confirmed: row.confirmed,
            blocked: row.blocked,
        },
    };
    match store
        .imported_user(row.id, row.document_id.as_deref())
        .await?
    {
        Some(current) => refresh(store, &current, wanted, now).await,
        None => insert(store, &wanted).await,
    }
}

/// SHA-256 of Strapi's password hash, hex: remembers it well enough to notice a change, and is no
/// help to anyone who reads the database (the bcrypt salt is not in it).
fn digest(hash: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(hash.as_bytes()))
}

async fn insert(store: &dyn Store, wanted: &ImportedUser) -> StoreResult<Outcome> {
    if let Some(holder) = store.user_by_id(wanted.strapi_id).await? {
        return Ok(Outcome::IdTaken(format!(
            "its id {} belongs to Keyway account '{}'",
            holder.id, holder.username
        )));
    }
    if let Some(reason) = taken_by_another(store, wanted, None).await? {
        return Ok(Outcome::Conflict(reason));
    }
    match store.insert_imported_user(wanted).await {
        Ok(()) => Ok(Outcome::Imported),
        // Taken between the checks and the insert, or (Strapi 5) its document id is.
        Err(StoreError::Conflict) => Ok(Outcome::Conflict(
            "its id, username, email or document id was taken while importing".into(),
        )),
        Err(e) => Err(e),
    }
}

/// Brings an account an earlier import made up to date with what changed in Strapi since.
async fn refresh(
    store: &dyn Store,
    current: &ImportedAccount,
    strapi: ImportedUser,
    now: Millis,
) -> StoreResult<Outcome> {
    let user = &current.user;
    // The same Strapi id with neither the username nor the email it was imported with: more likely
    // a user of another Strapi project (whose ids are the same numbers) than one person renamed twice
    // over. Left alone; deleting the Keyway account and running again imports it afresh.
    if user.username != strapi.account.username && user.email != strapi.account.email {
        return Ok(Outcome::Conflict(format!(
            "it was imported as Keyway account {} '{}' <{}>, and both the username and the email \
             differ now",
            user.id, user.username, user.email
        )));
    }
    let mut merged = merge(current, &strapi);
    let account_changes = !same_data(current, &merged);
    let strapi_changes = current.strapi != strapi.strapi || current.strapi_id != strapi.strapi_id;
    let settled = if same_data(current, &strapi) {
        Outcome::Unchanged
    } else {
        Outcome::Kept
    };
    if !account_changes && !strapi_changes {
        return Ok(settled);
    }
    if account_changes {
        merged.updated_at = now.max(user.updated_at);
        if let Some(reason) = taken_by_another(store, &merged, Some(user.id)).await? {
            return Ok(Outcome::Conflict(reason));
        }
    }
    match store.update_imported_user(user.id, &merged, now).await {
        Ok(true) => {}
        Ok(false) => {
            return Ok(Outcome::Conflict(format!(
                "its Keyway account {} was deleted while importing",
                user.id
            )));
        }
        Err(StoreError::Conflict) => {
            return Ok(Outcome::Conflict(
                "its new username or email, or its Strapi row, was taken by another account while \
                 importing"
                    .into(),
            ));
        }
        Err(e) => return Err(e),
    }
    if !account_changes {
        // Only what is remembered of Strapi moved (Strapi 5 re-created the row, say).
        return Ok(settled);
    }
    // As when Keyway itself changes a password or blocks someone, the account's sessions end.
    let ended_by = if current.password_hash != merged.account.password_hash {
        Some("password_changed")
    } else if merged.account.blocked && !user.blocked {
        Some("blocked")
    } else {
        None
    };
    if let Some(reason) = ended_by {
        store
            .revoke_sessions(Revoke::AllOfUser(user.id), reason, now)
            .await?;
    }
    Ok(Outcome::Updated)
}

/// The account as it should be after this import. A field Keyway can change too takes Strapi's value
/// only when Strapi's changed since the previous import, so a change made in Keyway (a hash upgraded
/// at login, a reset, a block) survives unless Strapi changed the same field later; when both
/// changed it, Strapi's wins, as the system being migrated from. Username, email, provider and role
/// are Strapi's alone. Timestamps stay Keyway's (the caller moves `updated_at` when it writes).
fn merge(current: &ImportedAccount, strapi: &ImportedUser) -> ImportedUser {
    let (user, seen) = (&current.user, &current.strapi);
    let mut merged = strapi.clone();
    if strapi.strapi.password_digest == seen.password_digest {
        merged.account.password_hash = current.password_hash.clone();
    }
    if strapi.strapi.confirmed == seen.confirmed {
        merged.account.confirmed = user.confirmed;
    }
    if strapi.strapi.blocked == seen.blocked {
        merged.account.blocked = user.blocked;
    }
    merged.account.document_id = user.document_id.clone();
    merged.account.created_at = user.created_at;
    merged.updated_at = user.updated_at;
    merged
}

/// Whether the account holds exactly these values.
fn same_data(current: &ImportedAccount, values: &ImportedUser) -> bool {
    let u = &current.user;
    u.username == values.account.username
        && u.email == values.account.email
        && u.provider == values.account.provider
        && current.password_hash == values.account.password_hash
        && u.confirmed == values.account.confirmed
        && u.blocked == values.account.blocked
        && u.role.id == values.account.role_id
}

/// Where [`taken_by_another`] looks an identity up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    Username,
    Email,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Email => "email",
        }
    }
}

/// Which other account holds the username or the email, looked up in both columns: as at
/// registration, an email may not be someone's username nor the other way round.
async fn taken_by_another(
    store: &dyn Store,
    wanted: &ImportedUser,
    me: Option<i64>,
) -> StoreResult<Option<String>> {
    let username = (Column::Username, wanted.account.username.as_str());
    let email = (Column::Email, wanted.account.email.as_str());
    // ASCII lower-casing, as the registration check (`Store::identity_taken`) does.
    let username_as_email = wanted.account.username.to_ascii_lowercase();
    // (what is wanted, the key looked up, the column it is looked up in): each in its own column
    // first, then in the other.
    let lookups = [
        (username, username.1, Column::Username),
        (email, email.1, Column::Email),
        (username, username_as_email.as_str(), Column::Email),
        (email, email.1, Column::Username),
    ];
    for ((field, value), key, column) in lookups {
        let found = match column {
            Column::Username => store.user_by_username(key).await?,
            Column::Email => store.user_by_email(key).await?,
        };
        if let Some(u) = found.filter(|u| Some(u.id) != me) {
            let holds = if column == field {
                "belongs to".to_owned()
            } else {
                format!("is the {} of", column.name())
            };
            return Ok(Some(format!(
                "{} '{value}' {holds} Keyway account {} ('{}')",
                field.name(),
                u.id,
                u.username
            )));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::User;

    fn account(hash: &str, confirmed: bool, blocked: bool, seen: &StrapiState) -> ImportedAccount {
        ImportedAccount {
            user: User {
                id: 7,
                document_id: "doc".into(),
                username: "ann".into(),
                email: "ann@example.com".into(),
                provider: "local".into(),
                confirmed,
                blocked,
                role: UserRole {
                    id: 1,
                    name: "Authenticated".into(),
                    description: String::new(),
                    kind: "authenticated".into(),
                },
                created_at: 10,
                updated_at: 20,
                stamp: 0,
                password_changed_at: None,
            },
            password_hash: Some(hash.into()),
            strapi_id: 7,
            strapi: seen.clone(),
        }
    }

    fn from_strapi(hash: &str, confirmed: bool, blocked: bool) -> ImportedUser {
        ImportedUser {
            strapi_id: 7,
            account: NewUser {
                document_id: "other-doc".into(),
                username: "ann".into(),
                email: "ann@example.com".into(),
                provider: "local".into(),
                password_hash: Some(hash.into()),
                confirmed,
                blocked,
                role_id: 1,
                created_at: 1,
            },
            updated_at: 2,
            strapi: StrapiState {
                password_digest: Some(digest(hash)),
                confirmed,
                blocked,
            },
        }
    }

    #[test]
    fn a_rerun_takes_from_strapi_only_what_changed_there() {
        let seen = from_strapi("$2a$04$old", false, false).strapi;
        // Keyway upgraded the hash at a login, the user confirmed the address, an operator blocked.
        let keyway = account("$argon2id$new", true, true, &seen);

        let nothing_new = merge(&keyway, &from_strapi("$2a$04$old", false, false));
        assert_eq!(
            nothing_new.account.password_hash.as_deref(),
            Some("$argon2id$new")
        );
        assert!(nothing_new.account.confirmed && nothing_new.account.blocked);
        assert!(same_data(&keyway, &nothing_new));

        // The password changed in Strapi: Strapi's hash wins over Keyway's, the flags stay.
        let new_password = merge(&keyway, &from_strapi("$2a$04$changed", false, false));
        assert_eq!(
            new_password.account.password_hash.as_deref(),
            Some("$2a$04$changed")
        );
        assert!(new_password.account.confirmed && new_password.account.blocked);

        // Strapi unblocked the account since the last import (it was blocked there then): that one
        // field comes over.
        let seen_blocked = StrapiState {
            blocked: true,
            ..seen.clone()
        };
        let unblocked = merge(
            &account("$argon2id$new", true, true, &seen_blocked),
            &from_strapi("$2a$04$old", false, false),
        );
        assert!(!unblocked.account.blocked && unblocked.account.confirmed);

        // The document id and the times stay Keyway's, whatever Strapi says.
        assert_eq!(unblocked.account.document_id, "doc");
        assert_eq!(
            (unblocked.account.created_at, unblocked.updated_at),
            (10, 20)
        );
    }
}
