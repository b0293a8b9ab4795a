//! The hosted pages' templates: the built-ins from `web/` (embedded), each with the variables it may
//! use, and an operator's replacements from `pages_templates_dir` (files named like the built-ins).
//! `http::pages` fills them; the configuration loads them once at start-up to refuse a broken
//! override. Every page body is rendered first and set into the frame, `page.html`, as `body`.

use super::{TemplateError, Templates, read_overrides};
use minijinja::context;
use minijinja::value::Value;
use std::path::Path;

/// What every template, the frame included, may use: the pages' path (ends with `/`), the product
/// name and the logo's URL (`none` without one).
const COMMON: [&str; 3] = ["base", "app_name", "logo_url"];

/// One template: its file name (in `web/` and in an override folder), its embedded text, and the
/// variables it may use besides [`COMMON`].
struct Builtin {
    file: &'static str,
    text: &'static str,
    variables: &'static [&'static str],
}

/// The frame every page body is set into.
pub const FRAME: &str = "page.html";

/// A [`Builtin`] from `web/FILE`, with the variables it may use besides [`COMMON`].
macro_rules! builtin {
    ($file:literal $(, $variable:literal)*) => {
        Builtin {
            file: $file,
            text: include_str!(concat!("../../web/", $file)),
            variables: &[$($variable),*],
        }
    };
}

const BUILTINS: [Builtin; 10] = [
    // `page` names the page for the script; `script` says whether it loads; `body` is the page.
    builtin!("page.html", "title", "page", "script", "body"),
    // `sso_providers`: a list of `{name, display_name}`, one per configured provider.
    builtin!("login.html", "allow_register", "sso_providers"),
    builtin!("home.html"),
    builtin!("register.html", "min_length"),
    builtin!("forgot-password.html"),
    builtin!("email-confirmed.html"),
    // `error`: why the last try was refused, `none` at first.
    builtin!("reset-password.html", "code", "min_length", "error"),
    builtin!("reset-done.html"),
    builtin!("reset-invalid.html"),
    builtin!("sso-redirect.html", "provider", "display_name"),
];

/// The page templates, compiled and checked. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct PageTemplates {
    templates: Templates,
}

impl Default for PageTemplates {
    /// The built-ins alone.
    fn default() -> Self {
        Self::load(None).expect("the built-in page templates are valid")
    }
}

impl PageTemplates {
    /// The built-ins, each replaced by its namesake in `dir`. Refuses an `.html` file in `dir` that
    /// names no page (a misspelt name would otherwise be ignored), a syntax error, and a variable the
    /// page does not have, naming the file and line.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut templates = Templates::new();
        for builtin in &BUILTINS {
            templates.add(builtin.file, builtin.text.to_owned(), None)?;
        }
        for found in dir
            .map(|d| read_overrides(d, &["html"]))
            .transpose()?
            .unwrap_or_default()
        {
            let Some(builtin) = BUILTINS
                .iter()
                .find(|b| b.file.strip_suffix(".html") == Some(&found.stem))
            else {
                return Err(TemplateError {
                    path: found.path,
                    line: None,
                    message: format!(
                        "unknown page template '{}'; the names are {}",
                        found.stem,
                        BUILTINS.map(|b| b.file).join(", ")
                    ),
                });
            };
            templates.add(builtin.file, found.text, Some(&found.path))?;
        }
        for builtin in &BUILTINS {
            let variables: Vec<&str> = COMMON.iter().chain(builtin.variables).copied().collect();
            templates.check(builtin.file, &variables, sample(&variables))?;
        }
        Ok(Self { templates })
    }

    /// Renders the template `file` with `context`, which holds the `COMMON` values and the page's
    /// own. A page body's output goes into the frame as a safe value.
    pub fn render(&self, file: &str, context: Value) -> Result<String, super::RenderError> {
        #[cfg(debug_assertions)]
        if let Some(builtin) = BUILTINS.iter().find(|b| b.file == file) {
            // What the check promised an override: every declared variable is given.
            for name in COMMON.iter().chain(builtin.variables) {
                debug_assert!(
                    !context.get_attr(name).is_ok_and(|v| v.is_undefined()),
                    "{file} is rendered without '{name}'"
                );
            }
        }
        self.templates.render(file, context)
    }
}

/// A plausible value of each variable, so the check takes every branch a real page can take.
fn sample(variables: &[&str]) -> Value {
    let value = |name: &str| -> Value {
        match name {
            "base" => "/".into(),
            "app_name" => "Keyway".into(),
            "logo_url" => "https://example.com/logo.svg".into(),
            "title" => "Sign in".into(),
            "page" => "login".into(),
            "script" | "allow_register" => true.into(),
            "body" => Value::from_safe_string("<h1>Sign in</h1>".into()),
            "sso_providers" => Value::from(vec![
                context! { name => "github", display_name => "GitHub" },
            ]),
            "min_length" => 8.into(),
            "code" => "a-reset-code".into(),
            "error" => "The two passwords do not match.".into(),
            "provider" => "github".into(),
            "display_name" => "GitHub".into(),
            other => unreachable!("no sample value for the page variable '{other}'"),
        }
    };
    Value::from_pairs(variables.iter().map(|name| (*name, value(name))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn load_error(files: &[(&str, &str)]) -> String {
        let dir = dir_with(files);
        PageTemplates::load(Some(dir.path()))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_built_ins_pass_their_own_check() {
        PageTemplates::default();
    }

    #[test]
    fn an_override_replaces_its_namesake_only() {
        let dir = dir_with(&[
            ("login.html", "<p>Welcome to {{ app_name }}</p>\n"),
            ("notes.txt", "not a template, ignored"),
        ]);
        let pages = PageTemplates::load(Some(dir.path())).unwrap();
        let ctx = sample(&[
            "base",
            "app_name",
            "logo_url",
            "allow_register",
            "sso_providers",
        ]);
        assert_eq!(
            pages.render("login.html", ctx).unwrap(),
            "<p>Welcome to Keyway</p>\n"
        );
        let home = pages.render("home.html", sample(&COMMON)).unwrap();
        assert!(home.contains("Checking your session"), "{home}");
    }

    #[test]
    fn broken_overrides_are_refused_with_the_file_and_line() {
        let err = load_error(&[("home.html", "<p>\n{% if base %}\n")]);
        assert!(
            err.contains("home.html:") && err.contains("syntax error"),
            "{err}"
        );
        let err = load_error(&[("register.html", "<p>\n{{ min_length }} {{ code }}</p>\n")]);
        assert!(
            err.contains("register.html:2: unknown variable 'code'"),
            "{err}"
        );
        let err = load_error(&[("login.htm", ""), ("logon.html", "")]);
        assert!(
            err.contains("logon.html: unknown page template 'logon'"),
            "{err}"
        );
    }
}
