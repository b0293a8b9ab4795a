//! `Keys::verify` on genuine tokens (EdDSA, ES256, RS256, HS256, Strapi's) after mutations: byte
//! edits, segments swapped between tokens, and re-encoded headers and payloads (another `alg`, a
//! foreign `kid`, `jku`/`jwk`, changed claims). A mutated token may verify only as what one of the
//! genuine tokens already says: a mutation must never change who a token speaks for.
#![no_main]

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyway_fuzz::FIXTURE;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[derive(Arbitrary, Debug)]
enum Edit {
    Set {
        at: u16,
        byte: u8,
    },
    Insert {
        at: u16,
        byte: u8,
    },
    Remove {
        at: u16,
    },
    Truncate {
        at: u16,
    },
    /// Segment `segment` (0 header, 1 payload, 2 signature) taken from another genuine token.
    Swap {
        segment: u8,
        from: u8,
    },
    /// A header field set to a value (a string, or a number when it parses as one), re-encoded.
    Header {
        field: Field,
        value: String,
    },
    /// A payload claim set to a value, re-encoded.
    Claim {
        claim: Claim,
        value: String,
    },
    /// A header field or claim removed, re-encoded.
    Drop {
        header: bool,
        name: String,
    },
}

#[derive(Arbitrary, Debug)]
enum Field {
    Alg,
    Kid,
    Typ,
    Jku,
    Jwk,
    X5u,
    Crit,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Claim {
    Id,
    Sub,
    Sid,
    Type,
    Exp,
    Nbf,
    Iss,
    Aud,
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    token: u8,
    edits: Vec<Edit>,
}

fn value_of(raw: &str) -> Value {
    raw.parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Rewrites segment `index` (a base64url JSON object) with `change`, if it decodes.
fn rewrite(
    token: &str,
    index: usize,
    change: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let Some(part) = parts.get(index) else {
        return token.to_owned();
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(part) else {
        return token.to_owned();
    };
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(&bytes) else {
        return token.to_owned();
    };
    change(&mut object);
    parts[index] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Value::Object(object)).unwrap());
    parts.join(".")
}

fn apply(token: String, edit: Edit) -> String {
    let mut bytes = token.into_bytes();
    let at = |at: u16, len: usize| if len == 0 { 0 } else { at as usize % len };
    match edit {
        Edit::Set { at: i, byte } if !bytes.is_empty() => {
            let i = at(i, bytes.len());
            bytes[i] = byte;
        }
        Edit::Insert { at: i, byte } => {
            let i = at(i, bytes.len() + 1);
            bytes.insert(i, byte);
        }
        Edit::Remove { at: i } if !bytes.is_empty() => {
            let i = at(i, bytes.len());
            bytes.remove(i);
        }
        Edit::Truncate { at: i } => {
            let i = at(i, bytes.len() + 1);
            bytes.truncate(i);
        }
        Edit::Swap { segment, from } => {
            let token = String::from_utf8_lossy(&bytes).into_owned();
            let donor = &FIXTURE.tokens[from as usize % FIXTURE.tokens.len()];
            let index = segment as usize % 3;
            let mut parts: Vec<&str> = token.split('.').collect();
            if let (Some(slot), Some(piece)) = (parts.get_mut(index), donor.split('.').nth(index)) {
                *slot = piece;
            }
            return parts.join(".");
        }
        Edit::Header { field, value } => {
            let name = match field {
                Field::Alg => "alg".to_owned(),
                Field::Kid => "kid".to_owned(),
                Field::Typ => "typ".to_owned(),
                Field::Jku => "jku".to_owned(),
                Field::Jwk => "jwk".to_owned(),
                Field::X5u => "x5u".to_owned(),
                Field::Crit => "crit".to_owned(),
                Field::Other(n) => n,
            };
            let token = String::from_utf8_lossy(&bytes).into_owned();
            return rewrite(&token, 0, |h| {
                h.insert(name, value_of(&value));
            });
        }
        Edit::Claim { claim, value } => {
            let name = match claim {
                Claim::Id => "id".to_owned(),
                Claim::Sub => "sub".to_owned(),
                Claim::Sid => "sid".to_owned(),
                Claim::Type => "type".to_owned(),
                Claim::Exp => "exp".to_owned(),
                Claim::Nbf => "nbf".to_owned(),
                Claim::Iss => "iss".to_owned(),
                Claim::Aud => "aud".to_owned(),
                Claim::Other(n) => n,
            };
            let token = String::from_utf8_lossy(&bytes).into_owned();
            return rewrite(&token, 1, |c| {
                c.insert(name, value_of(&value));
            });
        }
        Edit::Drop { header, name } => {
            let token = String::from_utf8_lossy(&bytes).into_owned();
            return rewrite(&token, if header { 0 } else { 1 }, |o| {
                o.remove(&name);
            });
        }
        _ => {}
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fuzz_target!(init: { std::sync::LazyLock::force(&FIXTURE); }, |input: Input| {
    let fixture = &*FIXTURE;
    let mut token = fixture.tokens[input.token as usize % fixture.tokens.len()].clone();
    for edit in input.edits.into_iter().take(16) {
        token = apply(token, edit);
    }
    for keys in &fixture.keys {
        if let Ok(verified) = keys.verify(&token) {
            assert!(
                fixture.genuine.contains(&verified),
                "a mutated token verified as {verified:?}: {token}"
            );
        }
    }
});
