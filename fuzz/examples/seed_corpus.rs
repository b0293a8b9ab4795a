//! Writes the committed seed corpus, `fuzz/corpus/<target>/`, from the fuzz fixture (README, "Fuzzing"):
//!
//!     cd fuzz && cargo run --example seed_corpus          # rewrite corpus/ (same bytes every time)
//!     cd fuzz && cargo run --example seed_corpus -- keys  # new keys.json; then run it again
//!
//! Without seeds, libFuzzer starts from nothing and a short run of `token_verify` spends its time in
//! the JWT parser's first rejections. The seeds are genuine tokens of every algorithm and kind that
//! the fixture's keys accept (checked here, so a seed that stopped reaching the signature and claim
//! checks fails the generator), and the request bodies the API's handlers read.

use arbitrary::{Arbitrary, Unstructured};
use keyway_fuzz::body::{ContentType, Input};
use keyway_fuzz::{FIXTURE, TOKEN_NAMES};
use secrecy::SecretString;
use std::fs;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::env::args().nth(1).as_deref() == Some("keys") {
        let json = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(new_keys());
        fs::write(root.join("keys.json"), json).expect("write keys.json");
        println!("wrote keys.json; run `cargo run --example seed_corpus` to reissue the corpus");
        return;
    }
    let corpus = root.join("corpus");
    write(&corpus.join("token_verify"), token_verify());
    write(&corpus.join("token_mutate"), token_mutate());
    write(&corpus.join("body_parse"), body_parse());
}

async fn new_keys() -> String {
    let dir = std::env::temp_dir().join(format!("keyway-fuzz-keys-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let url = SecretString::from(format!("sqlite://{}", dir.join("keys.db").display()));
    let store = keyway::store::connect(&url, &keyway::store::DatabaseSettings::default())
        .await
        .expect("key store");
    let json = keyway_fuzz::generate_keys_json(store.as_ref()).await;
    drop(store);
    let _ = fs::remove_dir_all(&dir);
    json
}

/// Replaces `dir`'s files with `seeds`, so a seed dropped here leaves no stale file behind.
fn write(dir: &Path, seeds: Vec<(String, Vec<u8>)>) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).expect("corpus dir");
    for (name, bytes) in &seeds {
        fs::write(dir.join(name), bytes).expect("write seed");
    }
    println!("{}: {} seeds", dir.display(), seeds.len());
}

/// Each genuine token as a bearer header carries it, checked to verify as what the fixture says.
fn token_verify() -> Vec<(String, Vec<u8>)> {
    let fixture = &*FIXTURE;
    assert_eq!(fixture.tokens.len(), TOKEN_NAMES.len());
    TOKEN_NAMES
        .iter()
        .zip(&fixture.tokens)
        .zip(&fixture.genuine)
        .map(|((name, token), genuine)| {
            let verified = fixture.keys.iter().find_map(|k| k.verify(token).ok());
            assert_eq!(verified.as_ref(), Some(genuine), "{name} does not verify");
            (name.to_string(), token.clone().into_bytes())
        })
        .collect()
}

/// `token_mutate` decodes its input with `arbitrary`: the first byte picks the genuine token, the
/// rest are edits. One seed per token with no edits, so each starts from a token that verifies.
fn token_mutate() -> Vec<(String, Vec<u8>)> {
    TOKEN_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_string(), vec![i as u8]))
        .collect()
}

/// `body_parse` decodes `Input { content_type, body }` with `arbitrary` 1.5: four little-endian bytes
/// choose the `ContentType` variant (a u32 scaled over the variant count), then the body, the last
/// field, takes the rest of the input as "another byte?" flags (odd: yes) each followed by a byte.
fn body_parse() -> Vec<(String, Vec<u8>)> {
    // ContentType's variants, in declaration order: Missing, Json, JsonWithCharset, ProblemJson,
    // Form, Raw(..).
    const VARIANTS: u64 = 6;
    let tag = |index: u64| (((index << 32) / VARIANTS) as u32 + 1).to_le_bytes();
    let json_bodies: [(&str, &str); 9] = [
        (
            "login",
            r#"{"identifier":"appsmith_user","password":"appsmith_password"}"#,
        ),
        (
            "login-device",
            r#"{"identifier":"alice@example.com","password":"correct horse battery","deviceId":"d-1"}"#,
        ),
        (
            "register",
            r#"{"username":"alice","email":"Alice@Example.com","password":"correct horse battery"}"#,
        ),
        (
            "change-password",
            r#"{"currentPassword":"correct horse battery","password":"another long one 42","passwordConfirmation":"another long one 42"}"#,
        ),
        (
            "reset-password",
            r#"{"code":"3f2c9a","password":"another long one 42","passwordConfirmation":"another long one 42"}"#,
        ),
        ("forgot-password", r#"{"email":"alice@example.com"}"#),
        (
            "refresh",
            r#"{"refreshToken":"DdqSSbzs68v_Zvo6F89Dy6oSeFKYKIlTcj0KbeatNAQ"}"#,
        ),
        ("logout-empty", "{}"),
        (
            "mismatch",
            r#"{"currentPassword":"x","password":"short","passwordConfirmation":"other","extra":[1,{"a":null}]}"#,
        ),
    ];
    let form_bodies: [(&str, &str); 3] = [
        (
            "login",
            "identifier=appsmith_user&password=appsmith_password",
        ),
        (
            "register",
            "username=alice&email=alice%40example.com&password=correct+horse+battery",
        ),
        (
            "reset-password",
            "code=3f2c9a&password=another+long+one+42&passwordConfirmation=another+long+one+42",
        ),
    ];
    let mut seeds = Vec::new();
    let mut seed = |name: String, variant: u64, expected: ContentType, body: &str| {
        let mut bytes = tag(variant).to_vec();
        for &b in body.as_bytes() {
            bytes.extend_from_slice(&[1, b]);
        }
        bytes.push(0);
        // Decoded the way libfuzzer-sys decodes a typed input, so a change to `Input` or to
        // arbitrary's encoding fails here rather than quietly turning the seeds into noise.
        let input = Input::arbitrary_take_rest(Unstructured::new(&bytes)).expect("decodes");
        assert_eq!(input.content_type, expected, "{name}");
        assert_eq!(input.body, body.as_bytes(), "{name}");
        seeds.push((name, bytes));
    };
    for (name, body) in json_bodies {
        seed(format!("json-{name}"), 1, ContentType::Json, body);
        seed(
            format!("json-charset-{name}"),
            2,
            ContentType::JsonWithCharset,
            body,
        );
        seed(
            format!("problem-json-{name}"),
            3,
            ContentType::ProblemJson,
            body,
        );
    }
    for (name, body) in form_bodies {
        seed(format!("form-{name}"), 4, ContentType::Form, body);
    }
    seed(
        "missing-content-type-login".to_owned(),
        0,
        ContentType::Missing,
        json_bodies[0].1,
    );
    seeds
}
