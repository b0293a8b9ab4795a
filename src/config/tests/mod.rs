//! The configuration end to end: layering and its guarantees (layering.rs), each section's values
//! and refusals through the layers (sections.rs, sso.rs), and the README's table against the
//! declarations (readme.rs).

mod layering;
mod readme;
mod sections;
mod sso;

use super::*;
use std::io::Write;

fn no_env(_: &str) -> Option<String> {
    None
}

/// A lookup of exactly these variables.
fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

fn file_with(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// The configuration from a file holding `text`, and nothing else.
fn from_file(text: &str) -> Result<Config, ConfigError> {
    from_file_and_flags(text, &[])
}

/// Asserts that a file holding any one of `files`, alone, is refused.
fn refused_files(files: &[&str]) {
    for bad in files {
        assert!(from_file(bad).is_err(), "{bad} was accepted");
    }
}

/// The configuration from an empty file plus `flags`.
fn from_flags(flags: &[(&str, &str)]) -> Result<Config, ConfigError> {
    from_file_and_flags("", flags)
}

/// Why a file holding `text` (and nothing else) is refused, as the error says it.
fn file_refusal(text: &str) -> String {
    from_file(text).unwrap_err().to_string()
}

/// Why an empty file plus `flags` is refused, as the error says it.
fn flags_refusal(flags: &[(&str, &str)]) -> String {
    from_flags(flags).unwrap_err().to_string()
}

/// The configuration from a file holding `text` plus `flags`, and no variables.
fn from_file_and_flags(text: &str, flags: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let file = file_with(text);
    let mut o = Overrides::file(file.path());
    for (k, v) in flags {
        o = o.flag(k, *v);
    }
    o.resolve(&no_env)
}
