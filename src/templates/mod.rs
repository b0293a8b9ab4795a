//! The one template engine of the hosted pages and the mails (minijinja): how templates are
//! configured (HTML auto-escaped by file name, an unknown variable an error rather than an empty
//! string), overrides read from an operator's folder, and the check every template gets when it is
//! loaded, so that a typo stops start-up with the file and line instead of showing a hole to users.
//!
//! What each set of templates holds (names, variables, sample values) belongs to its user: the pages
//! in [`pages`], the mails in `auth::mail`. This module depends on nothing else in the crate, so the
//! configuration can check overrides before anything is built.

pub mod pages;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Output, State, UndefinedBehavior};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use minijinja::Error as RenderError;

/// Why a template cannot be used: which file, where in it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TemplateError {
    /// The override's path, or `built-in NAME` for an embedded template.
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// An override found in a templates folder: `stem.ext`, read whole.
#[derive(Debug)]
pub struct Override {
    pub path: PathBuf,
    pub stem: String,
    pub ext: String,
    pub text: String,
}

/// The files in `dir` whose extension is one of `extensions`, read; other files are left alone (a
/// README beside the templates, say).
pub fn read_overrides(dir: &Path, extensions: &[&str]) -> Result<Vec<Override>, TemplateError> {
    let folder_error = |e: std::io::Error| TemplateError {
        path: dir.to_owned(),
        line: None,
        message: format!("cannot read the templates folder: {e}"),
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(folder_error)? {
        let path = entry.map_err(folder_error)?.path();
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        if !extensions.contains(&ext) {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| TemplateError {
            path: path.clone(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        found.push(Override {
            stem: stem.to_owned(),
            ext: ext.to_owned(),
            path,
            text,
        });
    }
    // The folder's order is the file system's; an error should name the same file every time.
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// A set of named templates, compiled. Names ending in `.html` are HTML-escaped.
pub struct Templates {
    env: Environment<'static>,
    /// Where each template came from, for error messages.
    origins: HashMap<String, PathBuf>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(format_value);
        // A text part's last line break is part of the message; Jinja drops it by default.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .expect("the default delimiters are valid");
        env.set_syntax(syntax);
        Self {
            env,
            origins: HashMap::new(),
        }
    }

    /// Compiles `text` as `name`, replacing any template of that name. `origin` is the override's
    /// path; `None` for a built-in. A syntax error names the file and line.
    pub fn add(
        &mut self,
        name: &str,
        text: String,
        origin: Option<&Path>,
    ) -> Result<(), TemplateError> {
        let origin =
            origin.map_or_else(|| PathBuf::from(format!("built-in {name}")), Path::to_owned);
        self.env
            .add_template_owned(name.to_owned(), text)
            .map_err(|e| located(&origin, &e))?;
        self.origins.insert(name.to_owned(), origin);
        Ok(())
    }

    /// Refuses `name` if it uses a variable outside `variables`, or if rendering it with `sample`
    /// (a value for each of `variables`) fails: a filter that does not exist, a missing include.
    pub fn check(
        &self,
        name: &str,
        variables: &[&str],
        sample: Value,
    ) -> Result<(), TemplateError> {
        let origin = &self.origins[name];
        let template = self
            .env
            .get_template(name)
            .map_err(|e| located(origin, &e))?;
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !variables.contains(&v.as_str()) && self.env.globals().all(|(g, _)| g != v))
            .collect();
        unknown.sort();
        if let Some(first) = unknown.first() {
            return Err(TemplateError {
                path: origin.clone(),
                line: line_of(template.source(), first),
                message: format!(
                    "unknown variable '{first}'; the variables are {}",
                    variables.join(", ")
                ),
            });
        }
        template
            .render(sample)
            .map(drop)
            .map_err(|e| located(origin, &e))
    }

    pub fn render(&self, name: &str, context: Value) -> Result<String, RenderError> {
        self.env.get_template(name)?.render(context)
    }
}

/// A template error as this module shows it: the file, the line, and minijinja's words without its
/// own `(in name:line)`, which names the template rather than the file.
fn located(origin: &Path, e: &minijinja::Error) -> TemplateError {
    TemplateError {
        path: origin.to_owned(),
        line: e.line(),
        message: match e.detail() {
            Some(detail) => format!("{}: {detail}", e.kind()),
            None => e.kind().to_string(),
        },
    }
}

/// The line of the first tag (`{{ … }}` or `{% … %}`) that names `variable`.
fn line_of(source: &str, variable: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut offset = 0;
    while let Some(open) = source[offset..].find(['{']) {
        let start = offset + open;
        let rest = &source[start..];
        let close = match rest.get(..2) {
            Some("{{") => "}}",
            Some("{%") => "%}",
            _ => {
                offset = start + 1;
                continue;
            }
        };
        let end = rest.find(close).map_or(source.len(), |e| start + e);
        let tag = &source[start..end];
        let mut at = 0;
        while let Some(found) = tag[at..].find(variable) {
            let (before, after) = (at + found, at + found + variable.len());
            let bounded = !tag[..before].ends_with(is_ident)
                && !tag[after..].starts_with(is_ident)
                && !tag[..before].ends_with('.');
            if bounded {
                return Some(source[..start + before].matches('\n').count() + 1);
            }
            at = after;
        }
        offset = end.max(start + 2);
    }
    None
}

/// Prints a value: HTML-escaped where the template's name asks for it (safe strings as they are),
/// and `none` as nothing (a link a message does not have), as Keyway's templates always did.
fn format_value(out: &mut Output, state: &mut State, value: &Value) -> Result<(), RenderError> {
    if value.is_none() {
        return Ok(());
    }
    if *state.auto_escape() == AutoEscape::Html && !value.is_safe() {
        return write_html_escaped(out, &value.to_string())
            .map_err(|_| RenderError::new(minijinja::ErrorKind::WriteFailure, "write failed"));
    }
    minijinja::escape_formatter(out, state, value)
}

/// The five characters that matter in HTML text and quoted attributes, written as Keyway's pages
/// always wrote them. minijinja's own escaper also turns `/` into `&#x2f;` and `'` into `&#x27;`:
/// as safe, but it would change every `href` the pages and mails have always sent.
fn write_html_escaped(out: &mut Output, text: &str) -> fmt::Result {
    let mut last = 0;
    for (i, c) in text.char_indices() {
        let entity = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&#39;",
            _ => continue,
        };
        out.write_str(&text[last..i])?;
        out.write_str(entity)?;
        last = i + 1;
    }
    out.write_str(&text[last..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn templates(sources: &[(&str, &str)]) -> Templates {
        let mut t = Templates::new();
        for (name, text) in sources {
            t.add(
                name,
                (*text).to_owned(),
                Some(Path::new(&format!("/t/{name}"))),
            )
            .unwrap();
        }
        t
    }

    #[test]
    fn html_is_escaped_by_name_and_safe_values_are_not() {
        let t = templates(&[
            ("a.html", "<p title=\"{{ x }}\">{{ x }}{{ s }}</p>\n"),
            ("a.txt", "{{ x }}\n"),
        ]);
        let ctx =
            || context! { x => "<i>\"'&/</i>", s => Value::from_safe_string("<b>ok</b>".into()) };
        assert_eq!(
            t.render("a.html", ctx()).unwrap(),
            "<p title=\"&lt;i&gt;&quot;&#39;&amp;/&lt;/i&gt;\">&lt;i&gt;&quot;&#39;&amp;/&lt;/i&gt;<b>ok</b></p>\n"
        );
        assert_eq!(
            t.render("a.txt", ctx()).unwrap(),
            "<i>\"'&/</i>\n",
            "text is not escaped"
        );
    }

    #[test]
    fn none_prints_nothing_and_undefined_is_an_error() {
        let t = templates(&[("a.txt", "[{{ x }}]"), ("b.txt", "[{{ y }}]")]);
        assert_eq!(
            t.render("a.txt", context! { x => Value::from(()) })
                .unwrap(),
            "[]"
        );
        assert!(t.render("b.txt", context! { x => 1 }).is_err());
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line() {
        let mut t = Templates::new();
        let err = t
            .add(
                "a.html",
                "<p>\n{{ x }}\n{% if x %}\n".into(),
                Some(Path::new("/t/a.html")),
            )
            .unwrap_err();
        assert_eq!(err.path, Path::new("/t/a.html"));
        assert!(err.line.is_some_and(|l| l >= 3), "{err}");
        assert!(err.to_string().starts_with("/t/a.html:"), "{err}");
        assert!(err.to_string().contains("syntax error"), "{err}");
    }

    #[test]
    fn an_unknown_variable_names_the_file_and_line() {
        let t = templates(&[(
            "a.html",
            "<p>{{ x }}</p>\n<p>\n{% if nmae %}{{ nmae.first }}{% endif %}</p>\n",
        )]);
        let err = t.check("a.html", &["x"], context! { x => 1 }).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/t/a.html:3: unknown variable 'nmae'; the variables are x"
        );
        t.check(
            "a.html",
            &["x", "nmae"],
            context! { x => 1, nmae => context! { first => 2 } },
        )
        .unwrap();
    }

    #[test]
    fn what_the_sample_cannot_render_is_refused_with_its_line() {
        let t = templates(&[("a.txt", "ok\n{{ x | no_such_filter }}\n")]);
        let err = t.check("a.txt", &["x"], context! { x => 1 }).unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        assert!(err.message.contains("no_such_filter"), "{err}");
    }

    #[test]
    fn globals_and_loop_variables_are_not_unknown() {
        let t = templates(&[(
            "a.txt",
            "{% for i in range(2) %}{{ loop.index }}{{ i }}{% endfor %}{% set y = 1 %}{{ y }}",
        )]);
        t.check("a.txt", &[], context! {}).unwrap();
    }

    #[test]
    fn the_line_of_a_variable_is_found_in_tags_only() {
        let source = "nmae in text\n{{ x.nmae }}\n{{ nmaex }}\n{% if a %}{{ nmae }}{% endif %}";
        assert_eq!(line_of(source, "nmae"), Some(4));
        assert_eq!(line_of(source, "zzz"), None);
    }

    #[test]
    fn overrides_are_read_by_extension_in_a_stable_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.html", "a.html", "a.txt", "README.md"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        let found = read_overrides(dir.path(), &["html"]).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|o| (o.stem.as_str(), o.text.as_str()))
            .collect();
        assert_eq!(names, [("a", "a.html"), ("b", "b.html")]);
        let err = read_overrides(Path::new("/nonexistent/keyway-t"), &["html"]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/keyway-t"), "{err}");
    }
}
