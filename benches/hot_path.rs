//! Micro-benchmarks of the token hot path (`cargo bench`): signing and verifying an access token with
//! each algorithm, and the whole `authenticate` check (verified-token, user and session caches warm),
//! which is what every secured request pays.

use criterion::{Criterion, criterion_group, criterion_main};
use keyway::auth::ClientInfo;
use keyway::auth::tokens::KeyAlgorithm;
use keyway::domain::{Email, Password, Username};
use keyway::{Config, ServerRole};
use secrecy::SecretString;
use std::hint::black_box;
use std::sync::Arc;

struct Fixture {
    auth: Arc<keyway::auth::Auth>,
    jwt: String,
    user_id: i64,
    sid: String,
    _dir: tempfile::TempDir,
}

fn fixture(rt: &tokio::runtime::Runtime, algorithm: KeyAlgorithm) -> Fixture {
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::defaults();
        config.database_url = SecretString::from(format!(
            "sqlite://{}",
            dir.path().join("bench.db").display()
        ));
        config.tokens.algorithm = algorithm;
        let auth = keyway::build_auth(&config, ServerRole::Server)
            .await
            .expect("auth builds");
        let issued = auth
            .accounts()
            .register(
                Username::parse("bench").expect("username"),
                Email::parse("bench@example.com").expect("email"),
                Password::parse("a long bench password").expect("password"),
                ClientInfo::default(),
            )
            .await
            .expect("registered");
        let jwt = issued.jwt.expect("a token");
        let who = auth.authenticate(&jwt).await.expect("token works");
        Fixture {
            user_id: who.user.id,
            sid: who.session_id.expect("a session"),
            auth,
            jwt,
            _dir: dir,
        }
    })
}

fn tokens(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for algorithm in [
        KeyAlgorithm::EdDsa,
        KeyAlgorithm::Es256,
        KeyAlgorithm::Rs256,
    ] {
        let f = fixture(&rt, algorithm);
        let keys = f.auth.keys();
        let now = f.auth.now_millis();
        let name = algorithm.name();
        c.bench_function(&format!("token/issue/{name}"), |b| {
            b.iter(|| {
                keys.issue(f.user_id, &f.sid, now, now + 3_600_000)
                    .expect("signed")
            })
        });
        c.bench_function(&format!("token/verify/{name}"), |b| {
            b.iter(|| keys.verify(black_box(&f.jwt)).expect("verified"))
        });
        if algorithm == KeyAlgorithm::EdDsa {
            // The whole per-request check, every cache warm: what `/api/users/me` costs beyond HTTP.
            c.bench_function("authenticate/warm", |b| {
                b.to_async(&rt)
                    .iter(|| async { f.auth.authenticate(black_box(&f.jwt)).await.expect("ok") })
            });
        }
    }
}

criterion_group!(benches, tokens);
criterion_main!(benches);
