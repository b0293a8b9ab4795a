//! What a person does to their own account, as the [`Accounts`] service ([`Auth::accounts`]):
//! email confirmation and forgotten passwords, by one-time codes sent by email, and changing the
//! password (registration, the other way in, is in `register.rs`).
//!
//! Safer than Strapi's: codes are random (256 bits), stored only as SHA-256 hashes, work once, and
//! expire (reset: 1 hour, confirmation: 24 hours by default). A reset ends every session of the
//! account, and the owner is told by email. Nothing a caller sees, in answer or in timing, says whether
//! an address is registered: mail goes out from a background task, after the answer.

use secrecy::SecretString;

use super::mail::{MailVars, Template};
use super::password::PasswordCheck;
use super::sessions::{Ticket, hash_token};
use super::{
    Auth, ClientInfo, Clock, Issued, MSG_BLOCKED, MSG_CURRENT_PASSWORD_INVALID,
    MSG_PASSWORD_UNCHANGED, Principal, random_id, throttle_key,
};
use crate::domain::{Email, LoginPassword, Password};
use crate::error::OrInternal;
use crate::error::{Error, Result};
use crate::store::{Code, CodePurpose, Millis, NewCode, Revoke, Store, User};

pub const MSG_INCORRECT_CODE: &str = "Incorrect code provided";
pub const MSG_INVALID_CONFIRMATION: &str = "Invalid token";
pub const MSG_CONFIRMATION_NOT_SENT: &str = "Error sending confirmation email";

/// The accounts service of an [`Auth`]: registration, the mailed codes (confirmation, forgotten
/// password) and password changes. Its methods are the self-service endpoints' core; an operator's
/// changes are [`Auth::admin`]'s. `auth` is visible to `register.rs`, which adds registration.
pub struct Accounts<'a> {
    pub(super) auth: &'a Auth,
}

impl Auth {
    /// Registration, email confirmation, forgotten, reset and changed passwords.
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts { auth: self }
    }
}

