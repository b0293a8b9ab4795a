//! `keyway import strapi`: the users and roles of a Strapi 3, 4 or 5 database become Keyway accounts
//! and roles, and people log in with the passwords they had. [`source`] reads Strapi's database; this
//! module decides what each Strapi user becomes and writes it through the [`Store`].
//!
//! The decisions (the README's "Moving from Strapi" says the same to operators):
//! - **Ids are kept.** Strapi user 42 becomes Keyway account 42: tokens Strapi issued carry only the
//!   id (`{id, iat, exp}`), and with `accept_strapi_tokens` they must name the same person. An id that
//!   an account made in Keyway already holds is a conflict, never a renumbering.
//! - **Running it again is safe.** Each imported account remembers the Strapi row it came from and
//!   what Strapi had for the fields Keyway can change too (password, confirmed, blocked;
//!   [`StrapiState`]). A re-run applies what changed in Strapi since the previous run and nothing
//!   else: a password changed in Strapi replaces Keyway's hash, but a hash Keyway upgraded at login,
//!   a reset or a block made in Keyway stay when Strapi did not touch that field. Username, email,
//!   provider and role only Strapi can change, so Strapi's are taken. A re-run with nothing new in
//!   Strapi writes nothing.
//! - **Conflicts are reported, never overwritten**: an id, username or email that belongs to another
//!   Keyway account, including one imported a moment ago (two Strapi emails that differ only in case).
//! - **Strapi 5 documents are imported once**: of the rows of a document, the published one (the row
//!   Strapi's API serves, whose id its tokens carry), else the latest.
//! - **Roles map by type**: `authenticated`, `public` and any type Keyway already has are matched,
//!   other roles are created.
//! - **No half imports**: the whole source is read (in one snapshot) before anything is written, so an
//!   unusable source changes nothing; then roles, then one small write per user in id order, each
//!   complete or absent, so a run that fails midway is completed by running it again.

pub mod source;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::auth::password;
use crate::store::{
    ImportedAccount, ImportedUser, Millis, NewRole, Revoke, Role, Store, StoreError, StoreResult,
    StrapiState, User,
};
use source::{RoleRow, UserRow};
pub use source::{Snapshot, SourceError, Version};

/// What the import needs besides the two databases.
#[derive(Debug, Clone)]
pub struct Options {
    /// Role (type or name) for users Strapi has no role for: the configured `default_role`, what a
    /// registration would give them.
    pub default_role: String,
    /// Time of the import: timestamps Strapi lacks, and the invalidations recorded.
    pub now: Millis,
}

/// How far the import is, for whoever shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The source has been read: its version, users (one per Strapi 5 document) and roles.
    Read {
        version: Version,
        users: usize,
        roles: usize,
    },
    /// `done` of `total` users handled.
    Users { done: usize, total: usize },
}

/// A Strapi user that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub strapi_id: i64,
    pub username: String,
    pub email: String,
    pub reason: String,
}

/// What an import did. `Display` gives the summary the command prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub version: Version,
    /// Strapi roles Keyway already had a role of the same type for, as `Name (type)`.
    pub roles_matched: Vec<String>,
    pub roles_created: Vec<String>,
    /// Users in the source, one per Strapi 5 document.
    pub users: usize,
    /// Strapi 5 rows left out because another row of their document was imported.
    pub duplicate_rows: usize,
    pub imported: usize,
    pub updated: usize,
    /// Imported before and the same as in Strapi.
    pub unchanged: usize,
    /// Imported before, nothing new in Strapi, and different from Strapi because of changes made in
    /// Keyway (a hash upgraded at login, a reset, a block): those are kept.
    pub kept: usize,
    /// Not imported: their id, username or email belongs to another Keyway account.
    pub conflicts: Vec<Skipped>,
    /// Strapi ids among the conflicts that belong to another Keyway account. A token Strapi issued
    /// to such a user would act as that account under `accept_strapi_tokens`.
    pub ids_taken: Vec<i64>,
    /// Not imported: Strapi has no username or no email for them.
    pub invalid: Vec<Skipped>,
    /// Written with the default role, Strapi having none for them.
    pub default_role_given: usize,
    /// Written without a password, Strapi having none Keyway can verify (accounts of an OAuth
    /// provider, or a hash format that is neither bcrypt nor argon2): they can reset it.
    pub without_password: usize,
}

