//! What an import did, for the command to print: counts, the users left out and why.

use std::fmt;

use super::Version;

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
    pub(super) fn new(version: Version) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

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
