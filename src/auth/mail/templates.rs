//! The mails' texts: the kinds of message, the values they show, the built-in templates (`mail/` at
//! the top of the repository, embedded) and an operator's overrides from `mail_templates_dir`
//! (`NAME.subject`, `NAME.txt`, `NAME.html`), all through the crate's one template engine. Only the
//! HTML part is escaped; a subject is one line whatever the values hold.

use minijinja::context;
use std::path::Path;

use crate::templates::{RenderError, TemplateError, Templates, read_overrides};

/// The kinds of message Keyway sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    EmailConfirmation,
    ResetPassword,
    PasswordChanged,
}

impl Template {
    pub const ALL: [Template; 3] = [
        Template::EmailConfirmation,
        Template::ResetPassword,
        Template::PasswordChanged,
    ];

    /// The file-name stem of this template's overrides.
    pub fn name(self) -> &'static str {
        match self {
            Template::EmailConfirmation => "email-confirmation",
            Template::ResetPassword => "reset-password",
            Template::PasswordChanged => "password-changed",
        }
    }

    /// The embedded subject, plain text and HTML.
    fn builtin(self) -> [&'static str; 3] {
        match self {
            Template::EmailConfirmation => [
                include_str!("../../../mail/email-confirmation.subject"),
                include_str!("../../../mail/email-confirmation.txt"),
                include_str!("../../../mail/email-confirmation.html"),
            ],
            Template::ResetPassword => [
                include_str!("../../../mail/reset-password.subject"),
                include_str!("../../../mail/reset-password.txt"),
                include_str!("../../../mail/reset-password.html"),
            ],
            Template::PasswordChanged => [
                include_str!("../../../mail/password-changed.subject"),
                include_str!("../../../mail/password-changed.txt"),
                include_str!("../../../mail/password-changed.html"),
            ],
        }
    }
}

/// The values a template can use, besides `{{ app_name }}`. A `None` renders as nothing.
#[derive(Clone, Debug, Default)]
pub struct MailVars {
    pub username: String,
    pub email: String,
    pub link: Option<String>,
    pub code: Option<String>,
}

/// The parts of a message, by the extension of their files.
const PARTS: [&str; 3] = ["subject", "txt", "html"];

/// Variables a template may use.
const VARIABLES: [&str; 5] = ["app_name", "username", "email", "link", "code"];

/// The frame the built-in HTML parts extend (an override may extend it too).
const LAYOUT: &str = "layout.html";

/// Subject, plain text and HTML of one message, rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Every part of every mail, built-in or overridden, compiled and checked.
#[derive(Debug)]
pub(super) struct MailTemplates {
    templates: Templates,
}

impl MailTemplates {
    /// The built-in templates, with every part of every override found in `dir` put in its place.
    /// Refuses a misspelt name (it would otherwise be ignored and the built-in text sent), a subject
    /// that is not one line, a syntax error and an unknown variable, naming the file (and line).
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut templates = Templates::new();
        templates.add(
            LAYOUT,
            include_str!("../../../mail/layout.html").into(),
            None,
        )?;
        for template in Template::ALL {
            for (ext, text) in PARTS.iter().zip(template.builtin()) {
                add(&mut templates, template, ext, text.to_owned(), None)?;
            }
        }
        let overrides = dir.map(|d| read_overrides(d, &PARTS)).transpose()?;
        for found in overrides.unwrap_or_default() {
            let Some(template) = Template::ALL.into_iter().find(|t| t.name() == found.stem) else {
                return Err(TemplateError {
                    path: found.path,
                    line: None,
                    message: format!(
                        "unknown template '{}'; the names are {}",
                        found.stem,
                        Template::ALL.map(Template::name).join(", ")
                    ),
                });
            };
            add(
                &mut templates,
                template,
                &found.ext,
                found.text,
                Some(&found.path),
            )?;
        }
        let sample = context! {
            app_name => "Keyway",
            username => "alice",
            email => "alice@example.com",
            link => "https://keyway.example.com/reset-password?code=abc",
            code => "abc",
        };
        for template in Template::ALL {
            for ext in PARTS {
                let name = file(template, ext);
                templates.check(&name, &VARIABLES, sample.clone())?;
            }
        }
        Ok(Self { templates })
    }

    pub fn render(
        &self,
        template: Template,
        app_name: &str,
        vars: &MailVars,
    ) -> Result<Rendered, RenderError> {
        let context = context! {
            app_name,
            username => vars.username.as_str(),
            email => vars.email.as_str(),
            link => vars.link.as_deref(),
            code => vars.code.as_deref(),
        };
        let part = |ext| self.templates.render(&file(template, ext), context.clone());
        // A header is one line: a value with a line break must not end it or start another.
        let subject = part("subject")?
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Ok(Rendered {
            subject,
            text: part("txt")?,
            html: part("html")?,
        })
    }
}

