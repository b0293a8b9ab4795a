//! Which account a sign-in becomes: the linked one, an existing one with the same proven address
//! when the operator allows linking, or a new one when registration is open (module docs of `sso`).

use super::{
    Asserted, MSG_EMAIL_TAKEN, MSG_NO_EMAIL, MSG_NO_PROVIDER_SESSION, MSG_REGISTER_UNAVAILABLE,
    SingleSignOn,
};
use crate::auth::{ClientInfo, MSG_BLOCKED, document_id};
use crate::domain::Email;
use crate::error::{Error, OrInternal, Result};
use crate::store::{Identity, NewUser, StoreError, User};

/// A username from the provider's hint or the email's local part: letters, digits, `.`, `_`, `-`,
/// 3 to 40 characters; after the first attempt a random suffix makes it unique.
fn username_candidate(asserted: &Asserted, attempt: u32) -> String {
    let hint = asserted
        .username
        .as_deref()
        .or(asserted.email.as_deref())
        .unwrap_or("user");
    let local = hint.split('@').next().unwrap_or(hint);
    let mut name: String = local
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(40)
        .collect();
    if name.chars().count() < 3 {
        name = format!("user{name}");
    }
    if attempt > 0 {
        use rand::RngExt;
        let suffix: u32 = rand::rng().random_range(1000..10_000);
        name = format!("{name}-{suffix}");
    }
    name
}

impl SingleSignOn<'_> {
    /// The account of the person the provider vouched for: the linked one, else an existing account
    /// with the same verified email when linking is allowed and its address was proven here, else a
    /// new one when registration is open.
    pub(super) async fn sso_account(
        &self,
        name: &str,
        asserted: &Asserted,
        client: &ClientInfo,
    ) -> Result<User> {
        if let Some(user) = self.linked_user(name, &asserted.subject).await? {
            return Ok(user);
        }
        // An address the provider has not verified proves nothing: an account made from it, or
        // linked by it, would let whoever typed it at the provider into the owner's account later.
        let email = asserted
            .email
            .as_deref()
            .filter(|_| asserted.email_verified)
            .and_then(|e| Email::parse(e).ok())
            .ok_or_else(|| Error::Application(MSG_NO_EMAIL.into()))?;
        let now = self.auth.now_millis();
        let identity = Identity {
            provider: name.to_owned(),
            subject: asserted.subject.clone(),
            user_id: 0,
            email: Some(email.as_str().to_owned()),
            created_at: now,
        };
        if let Some(existing) = self
            .auth
            .store
            .user_by_email(email.as_str())
            .await
            .or_internal()?
        {
            if existing.blocked {
                return Err(Error::Application(MSG_BLOCKED.into()));
            }
            // Linking needs the account's own address proven too: else it may be a squatter's,
            // registered with the victim's address, whose password would keep working.
            let proven = existing.confirmed && self.auth.settings.email_confirmation;
            if !(self.auth.sso.link_verified_email && proven) {
                if self.auth.sso.link_verified_email {
                    self.auth
                        .audit(
                            "sso_failure",
                            Some(existing.id),
                            client,
                            Some("unproven address"),
                        )
                        .await;
                }
                return Err(Error::Application(MSG_EMAIL_TAKEN.into()));
            }
            let identity = Identity {
                user_id: existing.id,
                ..identity
            };
            match self.auth.store.link_identity(&identity).await {
                // A twin sign-in linked it first: same outcome.
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(Error::internal(e)),
            }
            self.auth
                .audit("sso_linked", Some(existing.id), client, Some(name))
                .await;
            return self
                .auth
                .store
                .user_by_id(existing.id)
                .await
                .or_internal()?
                .ok_or_else(|| Error::Application(MSG_NO_PROVIDER_SESSION.into()));
        }
        if !self.auth.settings.allow_register {
            return Err(Error::Application(MSG_REGISTER_UNAVAILABLE.into()));
        }
        let role = self.auth.default_role().await?;
        for attempt in 0..5 {
            let new = NewUser {
                document_id: document_id(),
                username: username_candidate(asserted, attempt),
                email: email.as_str().to_owned(),
                provider: name.to_owned(),
                password_hash: None,
                // The provider verified the address (checked above).
                confirmed: true,
                blocked: false,
                role_id: role.id,
                created_at: now,
            };
            match self
                .auth
                .store
                .create_user_with_identity(new, &identity)
                .await
            {
                Ok(user) => {
                    self.auth
                        .audit("sso_registered", Some(user.id), client, Some(name))
                        .await;
                    return Ok(user);
                }
                Err(StoreError::Conflict) => {
                    // A twin first sign-in may have won the race: its account is this one.
                    if let Some(user) = self.linked_user(name, &asserted.subject).await? {
                        return Ok(user);
                    }
                    if self
                        .auth
                        .store
                        .user_by_email(email.as_str())
                        .await
                        .or_internal()?
                        .is_some()
                    {
                        return Err(Error::Application(MSG_EMAIL_TAKEN.into()));
                    }
                    // Else the username was taken: the next attempt adds a suffix.
                }
                Err(e) => return Err(Error::internal(e)),
            }
        }
        Err(Error::internal("no free username after five attempts"))
    }

    async fn linked_user(&self, provider: &str, subject: &str) -> Result<Option<User>> {
        match self
            .auth
            .store
            .identity_owner(provider, subject)
            .await
            .or_internal()?
        {
            Some(id) => self.auth.store.user_by_id(id).await.or_internal(),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asserted(username: Option<&str>, email: Option<&str>) -> Asserted {
        Asserted {
            subject: "s".into(),
            email: email.map(str::to_owned),
            email_verified: true,
            username: username.map(str::to_owned),
        }
    }

    #[test]
    fn usernames_come_from_the_hint_or_the_email_and_stay_plain() {
        assert_eq!(
            username_candidate(&asserted(Some("octocat"), None), 0),
            "octocat"
        );
        assert_eq!(
            username_candidate(&asserted(Some("ann@corp.example"), None), 0),
            "ann"
        );
        assert_eq!(
            username_candidate(&asserted(None, Some("bo.b+x@mail.example")), 0),
            "bo.bx"
        );
        assert_eq!(username_candidate(&asserted(None, None), 0), "user");
        assert_eq!(username_candidate(&asserted(Some("al"), None), 0), "useral");
        let retry = username_candidate(&asserted(Some("octocat"), None), 1);
        assert!(
            retry.starts_with("octocat-") && retry.len() == "octocat-".len() + 4,
            "{retry}"
        );
        let long = "x".repeat(300);
        assert_eq!(
            username_candidate(&asserted(Some(&long), None), 0).len(),
            40
        );
    }
}
