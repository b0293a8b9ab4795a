//! The layers figment merges — the file, the environment, the flags — each a provider whose
//! metadata names where a value came from, and the one place a refused value is reported with its
//! setting and its source.

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use std::path::{Path, PathBuf};

use crate::auth::sso::settings::ProviderTable;
use crate::settings::{Checked, Invalid, Section};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// A refused value: the setting, where it came from (the file, a variable, a flag; none for a
    /// value missing everywhere) and why.
    #[error("{key}{}: {message}", from.as_ref().map(|f| format!(" (from {f})")).unwrap_or_default())]
    Setting {
        key: String,
        from: Option<String>,
        message: String,
    },
}

/// Where a layer's values come from.
#[derive(Clone)]
enum Origin {
    File(PathBuf),
    Environment,
    Flags,
}

/// One source of settings, as figment reads it.
pub struct Layer {
    origin: Origin,
    values: Dict,
}

impl Layer {
    /// `path`, or `./keyway.toml` when it exists. Keys no section declares are refused here, so a
    /// typo does not silently fall back to a default; a table's own keys are checked by its type.
    pub fn file(path: Option<&Path>) -> Result<Option<Self>, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_owned(), true),
            None => (PathBuf::from("keyway.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let values: Dict = toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if let Some(unknown) = values
            .keys()
            .find(|k| !super::settings().any(|s| s.key == k.as_str()))
        {
            return Err(ConfigError::File {
                path,
                message: format!("unknown setting `{unknown}`"),
            });
        }
        Ok(Some(Self {
            origin: Origin::File(path),
            values,
        }))
    }

    /// The `KEYWAY_<KEY>` variable of every declared setting that has one; other variables are not
    /// looked at.
    pub fn environment(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let values = super::settings()
            .filter_map(|s| Some((s.key.to_owned(), Value::from(env(&s.env()?)?))))
            .collect();
        Self {
            origin: Origin::Environment,
            values,
        }
    }

    /// `KEYWAY_SSO_<NAME>_<KEY>` of each provider, as the keys of its `[sso.<name>]` table.
    pub fn sso_environment(names: &[String], env: &dyn Fn(&str) -> Option<String>) -> Self {
        let mut tables = Dict::new();
        for name in names {
            let table: Dict = ProviderTable::KEYS
                .iter()
                .filter_map(|key| {
                    let value = env(&env_name(&["sso", name, key]))?;
                    Some((key.to_string(), Value::from(value)))
                })
                .collect();
            if !table.is_empty() {
                tables.insert(name.clone(), Value::from(table));
            }
        }
        let values = match tables.is_empty() {
            true => Dict::new(),
            false => Dict::from([("sso".to_owned(), Value::from(tables))]),
        };
        Self {
            origin: Origin::Environment,
            values,
        }
    }

    /// The flags given, by setting key.
    pub fn flags(flags: &[(String, String)]) -> Self {
        Self {
            origin: Origin::Flags,
            values: flags
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect(),
        }
    }
}

/// `KEYWAY_` and the key path in capitals, `_` between: `KEYWAY_SSO_OKTA_CLIENT_ID`.
fn env_name(path: &[&str]) -> String {
    format!("KEYWAY_{}", path.join("_").to_uppercase().replace('-', "_"))
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        match &self.origin {
            Origin::File(path) => Metadata::from(path.display().to_string(), path.as_path())
                .interpolater(|_: &Profile, keys: &[&str]| keys.join(".")),
            Origin::Environment => Metadata::named("environment")
                .interpolater(|_: &Profile, keys: &[&str]| env_name(keys)),
            Origin::Flags => {
                Metadata::named("command line").interpolater(|_: &Profile, keys: &[&str]| {
                    format!("--{}", keys.join(".").replace('_', "-"))
                })
            }
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

/// Section `S` read from the layers and validated by `validate`; a refusal names the setting and
/// where its value came from.
pub fn section<S: Section, T>(
    f: &Figment,
    validate: impl FnOnce(S) -> Checked<T>,
) -> Result<T, ConfigError> {
    // Lossy: variables and flags are text, read as the number or switch the setting is.
    let raw: S = f.extract_lossy().map_err(|e| {
        let key = e.path.join(".");
        let from = e.metadata.as_ref().map(|m| source(m, &e.path));
        ConfigError::Setting {
            key,
            from,
            message: e.kind.to_string(),
        }
    })?;
    validate(raw).map_err(|Invalid { key, message }| {
        // The value itself, else the file table it sits in (a route's limit, a provider's missing
        // key); a variable or flag names one value only.
        let from = std::iter::successors(Some(key.as_str()), |k| k.rsplit_once('.').map(|p| p.0))
            .find_map(|k| {
                let meta = f.find_metadata(k)?;
                let in_file = meta.source.as_ref().and_then(|s| s.file_path()).is_some();
                (k == key || in_file).then(|| source(meta, &k.split('.').collect::<Vec<_>>()))
            });
        ConfigError::Setting { key, from, message }
    })
}

/// The file, variable or flag a value at `path` came from.
fn source<K: AsRef<str>>(meta: &Metadata, path: &[K]) -> String {
    match meta.source.as_ref().and_then(|s| s.file_path()) {
        Some(file) => file.display().to_string(),
        None => meta.interpolate(&Profile::Default, path),
    }
}
