//! The mail settings, declared once: the SMTP server, the sender, the public URL links point at, the
//! product name and the template overrides. Validated into [`MailSettings`] by building a throw-away
//! [`Mailer`], so a bad URL, sender or template stops start-up.

use secrecy::SecretString;
use std::path::PathBuf;

use super::{MailError, MailSettings, Mailer};
use crate::settings::{Checked, Invalid, secret, section};

section! {
    /// The mail section.
    pub struct MailSection {
        /// SMTP server: smtp://host:port (plain, local relays), smtp+starttls://user:pass@host or
        /// smtps://user:pass@host.
        smtp_url: Option<String> = None; Env, "—";
        /// File holding the SMTP URL. Without one, `serve` refuses to start unless mail_to_log is
        /// on or --demo is given.
        smtp_url_file: Option<PathBuf> = None; Serve, "—";
        /// Without smtp_url, write account mail (reset links included) to the log instead;
        /// development only.
        mail_to_log: bool = false; Serve, "`false`";
        /// Sender of the account mails.
        mail_from: String = MailSettings::default().from; Serve, "`Keyway <no-reply@localhost>`";
        /// Public base URL of this server, for links in mails.
        public_url: String = MailSettings::default().public_url; Serve, "`http://127.0.0.1:8080`";
        /// Product name shown in mails and pages.
        app_name: String = MailSettings::default().app_name; Serve, "`Keyway`";
        /// Folder of mail template overrides: NAME.subject, NAME.txt, NAME.html with NAME one of
        /// email-confirmation, reset-password, password-changed.
        mail_templates_dir: Option<PathBuf> = None; Serve, "—";
    }
}

impl MailSection {
    pub fn validate(self) -> Checked<MailSettings> {
        // The *_FILE setting wins over the URL itself, as for every secret.
        let smtp_url = secret(
            self.smtp_url,
            "smtp_url_file",
            self.smtp_url_file.as_deref(),
        )?
        .filter(|u| !u.trim().is_empty());
        let public_url = self.public_url;
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(Invalid::new(
                "public_url",
                format!("'{public_url}' must start with http:// or https://"),
            ));
        }
        let settings = MailSettings {
            smtp_url: smtp_url.map(SecretString::from),
            from: self.mail_from,
            public_url: public_url.trim_end_matches('/').to_owned(),
            app_name: self.app_name,
            templates_dir: self.mail_templates_dir,
            to_log: self.mail_to_log,
            ..MailSettings::default()
        };
        Mailer::new(settings.clone()).map_err(|e| {
            let key = match &e {
                MailError::InvalidUrl(_) => "smtp_url",
                MailError::Template { .. } => "mail_templates_dir",
                MailError::InvalidSetting(m) => ["mail_from", "public_url", "app_name"]
                    .into_iter()
                    .find(|k| m.starts_with(k))
                    .unwrap_or("mail"),
                _ => "mail",
            };
            Invalid::new(key, e.to_string())
        })?;
        Ok(settings)
    }
}