impl Accounts<'_> {
    /// The account the address belongs to, if any: who a mailed code would go to.
    async fn account_with_email(&self, email: &Email) -> Result<Option<User>> {
        self.auth
            .store
            .user_by_email(email.as_str())
            .await
            .or_internal()
    }

    /// `POST /api/auth/forgot-password`: always succeeds. A reset mail goes to the address only if it
    /// belongs to an account that is not blocked.
    #[tracing::instrument(skip_all)]
    pub async fn forgot_password(&self, email: &Email) -> Result<()> {
        let Some(user) = self.account_with_email(email).await? else {
            return Ok(());
        };
        if !user.blocked {
            self.mail_code_in_background(user, CodePurpose::ResetPassword);
        }
        Ok(())
    }

    /// `POST /api/auth/reset-password`: sets a new password with a code from the reset mail, ends every
    /// session of the account, and opens a new one.
    #[tracing::instrument(skip_all)]
    pub async fn reset_password(
        &self,
        code: &str,
        new: Password,
        client: ClientInfo,
    ) -> Result<Issued> {
        let incorrect = || Error::Validation(MSG_INCORRECT_CODE.into());
        let store = &self.auth.store;
        let hash = hash_token(code);
        let code = Code::new(&hash, CodePurpose::ResetPassword);
        // The policy needs the account (its name and address), and a refused password must leave the
        // code usable for a second try: look first, use after.
        let owner = store
            .code_owner(code, self.now())
            .await
            .or_internal()?
            .ok_or_else(incorrect)?;
        let user = store
            .user_by_id(owner)
            .await
            .or_internal()?
            .ok_or_else(incorrect)?;
        self.auth
            .check_new_password(&new, &[&user.username, &user.email])
            .await?;
        let user_id = store
            .consume_code(code, self.now())
            .await
            .or_internal()?
            .ok_or_else(incorrect)?;
        if user_id != owner {
            return Err(incorrect());
        }
        if user.blocked {
            return Err(Error::Application(MSG_BLOCKED.into()));
        }
        let (user, ticket) = self.set_password(&user, &new).await?;
        // Following the link proved the address is theirs.
        let user = if user.confirmed {
            user
        } else {
            self.auth
                .store
                .set_confirmed(user.id, self.now())
                .await
                .or_internal()?;
            self.auth
                .store
                .user_by_id(user.id)
                .await
                .or_internal()?
                .unwrap_or(user)
        };
        self.signed_in_with_new_password(user, ticket, "password_reset", client)
            .await
    }

    /// `POST /api/auth/change-password`: checks the current password, stores the new one, ends every
    /// session of the account (a stolen token dies with the old password) and opens a fresh one.
    #[tracing::instrument(skip_all)]
    pub async fn change_password(
        &self,
        who: &Principal,
        current: LoginPassword,
        new: Password,
        client: ClientInfo,
    ) -> Result<Issued> {
        let user = who.user.as_ref();
        // Guessing the current password here is guessing the login password: the same allowance.
        let account = throttle_key(Some(user), &user.username);
        let ip = client.ip.as_deref().and_then(|ip| ip.parse().ok());
        let attempt = match self
            .auth
            .throttle
            .attempt(&account, ip, self.auth.clock.now_millis())
            .await
        {
            Ok(attempt) => attempt,
            Err(wait) => {
                self.auth
                    .audit_refusal(
                        account.as_str(),
                        Some(user.id),
                        &client,
                        "change-password throttled",
                    )
                    .await;
                return Err(Error::RateLimited(wait));
            }
        };
        let creds = self
            .auth
            .store
            .local_credentials(&user.email, &user.username)
            .await
            .or_internal()?
            .filter(|c| c.user.id == user.id);
        let stored = creds.and_then(|c| c.password_hash);
        let verdict = self
            .auth
            .hasher
            .verify(SecretString::from(current.expose()), stored)
            .await?;
        if verdict == PasswordCheck::Mismatch {
            let detail = "wrong current password";
            self.auth
                .audit(
                    "password_change_failure",
                    Some(user.id),
                    &client,
                    Some(detail),
                )
                .await;
            return Err(Error::Validation(MSG_CURRENT_PASSWORD_INVALID.into()));
        }
        self.auth.throttle.succeeded(&account, ip, attempt).await;
        if current.expose() == new.expose() {
            return Err(Error::Validation(MSG_PASSWORD_UNCHANGED.into()));
        }
        self.auth
            .check_new_password(&new, &[&user.username, &user.email])
            .await?;
        let (user, ticket) = self.set_password(user, &new).await?;
        self.signed_in_with_new_password(user, ticket, "password_change", client)
            .await
    }

    /// Stores a new password hash and ends every session of the account; returns the account as it
    /// is now (its new security stamp, for the session the caller opens next) and the cache ticket
    /// it was read with. The seam every password change goes through (change, reset).
    async fn set_password(&self, user: &User, new: &Password) -> Result<(User, Ticket)> {
        let hash = self
            .auth
            .hasher
            .hash(SecretString::from(new.expose()))
            .await?;
        self.auth
            .store
            .set_password_hash(user.id, &hash, self.auth.clock.now_millis())
            .await
            .or_internal()?;
        self.auth.forget_user(user.id);
        self.auth
            .sessions()
            .revoke(Revoke::AllOfUser(user.id), "password_changed")
            .await?;
        let ticket = self.auth.caches.ticket();
        let now = self.auth.store.user_by_id(user.id).await.or_internal()?;
        Ok((now.ok_or(Error::INVALID_USER)?, ticket))
    }

    /// How every password change (change, reset) ends once the hash is stored: recorded as `event`,
    /// the owner told by mail, and a session opened for the caller — the only one left.
    async fn signed_in_with_new_password(
        &self,
        user: User,
        ticket: Ticket,
        event: &str,
        client: ClientInfo,
    ) -> Result<Issued> {
        self.auth.audit(event, Some(user.id), &client, None).await;
        self.mail_in_background(&user, Template::PasswordChanged, None, None);
        let (jwt, refresh_token) = self.auth.start_session(&user, ticket, None, client).await?;
        Ok(Issued {
            jwt: Some(jwt),
            refresh_token,
            user,
        })
    }

    /// `GET /api/auth/email-confirmation?confirmation=…`: confirms the address the code was sent to.
    pub async fn confirm_email(&self, code: &str) -> Result<()> {
        let hash = hash_token(code);
        let user_id = self
            .auth
            .store
            .consume_code(Code::new(&hash, CodePurpose::ConfirmEmail), self.now())
            .await
            .or_internal()?
            .ok_or_else(|| Error::Validation(MSG_INVALID_CONFIRMATION.into()))?;
        self.auth
            .store
            .set_confirmed(user_id, self.now())
            .await
            .or_internal()?;
        self.auth.forget_user(user_id);
        Ok(())
    }

    /// `POST /api/auth/send-email-confirmation`: sends a new confirmation mail (replacing the old code)
    /// when the address belongs to an unconfirmed, unblocked account. Always the same answer.
    #[tracing::instrument(skip_all)]
    pub async fn resend_confirmation(&self, email: &Email) -> Result<()> {
        let Some(user) = self.account_with_email(email).await? else {
            return Ok(());
        };
        if !user.confirmed && !user.blocked {
            self.mail_code_in_background(user, CodePurpose::ConfirmEmail);
        }
        Ok(())
    }

    /// Sends the confirmation mail of a new registration and waits for it: as in Strapi, a failure is
    /// reported ("Error sending confirmation email"), while the account and its code are kept so a
    /// resend can succeed later.
    pub(super) async fn send_confirmation_now(&self, user: &User) -> Result<()> {
        let code = self.issue_code(user.id, CodePurpose::ConfirmEmail).await?;
        let vars = MailVars {
            username: user.username.clone(),
            email: user.email.clone(),
            link: Some(self.confirmation_link(&code)),
            code: Some(code),
        };
        self.auth
            .mailer
            .send(&user.email, Template::EmailConfirmation, &vars)
            .await
            .map_err(|e| {
                tracing::warn!(user_id = user.id, error = %e, "confirmation email not sent");
                Error::Application(MSG_CONFIRMATION_NOT_SENT.into())
            })
    }

    /// Where `GET /api/auth/email-confirmation` sends the browser after confirming.
    pub fn confirmation_redirect(&self) -> String {
        match &self.auth.settings.confirmation_redirect {
            Some(url) => url.clone(),
            None => format!(
                "{}{}email-confirmed",
                self.auth.mailer.public_url(),
                self.auth.settings.pages_path
            ),
        }
    }

    fn confirmation_link(&self, code: &str) -> String {
        format!("{}{code}", self.link_prefix(CodePurpose::ConfirmEmail))
    }

    /// The mailed link for a code of `purpose`, up to the code itself.
    fn link_prefix(&self, purpose: CodePurpose) -> String {
        match (purpose, &self.auth.settings.reset_url) {
            (CodePurpose::ResetPassword, Some(url)) => format!("{url}?code="),
            (CodePurpose::ResetPassword, None) => format!(
                "{}{}reset-password?code=",
                self.auth.mailer.public_url(),
                self.auth.settings.pages_path
            ),
            (CodePurpose::ConfirmEmail, _) => format!(
                "{}/api/auth/email-confirmation?confirmation=",
                self.auth.mailer.public_url()
            ),
        }
    }

    /// A fresh code for `purpose`, stored by its hash; the user's older codes of that purpose die.
    async fn issue_code(&self, user_id: i64, purpose: CodePurpose) -> Result<String> {
        store_code(
            self.auth.store.as_ref(),
            self.auth.clock.as_ref(),
            self.code_ttl(purpose),
            user_id,
            purpose,
        )
        .await
    }

    fn code_ttl(&self, purpose: CodePurpose) -> Millis {
        let ttl = match purpose {
            CodePurpose::ResetPassword => self.auth.settings.reset_code_ttl,
            CodePurpose::ConfirmEmail => self.auth.settings.confirmation_code_ttl,
        };
        ttl.as_millis() as Millis
    }

    /// Issues a code and mails its link, both after the answer has gone: whether the address has an
    /// account then changes neither what the caller sees nor how long it waits.
    fn mail_code_in_background(&self, user: User, purpose: CodePurpose) {
        let store = self.auth.store.clone();
        let clock = self.auth.clock.clone();
        let mailer = self.auth.mailer.clone();
        let in_flight = mailer.track();
        let ttl = self.code_ttl(purpose);
        let prefix = self.link_prefix(purpose);
        let template = match purpose {
            CodePurpose::ResetPassword => Template::ResetPassword,
            CodePurpose::ConfirmEmail => Template::EmailConfirmation,
        };
        tokio::spawn(async move {
            let _in_flight = in_flight;
            // Start after the answer has been written: this work competes for the CPU, and a
            // registered address must not answer measurably slower than an unknown one.
            tokio::time::sleep(std::time::Duration::from_millis(
                20 + rand::random_range(0..30),
            ))
            .await;
            let code = match store_code(store.as_ref(), clock.as_ref(), ttl, user.id, purpose).await
            {
                Ok(code) => code,
                Err(e) => {
                    tracing::warn!(user_id = user.id, error = %e, "cannot store a mailed code");
                    return;
                }
            };
            let vars = MailVars {
                username: user.username.clone(),
                email: user.email.clone(),
                link: Some(format!("{prefix}{code}")),
                code: Some(code),
            };
            if let Err(e) = mailer.send(&user.email, template, &vars).await {
                tracing::warn!(error = %e, ?template, "email not delivered");
            }
        });
    }

    /// Sends after the answer has gone: the caller waits for neither the SMTP server nor its retries,
    /// and cannot time them. Failures are logged by the mailer.
    fn mail_in_background(
        &self,
        user: &User,
        template: Template,
        link: Option<String>,
        code: Option<String>,
    ) {
        let mailer = self.auth.mailer.clone();
        let in_flight = mailer.track();
        let to = user.email.clone();
        let vars = MailVars {
            username: user.username.clone(),
            email: user.email.clone(),
            link,
            code,
        };
        tokio::spawn(async move {
            let _in_flight = in_flight;
            if let Err(e) = mailer.send(&to, template, &vars).await {
                tracing::warn!(error = %e, ?template, "email not delivered");
            }
        });
    }

    fn now(&self) -> Millis {
        self.auth.clock.now_millis()
    }
}

/// Creates a code for `purpose` and stores its hash, replacing the user's older ones.
async fn store_code(
    store: &dyn Store,
    clock: &dyn Clock,
    ttl: Millis,
    user_id: i64,
    purpose: CodePurpose,
) -> Result<String> {
    let code = random_id(32);
    let hash = hash_token(&code);
    let now = clock.now_millis();
    let new = NewCode {
        code: Code::new(&hash, purpose),
        user_id,
        created_at: now,
        expires_at: now + ttl,
    };
    store.create_code(&new).await.or_internal()?;
    Ok(code)
}
