//! The single sign-on settings, declared once, with the presets of the well-known providers: which
//! providers, each one's `[sso.<name>]` table (or `KEYWAY_SSO_<NAME>_<KEY>` variables, which `config`
//! layers into the same table), the extra front-end callbacks and the linking rule. Validated into
//! [`SsoSettings`].

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Protocol, ProviderSettings, SsoSettings};
use crate::settings::{Checked, Invalid, List, http_url, secret, section};

section! {
    /// The single sign-on section.
    pub struct SsoSection {
        /// Single sign-on providers to enable, comma-separated (each configured by
        /// `KEYWAY_SSO_<NAME>_*` variables or a `[sso.<name>]` table in the file).
        sso_providers: List = List::default(); Serve, "none";
        /// One table per provider.
        sso: BTreeMap<String, ProviderTable> = BTreeMap::new(); File, "—";
        /// Front-end callback URLs a sign-in may ask to return to, besides each provider's own,
        /// comma-separated.
        sso_callback_allowlist: List = List::default(); Serve, "none";
        /// Link a provider identity to the existing account with the same email when the provider
        /// says the email is verified and that account's address was confirmed here with
        /// email_confirmation on (otherwise such a sign-in is refused).
        sso_link_verified_email: bool = false; Serve, "`false`";
    }
}

/// One provider's table; `KEYWAY_SSO_<NAME>_<KEY>` variables override each key.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderTable {
    /// `oidc` or `github`; by default `github` for the provider named github, else `oidc`.
    pub kind: Option<String>,
    pub issuer: Option<String>,
    /// Microsoft's preset: the directory (tenant) id.
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub display_name: Option<String>,
    pub scopes: Option<List>,
    pub callback: Option<String>,
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub api_url: Option<String>,
}

impl ProviderTable {
    /// The keys of a table, each also `KEYWAY_SSO_<NAME>_<KEY>`.
    pub const KEYS: &[&str] = &[
        "kind",
        "issuer",
        "tenant",
        "client_id",
        "client_secret",
        "client_secret_file",
        "display_name",
        "scopes",
        "callback",
        "auth_url",
        "token_url",
        "api_url",
    ];
}

impl SsoSection {
    /// The providers, in the order their buttons show: the tables, then those only named in
    /// `sso_providers`.
    pub fn provider_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.sso.keys().cloned().collect();
        for name in &self.sso_providers.0 {
            let name = name.to_lowercase();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// `names` from [`Self::provider_names`] before the variables were layered in (they add tables,
    /// not providers); `public_url` and `pages_path` make the default front-end callback.
    pub fn validate(
        mut self,
        names: Vec<String>,
        public_url: &str,
        pages_path: &str,
    ) -> Checked<SsoSettings> {
        let mut providers = Vec::with_capacity(names.len());
        for name in names {
            let table = self.sso.remove(&name).unwrap_or_default();
            providers.push(provider(name, table, public_url, pages_path)?);
        }
        let callback_allowlist = self
            .sso_callback_allowlist
            .0
            .iter()
            .map(|u| {
                http_url(u).ok_or_else(|| {
                    Invalid::new(
                        "sso_callback_allowlist",
                        format!("'{u}' is not an http(s) URL"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(SsoSettings {
            providers,
            callback_allowlist,
            link_verified_email: self.sso_link_verified_email,
            public_url: public_url.to_owned(),
        })
    }
}

/// One provider from its table, the preset of its name filling in the rest.
fn provider(
    name: String,
    t: ProviderTable,
    public_url: &str,
    pages_path: &str,
) -> Checked<ProviderSettings> {
    let valid_name = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid_name || name.len() > 32 {
        return Err(Invalid::new(
            "sso_providers",
            format!(
                "provider name '{name}' must be lower-case letters, digits, _ or - (at most 32)"
            ),
        ));
    }
    if name == "local" {
        return Err(Invalid::new(
            "sso_providers",
            "provider name 'local' is taken by password logins",
        ));
    }
    let key = |k: &str| format!("sso.{name}.{k}");
    let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let client_id =
        given(t.client_id).ok_or_else(|| Invalid::new(key("client_id"), "is required"))?;
    // The *_FILE setting wins over the secret itself, as for every secret.
    let client_secret = secret(
        given(t.client_secret),
        &key("client_secret_file"),
        t.client_secret_file.as_deref(),
    )?
    .map(Into::into);
    let kind =
        given(t.kind).unwrap_or_else(|| if name == "github" { "github" } else { "oidc" }.into());
    let url = |k: &str, v: Option<String>, default: &str| {
        let v = given(v).unwrap_or_else(|| default.to_owned());
        http_url(&v)
            .map(|_| v.trim_end_matches('/').to_owned())
            .ok_or_else(|| Invalid::new(key(k), format!("'{v}' is not an http(s) URL")))
    };
    let (protocol, preset_name, preset_scopes) = match kind.as_str() {
        "github" => (
            Protocol::GitHub {
                auth_url: url(
                    "auth_url",
                    t.auth_url,
                    "https://github.com/login/oauth/authorize",
                )?,
                token_url: url(
                    "token_url",
                    t.token_url,
                    "https://github.com/login/oauth/access_token",
                )?,
                api_url: url("api_url", t.api_url, "https://api.github.com")?,
            },
            "GitHub",
            "read:user user:email",
        ),
        "oidc" => {
            let tenant = given(t.tenant);
            let (preset_issuer, preset_name) = match name.as_str() {
                "google" => (Some("https://accounts.google.com".to_owned()), "Google"),
                "gitlab" => (Some("https://gitlab.com".to_owned()), "GitLab"),
                // Microsoft's multi-tenant endpoints have no single issuer an id_token could be
                // checked against, so the preset needs the directory's own.
                "microsoft" => (
                    tenant.map(|t| format!("https://login.microsoftonline.com/{t}/v2.0")),
                    "Microsoft",
                ),
                _ => (None, ""),
            };
            let issuer = given(t.issuer).or(preset_issuer).ok_or_else(|| {
                if name == "microsoft" {
                    Invalid::new(key("tenant"), "needs tenant (the directory id) or issuer")
                } else {
                    Invalid::new(key("issuer"), "is required for an OpenID Connect provider")
                }
            })?;
            let issuer = url("issuer", Some(issuer), "")?;
            (
                Protocol::Oidc { issuer },
                preset_name,
                "openid email profile",
            )
        }
        other => {
            return Err(Invalid::new(
                key("kind"),
                format!("'{other}' must be oidc or github"),
            ));
        }
    };
    let display_name = given(t.display_name)
        .or_else(|| (!preset_name.is_empty()).then(|| preset_name.to_owned()))
        .unwrap_or_else(|| name.clone());
    // A variable may separate scopes by spaces too, as OAuth's `scope` parameter does.
    let scopes = match t.scopes {
        Some(list) => list
            .0
            .iter()
            .flat_map(|s| s.split(' '))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        None => preset_scopes.split(' ').map(str::to_owned).collect(),
    };
    let default_callback = format!("{public_url}{pages_path}connect/{name}/redirect");
    let callback = given(t.callback).unwrap_or(default_callback);
    let callback = http_url(&callback).ok_or_else(|| {
        Invalid::new(
            key("callback"),
            format!("'{callback}' is not an http(s) URL"),
        )
    })?;
    Ok(ProviderSettings {
        name,
        display_name,
        protocol,
        client_id,
        client_secret,
        scopes,
        callback,
    })
}
