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
//!   [`StrapiState`](crate::store::StrapiState)). A re-run applies what changed in Strapi since the previous run and nothing
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

mod accounts;
mod report;
pub mod source;

use std::collections::{BTreeMap, HashMap};

use crate::store::{Millis, NewRole, Store, StoreError, UserRole};
use accounts::{Outcome, has_verifiable_password, import_user, nonblank};
pub use report::{Progress, Report, Skipped};
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
) -> Result<HashMap<i64, UserRole>, ImportError> {
    let label = |r: &UserRole| format!("{} ({})", r.name, r.kind);
    let mut keyway: HashMap<&str, UserRole> = HashMap::new();
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
}
