//! How a setting is declared: once, in the module that uses it, as a field of a section written with
//! `section!` — its type, default, help text, where it may come from and the default as the README
//! shows it. The section is a plain serde struct (what `keyway.toml`, `KEYWAY_*` and the flags give)
//! that its module validates into its own settings type; `config` layers the sources (figment),
//! derives the flags and the environment variables from these declarations and names the source of
//! every refused value. Plain values only: every layer may use this module.

use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// Where, besides `keyway.toml`, a setting may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// `KEYWAY_<KEY>` and a flag of `serve` and `doctor`.
    Serve,
    /// `KEYWAY_<KEY>` and a global flag, which every command takes.
    Global,
    /// `KEYWAY_<KEY>` only: a secret, never a flag (flags show up in `ps`).
    Env,
    /// The file only: a table.
    File,
}

/// One declared setting, as `section!` records it.
#[derive(Debug)]
pub struct Setting {
    /// The file key, snake_case; the variable is `KEYWAY_<KEY>`, the flag `--<key-with-dashes>`.
    pub key: &'static str,
    /// The doc comment of the field: the flag's help text.
    pub doc: &'static str,
    /// The default as the README's table shows it (`—`: none).
    pub default: &'static str,
    pub reach: Reach,
    /// The field's type as written (`List` flags may be repeated).
    pub ty: &'static str,
}

impl Setting {
    pub fn env(&self) -> Option<String> {
        (self.reach != Reach::File).then(|| format!("KEYWAY_{}", self.key.to_uppercase()))
    }

    pub fn flag(&self) -> Option<String> {
        matches!(self.reach, Reach::Serve | Reach::Global)
            .then(|| format!("--{}", self.key.replace('_', "-")))
    }

    /// The help text: the doc comment on one line, and the default.
    pub fn help(&self) -> String {
        let doc = self
            .doc
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let default = match self.default {
            "—" => String::new(),
            shown => format!(" [default: {}]", shown.replace('`', "")),
        };
        let env = self
            .env()
            .map(|e| format!(" [env: {e}]"))
            .unwrap_or_default();
        format!("{doc}{default}{env}")
    }
}

/// A section: the raw settings one module owns, read from all sources at once.
pub trait Section: serde::de::DeserializeOwned + Default + std::fmt::Debug {
    const SETTINGS: &'static [Setting];
}

/// A value its section refused: the setting's key (a path like `sso.okta.issuer` for a table's) and
/// what is wrong. `config` adds where the value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

pub type Checked<T> = Result<T, Invalid>;

/// Declares a section: the struct with its defaults, and each field's [`Setting`]. A field is
/// `name: Type = default; Reach, "default as the README shows it";` under its doc comment.
macro_rules! section {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty = $default:expr ; $reach:ident , $shown:literal ;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
        #[serde(default)]
        $vis struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        impl $crate::settings::Section for $name {
            const SETTINGS: &'static [$crate::settings::Setting] = &[
                $( $crate::settings::Setting {
                    key: stringify!($field),
                    doc: concat!($($doc, "\n",)* ""),
                    default: $shown,
                    reach: $crate::settings::Reach::$reach,
                    ty: stringify!($ty),
                }, )*
            ];
        }
    };
}
pub(crate) use section;

/// A duration: a number of seconds, or text like `90s`, `15m`, `12h`, `30d`, `500ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    /// The duration, refused when zero (only `database_statement_timeout` gives zero a meaning).
    pub fn positive(self, key: &str) -> Checked<Duration> {
        if self.0.is_zero() {
            return Err(Invalid::new(key, "must be longer than zero"));
        }
        Ok(self.0)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(Self::secs(s)),
            Raw::Text(t) => parse_duration(&t)
                .map(Self)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `90`, `90s`, `15m`, `12h`, `30d`, or `500ms` (the unit `invalidation_poll`'s default is
/// stated in, so the documented default can be written back).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 3600, 15m, 12h or 30d"))?;
    if unit == "ms" {
        return Ok(Duration::from_millis(n));
    }
    let secs = match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(|| format!("'{text}' is not a duration like 3600, 15m, 12h or 30d"))?;
    Ok(Duration::from_secs(secs))
}

/// A list: an array in the file, comma-separated text in a variable or a flag. Entries are trimmed;
/// blank ones, as a trailing comma leaves, are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List(pub Vec<String>);

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Items(Vec<String>),
            Text(String),
        }
        let items = match Raw::deserialize(d)? {
            Raw::Items(items) => items,
            Raw::Text(text) => text.split(',').map(str::to_owned).collect(),
        };
        Ok(Self(
            items
                .into_iter()
                .map(|i| i.trim().to_owned())
                .filter(|i| !i.is_empty())
                .collect(),
        ))
    }
}

/// A secret given directly or through a `*_FILE` setting naming a file that holds it; the file wins,
/// wherever each came from.
pub fn secret(
    value: Option<String>,
    file_key: &str,
    file: Option<&Path>,
) -> Checked<Option<String>> {
    match file {
        Some(path) => read_secret_file(file_key, path).map(Some),
        None => Ok(value),
    }
}

fn read_secret_file(key: &str, path: &Path) -> Checked<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Invalid::new(key, format!("cannot read {}: {e}", path.display())))?;
    // Files written with `echo` end in a newline that is not part of the secret.
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// `text` as a URL, if it is an http or https one.
pub fn http_url(text: &str) -> Option<url::Url> {
    url::Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
}

/// Refuses zero for a count.
pub fn at_least_one<N: PartialEq + From<u8>>(key: &str, n: N, or: &str) -> Checked<N> {
    if n == N::from(0) {
        return Err(Invalid::new(key, format!("must be at least 1{or}")));
    }
    Ok(n)
}

/// Addresses or CIDRs, canonical (an IPv4-mapped network is the IPv4 network it is, as the client
/// addresses it is compared with are).
pub fn networks(key: &str, list: &List) -> Checked<Vec<ipnet::IpNet>> {
    list.0
        .iter()
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(canonical_net)
                .map_err(|_| Invalid::new(key, format!("'{p}' is not an address or CIDR")))
        })
        .collect()
}

/// A configured network as the addresses it is compared with: `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
pub fn canonical_net(net: ipnet::IpNet) -> ipnet::IpNet {
    match net {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, ipnet::IpNet::V4),
            None => net,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(2_592_000)
        );
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
