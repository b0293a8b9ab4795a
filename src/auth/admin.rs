//! What an operator does to accounts, through `keyway user …` and `keyway audit`: create, find, list,
//! block, delete, give a role, read the trail. [`Auth::admin`] hands it out; nothing on a request path
//! uses it, so the HTTP layer's view of the core stays the API's.

use super::{Auth, ClientInfo};
use crate::domain::{Email, Password, Username};
use crate::error::{Error, OrInternal, Result};
use crate::store::{AuditEvent, Identity, Invalidation, Millis, Revoke, User};

/// Options for an account created by an operator (CLI) rather than by the user.
#[derive(Debug, Clone)]
pub struct AdminNewUser {
    pub username: Username,
    pub email: Email,
    pub password: Password,
    pub role: Option<String>,
    pub confirmed: bool,
    pub blocked: bool,
}

/// The administration service of an [`Auth`].
pub struct Admin<'a> {
    auth: &'a Auth,
}

impl Auth {
    /// The operations of `keyway user …` and `keyway audit`.
    pub fn admin(&self) -> Admin<'_> {
        Admin { auth: self }
    }
}

impl Admin<'_> {
    pub async fn create_user(&self, new: AdminNewUser) -> Result<User> {
        let role_name = new
            .role
            .clone()
            .unwrap_or_else(|| self.auth.settings.default_role.clone());
        let role = self
            .auth
            .store
            .role_by_name_or_kind(&role_name)
            .await
            .or_internal()?
            .ok_or_else(|| Error::Application(format!("No role named '{role_name}'")))?;
        self.auth
            .create_account(
                new.username,
                new.email,
                new.password,
                role.id,
                new.confirmed,
                new.blocked,
            )
            .await
    }

    pub async fn find_by_username(&self, username: &str) -> Result<Option<User>> {
        self.auth
            .store
            .user_by_username(username)
            .await
            .or_internal()
    }

    /// The account an administrator names: by exact username first, then by email (any case), then
    /// by id. A username wins over an id, so an account whose username is digits is still found by
    /// its name; another with that id is then found by its email.
    pub async fn find_user(&self, who: &str) -> Result<Option<User>> {
        if let Some(user) = self.auth.store.user_by_username(who).await.or_internal()? {
            return Ok(Some(user));
        }
        if who.contains('@')
            && let Some(user) = self
                .auth
                .store
                .user_by_email(&who.to_lowercase())
                .await
                .or_internal()?
        {
            return Ok(Some(user));
        }
        match who.parse::<i64>() {
            Ok(id) => self.auth.store.user_by_id(id).await.or_internal(),
            Err(_) => Ok(None),
        }
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        self.auth.store.list_users().await.or_internal()
    }

    /// Blocks or unblocks an account. Blocking ends all its sessions, so its tokens stop working at
    /// once and stay dead after an unblock.
    pub async fn set_blocked(&self, username: &str, blocked: bool) -> Result<User> {
        let user = self.require_user(username).await?;
        self.auth
            .store
            .set_blocked(user.id, blocked, self.auth.clock.now_millis())
            .await
            .or_internal()?;
        self.auth.forget_user(user.id);
        let kind = if blocked {
            "user_blocked"
        } else {
            "user_unblocked"
        };
        self.auth
            .audit(
                kind,
                Some(user.id),
                &ClientInfo::default(),
                Some("by an administrator"),
            )
            .await;
        if blocked {
            self.auth
                .sessions()
                .revoke(Revoke::AllOfUser(user.id), "blocked")
                .await?;
        }
        self.require_user(username).await
    }

    /// Deletes an account and its sessions.
    pub async fn delete_user(&self, username: &str) -> Result<User> {
        let user = self.require_user(username).await?;
        let sessions = self
            .auth
            .store
            .sessions_of_user(user.id)
            .await
            .or_internal()?;
        self.auth.store.delete_user(user.id).await.or_internal()?;
        self.auth.forget_user(user.id);
        self.auth
            .audit(
                "user_deleted",
                Some(user.id),
                &ClientInfo::default(),
                Some("by an administrator"),
            )
            .await;
        for s in sessions {
            self.auth.caches.apply(&Invalidation::Session(s.id));
        }
        Ok(user)
    }

    /// Gives an account (username, email or id) the role with this name or type. Its tokens keep
    /// working; what they show (`/api/users/me`) carries the new role at once on every node.
    pub async fn set_role(&self, who: &str, role: &str) -> Result<User> {
        let user = self.require_user(who).await?;
        let role = self
            .auth
            .store
            .role_by_name_or_kind(role)
            .await
            .or_internal()?
            .ok_or_else(|| {
                Error::NotFound(format!("no role named '{role}' (see `keyway role list`)"))
            })?;
        self.auth
            .store
            .set_user_role(user.id, role.id, self.auth.clock.now_millis())
            .await
            .or_internal()?;
        self.auth.forget_user(user.id);
        self.require_user(&user.id.to_string()).await
    }

    async fn require_user(&self, who: &str) -> Result<User> {
        self.find_user(who)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user with username, email or id '{who}'")))
    }

    /// The identities linked to an account (`keyway user show`).
    pub async fn identities(&self, user_id: i64) -> Result<Vec<Identity>> {
        self.auth
            .store
            .identities_of_user(user_id)
            .await
            .or_internal()
    }

    /// The trail, oldest first: of one user (by username) or everyone, from `since` on.
    /// The id whose events `audit --user WHO` lists: a current account's (by username, email or id),
    /// else any id, so a deleted account's events stay reachable. A deleted account's username or
    /// email is not looked up: the events keep only the id, and the name may belong to a newer
    /// account by now, whose trail must not be mixed with the old one's.
    async fn audited_user_id(&self, who: &str) -> Result<i64> {
        if let Some(user) = self.find_user(who).await? {
            return Ok(user.id);
        }
        who.parse::<i64>().map_err(|_| {
            Error::NotFound(format!(
                "no user with username, email or id '{who}'; a deleted account's events are found \
                 by its id (`keyway audit` shows it on its user_deleted event)"
            ))
        })
    }

    /// The audit trail, oldest first; `username` is a username, an email or an id.
    pub async fn audit_trail(
        &self,
        username: Option<&str>,
        since: Option<Millis>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        let user_id = match username {
            Some(who) => Some(self.audited_user_id(who).await?),
            None => None,
        };
        self.auth
            .store
            .audit_events(user_id, since, limit)
            .await
            .or_internal()
    }
}
