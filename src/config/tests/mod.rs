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
    Overrides::file(file_with(text).path()).resolve(&no_env)
}

/// The configuration from an empty file plus `flags`.
fn from_flags(flags: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let empty = file_with("");
    let mut o = Overrides::file(empty.path());
    for (k, v) in flags {
        o = o.flag(k, *v);
    }
    o.resolve(&no_env)
}
