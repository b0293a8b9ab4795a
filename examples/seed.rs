//! Fills a Keyway database with confirmed users for the benchmarks (`bench/run.py`):
//! `seed DATABASE_URL FROM TO PASSWORD` creates `bench_user_FROM` … `bench_user_{TO-1}`, all with the
//! same password, hashed once with Keyway's default argon2id parameters (hashing a million passwords
//! would take hours and measure nothing the benchmarks look at). Existing names are skipped, so a
//! larger seed extends a smaller one.

use keyway::auth::password::{HashParams, Hasher};
use keyway::store::{NewUser, StoreError};
use secrecy::SecretString;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, from, to, password] = args.as_slice() else {
        eprintln!("usage: seed DATABASE_URL FROM TO PASSWORD");
        std::process::exit(2);
    };
    let (from, to): (u64, u64) = (from.parse().expect("FROM"), to.parse().expect("TO"));
    if from == 0 && url.starts_with("postgres") {
        fresh_postgres_database(url).await;
    }
    let settings = keyway::store::DatabaseSettings::default();
    let store = keyway::store::connect(&SecretString::from(url.clone()), &settings)
        .await
        .expect("the database opens");
    let hasher = Hasher::new(HashParams::default(), 1).await.expect("hasher");
    let hash = hasher
        .hash(SecretString::from(password.clone()))
        .await
        .expect("hash");
    let role = store
        .role_by_kind("authenticated")
        .await
        .expect("roles readable")
        .expect("the authenticated role exists")
        .id;
    let now = chrono::Utc::now().timestamp_millis();
    let created = Arc::new(AtomicU64::new(0));
    // A few writers at once: enough to keep the database busy, few enough for SQLite's one writer.
    let writers = 4;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let (store, hash, created) = (store.clone(), hash.clone(), created.clone());
        tasks.spawn(async move {
            let mut n = from + w;
            while n < to {
                let user = NewUser {
                    document_id: format!("bench{n:019}"),
                    username: format!("bench_user_{n}"),
                    email: format!("bench_user_{n}@example.com"),
                    provider: "local".into(),
                    password_hash: Some(hash.clone()),
                    confirmed: true,
                    blocked: false,
                    role_id: role,
                    created_at: now,
                };
                match store.create_user(user).await {
                    Ok(_) => {
                        created.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(StoreError::Conflict) => {}
                    Err(e) => panic!("creating bench_user_{n} failed: {e}"),
                }
                n += writers;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a writer finished");
    }
    println!("{}", created.load(Ordering::Relaxed));
}

/// Drops and creates the PostgreSQL database `url` names (through the server's `postgres`
/// database), so each benchmark run starts empty.
async fn fresh_postgres_database(url: &str) {
    use sqlx::Connection;
    let parsed = url::Url::parse(url).expect("a PostgreSQL URL");
    let name = parsed.path().trim_start_matches('/').to_owned();
    assert!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "the bench database name must be a plain identifier: {name}"
    );
    let mut admin_url = parsed.clone();
    admin_url.set_path("/postgres");
    let mut admin = sqlx::PgConnection::connect(admin_url.as_str())
        .await
        .expect("the PostgreSQL server answers");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .expect("the bench database is recreated");
    }
}
