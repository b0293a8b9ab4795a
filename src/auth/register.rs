//! New accounts: `POST /api/auth/local/register` (an [`Accounts`] method, beside the mailed codes'
//! in `account.rs`), and the one way every account is made (an operator's too, and single sign-on's
//! role), so the same rules and the same conflict answer apply to all of them.

use secrecy::SecretString;

use super::account::Accounts;
use super::{Auth, ClientInfo, Issued, MSG_REGISTER_DISABLED, MSG_TAKEN, document_id};
use crate::domain::{Email, Password, Username};
use crate::error::{Error, OrInternal, Result};
use crate::store::{NewUser, StoreError, User, UserRole};

impl Accounts<'_> {
    /// Refused with Strapi's message when registration is off; asked before the body is read.
    pub fn ensure_registration_open(&self) -> Result<()> {
        if self.auth.settings.allow_register {
            Ok(())
        } else {
            Err(Error::Application(MSG_REGISTER_DISABLED.into()))
        }
    }

    /// `POST /api/auth/local/register`.
    #[tracing::instrument(skip_all)]
    pub async fn register(
        &self,
        username: Username,
        email: Email,
        password: Password,
        client: ClientInfo,
    ) -> Result<Issued> {
        self.ensure_registration_open()?;
        let role = self.auth.default_role().await?;
        let confirmed = !self.auth.settings.email_confirmation;
        let ticket = self.auth.caches.ticket();
        let user = self
            .auth
            .create_account(username, email, password, role.id, confirmed, false)
            .await?;
        if !confirmed {
            self.send_confirmation_now(&user).await?;
            return Ok(Issued {
                jwt: None,
                refresh_token: None,
                user,
            });
        }
        let (jwt, refresh_token) = self.auth.start_session(&user, ticket, None, client).await?;
        Ok(Issued {
            jwt: Some(jwt),
            refresh_token,
            user,
        })
    }
}

impl Auth {
    /// The role new accounts get (`default_role`); Strapi's message when it is missing.
    pub(super) async fn default_role(&self) -> Result<UserRole> {
        self.store
            .role_by_name_or_kind(&self.settings.default_role)
            .await
            .or_internal()?
            .ok_or_else(|| Error::Application("Impossible to find the default role".into()))
    }

    pub(super) async fn create_account(
        &self,
        username: Username,
        email: Email,
        password: Password,
        role_id: i64,
        confirmed: bool,
        blocked: bool,
    ) -> Result<User> {
        self.check_new_password(&password, &[username.as_str(), email.as_str()])
            .await?;
        // Strapi also refuses a username equal to someone's email and vice versa; the unique indexes
        // cover the same-column cases even under concurrent registrations.
        let taken = || Error::Application(MSG_TAKEN.into());
        if self
            .store
            .identity_taken(username.as_str(), email.as_str())
            .await
            .or_internal()?
        {
            return Err(taken());
        }
        let hash = self
            .hasher
            .hash(SecretString::from(password.expose()))
            .await?;
        let new = NewUser {
            document_id: document_id(),
            username: username.as_str().to_owned(),
            email: email.as_str().to_owned(),
            provider: "local".into(),
            password_hash: Some(hash),
            confirmed,
            blocked,
            role_id,
            created_at: self.clock.now_millis(),
        };
        match self.store.create_user(new).await {
            Ok(user) => Ok(user),
            Err(StoreError::Conflict) => Err(taken()),
            Err(e) => Err(Error::internal(e)),
        }
    }
}