impl Report {
    fn new(version: Version) -> Self {
        Self {
            version,
            roles_matched: Vec::new(),
            roles_created: Vec::new(),
            users: 0,
            duplicate_rows: 0,
            imported: 0,
            updated: 0,
            unchanged: 0,
            kept: 0,
            conflicts: Vec::new(),
            ids_taken: Vec::new(),
            invalid: Vec::new(),
            default_role_given: 0,
            without_password: 0,
        }
    }

    /// Every Strapi user has a Keyway account.
    pub fn complete(&self) -> bool {
        self.conflicts.is_empty() && self.invalid.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (label, list) in [("conflict", &self.conflicts), ("invalid", &self.invalid)] {
            for s in list {
                writeln!(
                    f,
                    "{label}: Strapi user {} '{}' <{}>: {}",
                    s.strapi_id, s.username, s.email, s.reason
                )?;
            }
        }
        let names = |list: &[String]| {
            if list.is_empty() {
                String::new()
            } else {
                format!(" ({})", list.join(", "))
            }
        };
        writeln!(
            f,
            "roles: {} created{}, {} matched{}",
            self.roles_created.len(),
            names(&self.roles_created),
            self.roles_matched.len(),
            names(&self.roles_matched)
        )?;
        write!(
            f,
            "users: {} imported, {} updated, {} unchanged, {} kept (changed in Keyway since), \
             {} conflicting, {} invalid ({} in the {} database",
            self.imported,
            self.updated,
            self.unchanged,
            self.kept,
            self.conflicts.len(),
            self.invalid.len(),
            self.users,
            self.version
        )?;
        if self.duplicate_rows > 0 {
            write!(
                f,
                "; {} draft or superseded rows of the same documents left out",
                self.duplicate_rows
            )?;
        }
        write!(f, ")")?;
        if self.default_role_given > 0 {
            write!(
                f,
                "\n{} without a role in Strapi got the default role",
                self.default_role_given
            )?;
        }
        if self.without_password > 0 {
            write!(
                f,
                "\n{} without a password Keyway can verify: they can set one with forgot-password",
                self.without_password
            )?;
        }
        if !self.ids_taken.is_empty() {
            let ids: Vec<String> = self.ids_taken.iter().map(i64::to_string).collect();
            write!(
                f,
                "\nwarning: Strapi ids {} belong to other Keyway accounts: do not turn on \
                 accept_strapi_tokens until they are resolved, or a token Strapi issued to one of \
                 those users would act as the Keyway account with its id",
                ids.join(", ")
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "the Strapi role '{name}' (type '{kind}') cannot be created: Keyway has a role named \
         '{name}' of another type; rename one of them and run the import again"
    )]
    RoleNameTaken { name: String, kind: String },
    #[error("the default role '{0}' (default_role) does not exist in Keyway")]
    NoDefaultRole(String),
    #[error("database: {0}")]
    Store(#[from] StoreError),
}

/// Reads the Strapi database at `url` (read-only, one snapshot). Read it before opening Keyway's
/// database, as the command does, and an unusable source leaves everything as it was.
pub async fn read(url: &str) -> Result<Snapshot, SourceError> {
    source::read(url).await
}

/// Imports what [`read`] got into `store`.
pub async fn import(
    store: &dyn Store,
    snapshot: Snapshot,
    options: &Options,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Report, ImportError> {
    let Snapshot {
        version,
        roles,
        users,
        links,
    } = snapshot;
    let mut report = Report::new(version);
    let (users, folded) = one_row_per_document(users);
    report.users = users.len();
    report.duplicate_rows = folded.values().map(Vec::len).sum();
    let role_rows = one_row_per_role(&roles);
    progress(&Progress::Read {
        version,
        users: users.len(),
        roles: role_rows.len(),
    });

    let role_of_row = import_roles(store, &role_rows, &roles, &mut report).await?;
    let default_role = store
        .role_by_name_or_kind(&options.default_role)
        .await?
        .ok_or_else(|| ImportError::NoDefaultRole(options.default_role.clone()))?;
    // A user's first link wins (links come ordered); Strapi allows one role per user anyway.
    let mut link_of: HashMap<i64, i64> = HashMap::new();
    for link in &links {
        link_of.entry(link.user_id).or_insert(link.role_id);
    }

    let total = users.len();
    for (done, row) in users.iter().enumerate() {
        // A row folded into this one may hold the document's link when this one does not.
        let rows_of_document =
            std::iter::once(&row.id).chain(folded.get(&row.id).into_iter().flatten());
        let role = rows_of_document
            .filter_map(|id| link_of.get(id))
            .find_map(|role_row| role_of_row.get(role_row));
        let outcome = import_user(store, row, role.unwrap_or(&default_role), options.now).await?;
        let skipped = |reason: String| Skipped {
            strapi_id: row.id,
            username: row.username.clone().unwrap_or_default(),
            email: row.email.clone().unwrap_or_default(),
            reason,
        };
        let written = matches!(outcome, Outcome::Imported | Outcome::Updated);
        match outcome {
            Outcome::Imported => report.imported += 1,
            Outcome::Updated => report.updated += 1,
            Outcome::Unchanged => report.unchanged += 1,
            Outcome::Kept => report.kept += 1,
            Outcome::Conflict(reason) => report.conflicts.push(skipped(reason)),
            Outcome::IdTaken(reason) => {
                report.ids_taken.push(row.id);
                report.conflicts.push(skipped(reason));
            }
            Outcome::Invalid(reason) => report.invalid.push(skipped(reason)),
        }
        if written {
            report.default_role_given += usize::from(role.is_none());
            report.without_password += usize::from(!has_verifiable_password(row));
        }
        progress(&Progress::Users {
            done: done + 1,
            total,
        });
    }
    Ok(report)
}

/// What became of one Strapi user.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Imported,
    Updated,
    Unchanged,
    Kept,
    Conflict(String),
    /// A conflict on the id itself, which Strapi's tokens carry.
    IdTaken(String),
    Invalid(String),
}

/// A rank among rows of one Strapi 5 document: published first, then the latest, then the highest id
/// (Strapi re-creates rows when it publishes, so the newest row is the current one).
fn preference(published: bool, updated_at: Option<Millis>, id: i64) -> (bool, Option<Millis>, i64) {
    (published, updated_at, id)
}

/// Strapi 5 can hold several rows of one user document (a draft and a published row). Keeps one row
/// per document, by [`preference`], in id order; returns with it, for each kept row, the ids of the
/// rows of its document that were left out. Rows without a document id (Strapi 3 and 4) are all kept.
fn one_row_per_document(rows: Vec<UserRow>) -> (Vec<UserRow>, HashMap<i64, Vec<i64>>) {
    let mut best: HashMap<String, usize> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let Some(doc) = row.document_id.clone().filter(|d| !d.is_empty()) else {
            continue;
        };
        let rank = |r: &UserRow| preference(r.published, r.updated_at, r.id);
        best.entry(doc)
            .and_modify(|b| {
                if rank(row) > rank(&rows[*b]) {
                    *b = i;
                }
            })
            .or_insert(i);
    }
    let mut kept = Vec::with_capacity(rows.len());
    let mut folded: HashMap<i64, Vec<i64>> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let document = row.document_id.as_deref().filter(|d| !d.is_empty());
        match document.and_then(|doc| best.get(doc)) {
            Some(&b) if b != i => folded.entry(rows[b].id).or_default().push(row.id),
            _ => kept.push(row.clone()),
        }
    }
    kept.sort_by_key(|r| r.id);
    (kept, folded)
}

