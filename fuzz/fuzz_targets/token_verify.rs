//! `Keys::verify` on arbitrary input: whatever arrives in a bearer header must be refused cleanly —
//! no panic, no hang — and nothing random may pass for a token.
#![no_main]

use keyway_fuzz::FIXTURE;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: { std::sync::LazyLock::force(&FIXTURE); }, |data: &[u8]| {
    // Headers reach the verifier as (lossily decoded) text.
    let token = String::from_utf8_lossy(data);
    for keys in &FIXTURE.keys {
        if let Ok(verified) = keys.verify(&token) {
            assert!(
                FIXTURE.genuine.contains(&verified),
                "arbitrary input verified as {verified:?}: {token:?}"
            );
        }
    }
});