/// The engine's name of one part: `reset-password.html`, so the HTML part alone is escaped.
fn file(template: Template, ext: &str) -> String {
    format!("{}.{ext}", template.name())
}

fn add(
    templates: &mut Templates,
    template: Template,
    ext: &str,
    text: String,
    origin: Option<&Path>,
) -> Result<(), TemplateError> {
    let text = if ext == "subject" {
        let subject = text.trim();
        if subject.is_empty() || subject.contains(['\r', '\n']) {
            return Err(TemplateError {
                path: origin.map_or_else(|| file(template, ext).into(), Path::to_owned),
                line: None,
                message: "a subject is one non-empty line".into(),
            });
        }
        subject.to_owned()
    } else {
        text
    };
    templates.add(&file(template, ext), text, origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::sample_vars as vars;

    fn builtins() -> MailTemplates {
        MailTemplates::load(None).unwrap()
    }

    fn render(templates: &MailTemplates, template: Template, vars: &MailVars) -> Rendered {
        templates.render(template, "Acme", vars).unwrap()
    }

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    /// The password-changed mail with `file` overridden by `text`.
    fn password_changed_with(file: &str, text: &str) -> Rendered {
        let dir = dir_with(&[(file, text)]);
        let templates = MailTemplates::load(Some(dir.path())).unwrap();
        render(&templates, Template::PasswordChanged, &vars())
    }

    #[test]
    fn builtin_templates_render_every_part() {
        let m = builtins();
        for t in Template::ALL {
            let r = render(&m, t, &vars());
            for part in [&r.subject, &r.text, &r.html] {
                assert!(!part.contains("{{"), "{t:?} left a variable: {part}");
            }
            assert!(r.subject.contains("Acme"), "{t:?}: {}", r.subject);
            assert!(r.text.contains("Hi alice,"), "{t:?}");
            assert!(r.html.contains("Hi alice,"), "{t:?}");
            assert!(r.html.starts_with("<!DOCTYPE html>"), "{t:?}");
            // The code is for custom templates: no built-in shows it.
            assert!(!r.text.contains("c0de") && !r.html.contains("c0de"));
        }
    }

    /// Every built-in mail, byte for byte, pinned in `src/auth/mail/snapshots/` (the values try to
    /// break out of the markup: the HTML part must escape them, the text part must not).
    #[test]
    fn builtin_mails_render_as_pinned() {
        let m = builtins();
        let v = MailVars {
            username: "<script>alert('x')</script> & \"q\"".into(),
            ..vars()
        };
        for t in Template::ALL {
            let r = m.render(t, "Acme <b>&\"'</b>", &v).unwrap();
            insta::with_settings!({
                snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/src/auth/mail/snapshots"),
                prepend_module_to_snapshot => false,
            }, {
                insta::assert_snapshot!(
                    t.name(),
                    format!("subject: {}\n--- text\n{}--- html\n{}[end]", r.subject, r.text, r.html)
                );
            });
        }
    }

    #[test]
    fn confirmation_and_reset_carry_the_link() {
        let m = builtins();
        let link = "https://acme.test/confirm?confirmation=abc&x=1";
        for t in [Template::EmailConfirmation, Template::ResetPassword] {
            let r = render(&m, t, &vars());
            assert!(r.text.contains(link), "{t:?} text");
            assert!(
                r.html
                    .contains("href=\"https://acme.test/confirm?confirmation=abc&amp;x=1\""),
                "{t:?} html: {}",
                r.html
            );
        }
        let reset = render(&m, Template::ResetPassword, &vars());
        assert!(reset.text.contains("expires in one hour"));
        assert!(reset.text.contains("ignore this email"));
        assert!(reset.html.contains("expires in one hour"));
        assert_eq!(reset.subject, "Reset your Acme password");
    }

    #[test]
    fn password_changed_says_what_to_do_if_it_was_not_you() {
        let r = render(&builtins(), Template::PasswordChanged, &vars());
        assert_eq!(r.subject, "Your Acme password was changed");
        assert!(r.text.contains("was just changed"));
        assert!(r.text.contains("contact support"));
        assert!(r.text.contains("reset your password"));
        assert!(r.html.contains("contact support"));
    }

    #[test]
    fn values_are_escaped_in_html_only() {
        let v = MailVars {
            username: "<b>x</b> & \"q\" 'a'".into(),
            ..vars()
        };
        let r = render(&builtins(), Template::EmailConfirmation, &v);
        assert!(r.text.contains("Hi <b>x</b> & \"q\" 'a',"), "{}", r.text);
        assert!(
            r.html
                .contains("Hi &lt;b&gt;x&lt;/b&gt; &amp; &quot;q&quot; &#39;a&#39;,"),
            "{}",
            r.html
        );
        assert!(!r.html.contains("<b>x</b>"));
    }

    #[test]
    fn missing_variables_render_as_nothing() {
        let r = render(
            &builtins(),
            Template::EmailConfirmation,
            &MailVars {
                username: "bob".into(),
                ..Default::default()
            },
        );
        assert!(r.text.contains("this link:\n\n\n"), "{}", r.text);
        assert!(r.html.contains("href=\"\""));
    }

    #[test]
    fn line_breaks_cannot_escape_the_subject() {
        let dir = dir_with(&[("password-changed.subject", "Hello {{username}}\n")]);
        let m = MailTemplates::load(Some(dir.path())).unwrap();
        let v = MailVars {
            username: "eve\r\nBcc: victim@example.com".into(),
            ..vars()
        };
        let r = render(&m, Template::PasswordChanged, &v);
        assert!(!r.subject.contains(['\r', '\n']), "{:?}", r.subject);
        assert_eq!(r.subject, "Hello eve  Bcc: victim@example.com");
    }

    #[test]
    fn variables_may_be_spaced_and_other_braces_are_text() {
        let r = password_changed_with(
            "password-changed.txt",
            "a {{ username }} b {{email}} {c} }}\n",
        );
        assert_eq!(r.text, "a alice b alice@example.com {c} }}\n");
    }

    #[test]
    fn overrides_replace_only_the_parts_present() {
        let dir = dir_with(&[
            (
                "reset-password.subject",
                "  {{app_name}}: new password for {{username}}  \n",
            ),
            ("reset-password.txt", "Code {{code}} or {{link}}\n"),
            ("email-confirmation.html", "<p>{{username}} {{link}}</p>"),
            ("README.md", "not a template, ignored"),
        ]);
        let m = MailTemplates::load(Some(dir.path())).unwrap();
        let v = MailVars {
            username: "<i>".into(),
            ..vars()
        };

        let reset = render(&m, Template::ResetPassword, &v);
        assert_eq!(reset.subject, "Acme: new password for <i>");
        assert_eq!(
            reset.text,
            "Code c0de or https://acme.test/confirm?confirmation=abc&x=1\n"
        );
        assert!(
            reset.html.contains("expires in one hour"),
            "built-in html kept"
        );

        let confirm = render(&m, Template::EmailConfirmation, &v);
        assert_eq!(confirm.subject, "Confirm your email for Acme");
        assert_eq!(
            confirm.html,
            "<p>&lt;i&gt; https://acme.test/confirm?confirmation=abc&amp;x=1</p>"
        );
        assert!(confirm.text.contains("Welcome to Acme!"));

        assert_eq!(
            render(&m, Template::PasswordChanged, &v),
            render(&builtins(), Template::PasswordChanged, &v)
        );
    }

    #[test]
    fn an_override_may_extend_the_built_in_layout() {
        let r = password_changed_with(
            "password-changed.html",
            "{% extends \"layout.html\" %}{% block body %}<p>{{ username }}</p>\n{% endblock %}",
        );
        assert!(r.html.starts_with("<!DOCTYPE html>"), "{}", r.html);
        assert!(
            r.html.contains("<p>alice</p>\n<p>The Acme team</p>"),
            "{}",
            r.html
        );
    }

    #[test]
    fn broken_overrides_are_refused_with_the_file_and_line() {
        let cases = [
            (
                "reset-password.txt",
                "Hi\n{{nmae}}",
                "reset-password.txt:2: unknown variable 'nmae'; the variables are app_name, \
                 username, email, link, code",
            ),
            (
                "reset_password.txt",
                "Hi",
                "reset_password.txt: unknown template 'reset_password'",
            ),
            (
                "password-changed.subject",
                "\n",
                "password-changed.subject: a subject is one non-empty line",
            ),
            (
                "password-changed.subject",
                "two\nlines",
                "one non-empty line",
            ),
            (
                "email-confirmation.html",
                "<p>\n{{link",
                "email-confirmation.html:2: syntax error",
            ),
            (
                "email-confirmation.html",
                "{{ link | no_such_filter }}",
                "email-confirmation.html:1: unknown filter",
            ),
        ];
        for (file, text, expected) in cases {
            let dir = dir_with(&[(file, text)]);
            let shown = MailTemplates::load(Some(dir.path()))
                .unwrap_err()
                .to_string();
            assert!(shown.contains(expected), "{shown}");
        }
    }
}