/// The type a Strapi role maps by. Strapi derives it from the name when a role is created; a row that
/// somehow lacks one gets the same treatment rather than being dropped.
fn role_kind(row: &RoleRow) -> Option<String> {
    nonblank(&row.kind).or_else(|| {
        nonblank(&row.name).map(|name| {
            name.to_lowercase()
                .chars()
                .map(|c| if c.is_alphanumeric() { c } else { '_' })
                .collect()
        })
    })
}

/// One role row per type: the preferred row of its Strapi 5 document names and describes it.
fn one_row_per_role(rows: &[RoleRow]) -> BTreeMap<String, &RoleRow> {
    let mut by_kind: BTreeMap<String, &RoleRow> = BTreeMap::new();
    for row in rows {
        let Some(kind) = role_kind(row) else { continue };
        let rank = |r: &RoleRow| preference(r.published, r.updated_at, r.id);
        by_kind
            .entry(kind)
            .and_modify(|b| {
                if rank(row) > rank(b) {
                    *b = row;
                }
            })
            .or_insert(row);
    }
    by_kind
}

/// Matches or creates a Keyway role for every Strapi role type; returns the Keyway role of every
/// Strapi role row (draft rows included, since links may point at them).
async fn import_roles(
    store: &dyn Store,
    by_kind: &BTreeMap<String, &RoleRow>,
    rows: &[RoleRow],
    report: &mut Report,
) -> Result<HashMap<i64, Role>, ImportError> {
    let label = |r: &Role| format!("{} ({})", r.name, r.kind);
    let mut keyway: HashMap<&str, Role> = HashMap::new();
    for (kind, row) in by_kind {
        let role = match store.role_by_kind(kind).await? {
            Some(role) => {
                report.roles_matched.push(label(&role));
                role
            }
            None => {
                let new = NewRole {
                    name: nonblank(&row.name).unwrap_or_else(|| kind.clone()),
                    description: row.description.clone().unwrap_or_default(),
                    kind: kind.clone(),
                };
                match store.create_role(&new).await {
                    Ok(role) => {
                        report.roles_created.push(label(&role));
                        role
                    }
                    // Either someone created this type meanwhile (then it is a match), or the name
                    // belongs to a role of another type, which no import should rename.
                    Err(StoreError::Conflict) => match store.role_by_kind(kind).await? {
                        Some(role) => {
                            report.roles_matched.push(label(&role));
                            role
                        }
                        None => {
                            return Err(ImportError::RoleNameTaken {
                                name: new.name,
                                kind: new.kind,
                            });
                        }
                    },
                    Err(e) => return Err(e.into()),
                }
            }
        };
        keyway.insert(kind.as_str(), role);
    }
    Ok(rows
        .iter()
        .filter_map(|row| {
            let role = keyway.get(role_kind(row)?.as_str())?;
            Some((row.id, role.clone()))
        })
        .collect())
}

fn nonblank(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.trim().is_empty())
}

fn has_verifiable_password(row: &UserRow) -> bool {
    row.password.as_deref().is_some_and(password::is_verifiable)
}

/// Imports one Strapi user, or refreshes the account an earlier import made of it.
async fn import_user(
    store: &dyn Store,
    row: &UserRow,
    role: &Role,
    now: Millis,
) -> StoreResult<Outcome> {
    let (Some(username), Some(email)) = (nonblank(&row.username), nonblank(&row.email)) else {
        return Ok(Outcome::Invalid(
            "Strapi has no username or no email for it".into(),
        ));
    };
    let wanted = ImportedUser {
        strapi_id: row.id,
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
    if user.username != strapi.username && user.email != strapi.email {
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
    let ended_by = if current.password_hash != merged.password_hash {
        Some("password_changed")
    } else if merged.blocked && !user.blocked {
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
        merged.password_hash = current.password_hash.clone();
    }
    if strapi.strapi.confirmed == seen.confirmed {
        merged.confirmed = user.confirmed;
    }
    if strapi.strapi.blocked == seen.blocked {
        merged.blocked = user.blocked;
    }
    merged.document_id = user.document_id.clone();
    merged.created_at = user.created_at;
    merged.updated_at = user.updated_at;
    merged
}

/// Whether the account holds exactly these values.
fn same_data(current: &ImportedAccount, values: &ImportedUser) -> bool {
    let u = &current.user;
    u.username == values.username
        && u.email == values.email
        && u.provider == values.provider
        && current.password_hash == values.password_hash
        && u.confirmed == values.confirmed
        && u.blocked == values.blocked
        && u.role.id == values.role_id
}

/// Which other account holds the username or the email, looked up in both columns: as at
/// registration, an email may not be someone's username nor the other way round.
async fn taken_by_another(
    store: &dyn Store,
    wanted: &ImportedUser,
    me: Option<i64>,
) -> StoreResult<Option<String>> {
    let other = |found: Option<User>| found.filter(|u| Some(u.id) != me);
    let account = |u: &User| format!("Keyway account {} ('{}')", u.id, u.username);
    if let Some(u) = other(store.user_by_username(&wanted.username).await?) {
        return Ok(Some(format!(
            "username '{}' belongs to {}",
            wanted.username,
            account(&u)
        )));
    }
    if let Some(u) = other(store.user_by_email(&wanted.email).await?) {
        return Ok(Some(format!(
            "email '{}' belongs to {}",
            wanted.email,
            account(&u)
        )));
    }
    // ASCII lower-casing, as the registration check (`Store::identity_taken`) does.
    let username_as_email = wanted.username.to_ascii_lowercase();
    if let Some(u) = other(store.user_by_email(&username_as_email).await?) {
        return Ok(Some(format!(
            "username '{}' is the email of {}",
            wanted.username,
            account(&u)
        )));
    }
    if let Some(u) = other(store.user_by_username(&wanted.email).await?) {
        return Ok(Some(format!(
            "email '{}' is the username of {}",
            wanted.email,
            account(&u)
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        id: i64,
        document: Option<&str>,
        published: bool,
        updated_at: Option<Millis>,
    ) -> UserRow {
        UserRow {
            id,
            document_id: document.map(str::to_owned),
            username: Some(format!("user{id}")),
            email: Some(format!("user{id}@example.com")),
            provider: Some("local".into()),
            password: None,
            confirmed: true,
            blocked: false,
            created_at: Some(1),
            updated_at,
            published,
        }
    }

    fn ids(rows: &[UserRow]) -> Vec<i64> {
        rows.iter().map(|r| r.id).collect()
    }

    #[test]
    fn a_strapi_5_document_is_imported_once_published_row_first() {
        let (kept, folded) = one_row_per_document(vec![
            // Draft edited after publishing: the published row still wins.
            row(1, Some("doc-a"), true, Some(100)),
            row(2, Some("doc-a"), false, Some(200)),
            // Two drafts, no published row: the latest wins.
            row(3, Some("doc-b"), false, Some(300)),
            row(4, Some("doc-b"), false, Some(250)),
            // Published twice (Strapi re-created the row): the newest.
            row(5, Some("doc-c"), true, Some(10)),
            row(6, Some("doc-c"), true, Some(10)),
            row(7, None, true, None),
            row(8, None, true, None),
        ]);
        assert_eq!(ids(&kept), vec![1, 3, 6, 7, 8]);
        assert_eq!(folded[&1], vec![2]);
        assert_eq!(folded[&3], vec![4]);
        assert_eq!(folded[&6], vec![5]);
        assert_eq!(folded.len(), 3);
    }

    #[test]
    fn roles_map_by_type_or_by_a_name_made_into_one() {
        let role = |id: i64, name: Option<&str>, kind: Option<&str>, published: bool| RoleRow {
            id,
            document_id: None,
            name: name.map(str::to_owned),
            description: None,
            kind: kind.map(str::to_owned),
            published,
            updated_at: None,
        };
        let rows = vec![
            role(1, Some("Authenticated"), Some("authenticated"), true),
            role(
                2,
                Some("Authenticated (draft)"),
                Some("authenticated"),
                false,
            ),
            role(3, Some("Shop Editors"), None, true),
            role(4, None, None, true),
        ];
        let by_kind = one_row_per_role(&rows);
        assert_eq!(
            by_kind.keys().collect::<Vec<_>>(),
            vec!["authenticated", "shop_editors"]
        );
        assert_eq!(by_kind["authenticated"].id, 1);
    }

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
                role: Role {
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
            document_id: "other-doc".into(),
            username: "ann".into(),
            email: "ann@example.com".into(),
            provider: "local".into(),
            password_hash: Some(hash.into()),
            confirmed,
            blocked,
            role_id: 1,
            created_at: 1,
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
        assert_eq!(nothing_new.password_hash.as_deref(), Some("$argon2id$new"));
        assert!(nothing_new.confirmed && nothing_new.blocked);
        assert!(same_data(&keyway, &nothing_new));

        // The password changed in Strapi: Strapi's hash wins over Keyway's, the flags stay.
        let new_password = merge(&keyway, &from_strapi("$2a$04$changed", false, false));
        assert_eq!(
            new_password.password_hash.as_deref(),
            Some("$2a$04$changed")
        );
        assert!(new_password.confirmed && new_password.blocked);

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
        assert!(!unblocked.blocked && unblocked.confirmed);

        // The document id and the times stay Keyway's, whatever Strapi says.
        assert_eq!(unblocked.document_id, "doc");
        assert_eq!((unblocked.created_at, unblocked.updated_at), (10, 20));
    }

    #[test]
    fn the_summary_names_every_user_left_out() {
        let mut report = Report::new(Version::V4);
        report.users = 3;
        report.imported = 1;
        report
            .roles_matched
            .push("Authenticated (authenticated)".into());
        report.conflicts.push(Skipped {
            strapi_id: 2,
            username: "bob".into(),
            email: "bob@example.com".into(),
            reason: "username 'bob' belongs to Keyway account 1 ('bob')".into(),
        });
        report.invalid.push(Skipped {
            strapi_id: 3,
            username: String::new(),
            email: String::new(),
            reason: "Strapi has no username or no email for it".into(),
        });
        let text = report.to_string();
        assert!(
            text.contains("conflict: Strapi user 2 'bob' <bob@example.com>: username 'bob'"),
            "{text}"
        );
        assert!(text.contains("invalid: Strapi user 3"), "{text}");
        assert!(
            text.contains("roles: 0 created, 1 matched (Authenticated (authenticated))"),
            "{text}"
        );
        assert!(
            text.contains("users: 1 imported, 0 updated, 0 unchanged, 0 kept (changed in Keyway since), 1 conflicting, 1 invalid (3 in the Strapi 4 database)"),
            "{text}"
        );
        assert!(!report.complete());
    }
}
