//! The store contract: what every [`Store`] must do, checked on every engine. Each test runs the same
//! assertions on a fresh SQLite store and then on a fresh PostgreSQL store (a database of its own),
//! whatever `KEYWAY_TEST_BACKEND` says, so the two implementations cannot drift apart unnoticed.
//! PostgreSQL must be reachable (see `testdb.rs`); these tests fail rather than skip without it.

use keyway::store::{
    AuditEvent, Code, CodePurpose, DatabaseSettings, HashUpgrade, Identity, ImportedUser,
    Invalidation, NewCode, NewRole, NewUser, PgStore, Revoke, RoleRemoval, Rotation, Session,
    SqliteStore, SsoStage, SsoState, Store, StoreError, StoredKey, StrapiState, ThrottleAttempt,
    ThrottleKeys, ThrottleRule, ThrottleSuccess, ThrottleVerdict, User, UserStore,
};
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use tempfile::TempDir;

use crate::testdb::PgDatabase;

/// How many tasks race in the concurrency tests: more than one, fewer than the pools' connections.
const RACERS: usize = 8;

/// What keeps a fresh store's database alive; dropped after the store.
enum Backing {
    Sqlite(#[allow(dead_code)] TempDir),
    Postgres(#[allow(dead_code)] PgDatabase),
}

async fn fresh_sqlite() -> (Arc<dyn Store>, Backing) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("contract.db").display());
    let (store, _) = SqliteStore::open(&url, &DatabaseSettings::default())
        .await
        .expect("SQLite store opens");
    (Arc::new(store), Backing::Sqlite(dir))
}

async fn fresh_postgres() -> (Arc<dyn Store>, Backing) {
    let db = PgDatabase::create().await;
    let (store, _) = PgStore::open(db.url_str(), &DatabaseSettings::default())
        .await
        .expect("PostgreSQL store opens");
    (Arc::new(store), Backing::Postgres(db))
}

/// Runs `check` on a fresh SQLite store, then on a fresh PostgreSQL store. The engine's name goes to
/// the test's output first, so a failure says which engine broke the contract.
async fn on_each_engine<F, Fut>(check: F)
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    for engine in ["sqlite", "postgres"] {
        let (store, backing) = match engine {
            "sqlite" => fresh_sqlite().await,
            _ => fresh_postgres().await,
        };
        eprintln!("── store contract on {engine}");
        check(store.clone()).await;
        drop(store);
        drop(backing);
    }
}

const NOW: i64 = 1_800_000_000_000;

fn new_user(name: &str) -> NewUser {
    NewUser {
        document_id: format!("doc-{name}"),
        username: name.to_owned(),
        email: format!("{name}@example.com"),
        provider: "local".into(),
        password_hash: Some(format!("hash-of-{name}")),
        confirmed: true,
        blocked: false,
        role_id: 1,
        created_at: NOW,
    }
}

async fn user(store: &Arc<dyn Store>, name: &str) -> User {
    store
        .create_user(new_user(name))
        .await
        .expect("user created")
}

fn session(id: &str, user_id: i64, device: &str, at: i64) -> Session {
    Session {
        id: id.to_owned(),
        user_id,
        device_id: device.to_owned(),
        device_name: Some(format!("{device} browser")),
        created_at: at,
        last_active_at: at,
        idle_expires_at: at + 1_000,
        expires_at: at + 10_000,
        revoked_at: None,
        revoked_reason: None,
        user_agent: Some("test-agent/1.0".into()),
        ip: Some("203.0.113.9".into()),
    }
}

fn rotation<'a>(
    old_hash: &'a str,
    nonce: &'a [u8],
    new_hash: &'a str,
    now: i64,
    idle_expires_at: i64,
) -> Rotation<'a> {
    Rotation {
        old_hash,
        nonce,
        new_hash,
        now,
        idle_expires_at,
    }
}

fn new_code(
    hash: &str,
    user_id: i64,
    purpose: CodePurpose,
    created_at: i64,
    expires_at: i64,
) -> NewCode<'_> {
    NewCode {
        code: Code::new(hash, purpose),
        user_id,
        created_at,
        expires_at,
    }
}

fn attempt(keys: ThrottleKeys<'_>, now: i64, rule: ThrottleRule) -> ThrottleAttempt<'_> {
    ThrottleAttempt { keys, now, rule }
}

fn success<'a>(
    keys: ThrottleKeys<'a>,
    bucket: &'a str,
    at: i64,
    trusted_until: i64,
) -> ThrottleSuccess<'a> {
    ThrottleSuccess {
        keys,
        bucket,
        at,
        trusted_until,
    }
}

fn upgrade<'a>(user_id: i64, old: &'a str, new: &'a str, at: i64) -> HashUpgrade<'a> {
    HashUpgrade {
        user_id,
        old,
        new,
        at,
    }
}

async fn changes_since(store: &Arc<dyn Store>, seq: i64) -> Vec<Invalidation> {
    store
        .invalidations_since(seq)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect()
}

fn is_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict))
}

#[tokio::test]
async fn roles_are_seeded_and_found_by_type_or_name() {
    on_each_engine(|store| async move {
        store.ping().await.unwrap();
        let authenticated = store.role_by_kind("authenticated").await.unwrap().unwrap();
        assert_eq!(authenticated.name, "Authenticated");
        assert_eq!(authenticated.kind, "authenticated");
        assert_eq!(
            authenticated.description,
            "Default role given to authenticated user."
        );
        let public = store.role_by_kind("public").await.unwrap().unwrap();
        assert_eq!(public.name, "Public");
        assert_ne!(public.id, authenticated.id);
        assert_eq!(store.role_by_kind("Authenticated").await.unwrap(), None);
        assert_eq!(store.role_by_kind("admin").await.unwrap(), None);

        for asked in ["public", "Public", "PUBLIC"] {
            let found = store.role_by_name_or_kind(asked).await.unwrap();
            assert_eq!(found.as_ref(), Some(&public), "{asked}");
        }
        assert_eq!(
            store.role_by_name_or_kind("authenticated").await.unwrap(),
            Some(authenticated)
        );
        assert_eq!(store.role_by_name_or_kind("nobody").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn users_are_created_and_found() {
    on_each_engine(|store| async move {
        let mut new = new_user("alice");
        new.confirmed = false;
        new.blocked = true;
        new.created_at = NOW + 5;
        let alice = store.create_user(new).await.unwrap();
        assert_eq!(alice.document_id, "doc-alice");
        assert_eq!(alice.username, "alice");
        assert_eq!(alice.email, "alice@example.com");
        assert_eq!(alice.provider, "local");
        assert!(!alice.confirmed);
        assert!(alice.blocked);
        assert_eq!(alice.role.kind, "authenticated");
        assert_eq!((alice.created_at, alice.updated_at), (NOW + 5, NOW + 5));

        let bob = user(&store, "bob").await;
        assert!(bob.id > alice.id);
        assert!(bob.confirmed && !bob.blocked);

        assert_eq!(
            store.user_by_id(alice.id).await.unwrap(),
            Some(alice.clone())
        );
        assert_eq!(store.user_by_id(9_999).await.unwrap(), None);
        assert_eq!(
            store.user_by_username("alice").await.unwrap(),
            Some(alice.clone())
        );
        assert_eq!(
            store.user_by_username("Alice").await.unwrap(),
            None,
            "usernames match exactly"
        );
        assert_eq!(
            store.user_by_email("bob@example.com").await.unwrap(),
            Some(bob.clone())
        );
        assert_eq!(
            store.user_by_email("carol@example.com").await.unwrap(),
            None
        );
        assert_eq!(store.list_users().await.unwrap(), [alice, bob]);
    })
    .await;
}

#[tokio::test]
async fn taken_usernames_emails_and_document_ids_conflict() {
    on_each_engine(|store| async move {
        user(&store, "alice").await;
        let mut same_username = new_user("alice");
        same_username.email = "other@example.com".into();
        same_username.document_id = "doc-other".into();
        assert!(is_conflict(store.create_user(same_username).await));

        let mut same_email = new_user("alice2");
        same_email.email = "alice@example.com".into();
        assert!(is_conflict(store.create_user(same_email).await));

        let mut same_document = new_user("alice3");
        same_document.document_id = "doc-alice".into();
        assert!(is_conflict(store.create_user(same_document).await));
        assert_eq!(store.list_users().await.unwrap().len(), 1);

        // Across both columns, as Strapi checks.
        let taken = |u: &'static str, e: &'static str| {
            let store = store.clone();
            async move { store.identity_taken(u, e).await.unwrap() }
        };
        assert!(taken("alice", "new@example.com").await, "username");
        assert!(taken("bob", "alice@example.com").await, "email");
        assert!(
            taken("alice@example.com", "new@example.com").await,
            "a username that is someone's email"
        );
        assert!(
            taken("ALICE@EXAMPLE.COM", "new@example.com").await,
            "a username that is someone's email, lower-cased"
        );
        assert!(
            taken("bob", "alice").await,
            "an email that is someone's username"
        );
        assert!(!taken("bob", "bob@example.com").await);
        assert!(
            !taken("Alice", "new@example.com").await,
            "usernames are exact"
        );

        // Case folding is ASCII-only on both engines (SQLite's lower()): a non-ASCII capital is not
        // folded. Changing that is a change to both stores, which is why it is pinned here.
        let mut accented = new_user("emile");
        accented.email = "émile@example.com".into();
        store.create_user(accented).await.unwrap();
        assert!(taken("émile@EXAMPLE.com", "new@example.com").await);
        assert!(!taken("ÉMILE@example.com", "new@example.com").await);
    })
    .await;
}

#[tokio::test]
async fn local_credentials_match_email_or_username_lowest_id_first() {
    on_each_engine(|store| async move {
        let dave = user(&store, "dave").await;
        // Someone whose *username* is dave's email: an identifier matching both picks the older one.
        let mut impostor = new_user("dave@example.com");
        impostor.email = "impostor@example.com".into();
        impostor.document_id = "doc-impostor".into();
        let impostor = store.create_user(impostor).await.unwrap();
        let mut sso = new_user("sso");
        sso.provider = "github".into();
        sso.password_hash = None;
        store.create_user(sso).await.unwrap();

        let found = store
            .local_credentials("dave@example.com", "dave@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.user, dave);
        assert_eq!(found.password_hash.as_deref(), Some("hash-of-dave"));
        let by_username = store
            .local_credentials("x", "dave@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_username.user, impostor);
        let by_email = store
            .local_credentials("dave@example.com", "nobody")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_email.user.id, dave.id);
        assert!(
            store
                .local_credentials("sso@example.com", "sso")
                .await
                .unwrap()
                .is_none(),
            "other providers have no local credentials"
        );
        assert!(
            store
                .local_credentials("nobody@example.com", "nobody")
                .await
                .unwrap()
                .is_none()
        );
    })
    .await;
}

#[tokio::test]
async fn setters_change_users_and_record_what_others_must_forget() {
    on_each_engine(|store| async move {
        let mut new = new_user("erin");
        new.confirmed = false;
        let erin = store.create_user(new).await.unwrap();

        let seq = store.last_invalidation().await.unwrap();
        store.set_confirmed(erin.id, NOW + 1).await.unwrap();
        let now = store.user_by_id(erin.id).await.unwrap().unwrap();
        assert!(now.confirmed);
        assert_eq!(now.updated_at, NOW + 1);
        assert_eq!(
            changes_since(&store, seq).await,
            [Invalidation::User(erin.id)]
        );

        let seq = store.last_invalidation().await.unwrap();
        store
            .set_password_hash(erin.id, "new-hash", NOW + 2)
            .await
            .unwrap();
        let creds = store
            .local_credentials("erin@example.com", "erin")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(creds.password_hash.as_deref(), Some("new-hash"));
        assert_eq!(creds.user.updated_at, NOW + 2);
        assert_eq!(
            changes_since(&store, seq).await,
            [Invalidation::User(erin.id)],
            "the account's copies must learn the time of the change (sessions are ended by the \
             caller)"
        );

        let seq = store.last_invalidation().await.unwrap();
        assert!(store.set_blocked(erin.id, true, NOW + 3).await.unwrap());
        let blocked = store.user_by_id(erin.id).await.unwrap().unwrap();
        assert!(blocked.blocked);
        assert_eq!(blocked.updated_at, NOW + 3);
        assert_eq!(
            changes_since(&store, seq).await,
            [Invalidation::User(erin.id)]
        );
        assert!(store.set_blocked(erin.id, false, NOW + 4).await.unwrap());
        assert!(!store.user_by_id(erin.id).await.unwrap().unwrap().blocked);
        assert!(!store.set_blocked(9_999, true, NOW).await.unwrap());

        assert!(store.delete_user(erin.id).await.unwrap());
        assert_eq!(store.user_by_id(erin.id).await.unwrap(), None);
        assert!(!store.delete_user(erin.id).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn roles_are_created_with_a_name_and_a_type_of_their_own() {
    on_each_engine(|store| async move {
        let new = NewRole {
            name: "Editor".into(),
            description: "Edits the shop".into(),
            kind: "editor".into(),
        };
        let editor = store.create_role(&new).await.unwrap();
        assert_eq!(
            (editor.name.as_str(), editor.description.as_str()),
            ("Editor", "Edits the shop")
        );
        assert_eq!(editor.kind, "editor");
        assert_eq!(store.role_by_kind("editor").await.unwrap(), Some(editor));
        let same_type = NewRole {
            name: "Editors".into(),
            ..new.clone()
        };
        assert!(is_conflict(store.create_role(&same_type).await));
        let same_name = NewRole {
            kind: "editor2".into(),
            ..new
        };
        assert!(is_conflict(store.create_role(&same_name).await));
        assert!(is_conflict(
            store
                .create_role(&NewRole {
                    name: "Public".into(),
                    description: String::new(),
                    kind: "visitors".into(),
                })
                .await
        ));
    })
    .await;
}

/// Role administration (`keyway role …`, `user update --role`): listed with their use, renamed under a
/// unique name, removed only when no account has them, and every change an account's cached copy
/// depends on is in the invalidation log.
#[tokio::test]
async fn roles_are_listed_renamed_assigned_and_removed_only_when_unused() {
    on_each_engine(|store| async move {
        let editor = store
            .create_role(&NewRole {
                name: "Editor".into(),
                description: String::new(),
                kind: "editor".into(),
            })
            .await
            .unwrap();
        let alice = store.create_user(new_user("alice")).await.unwrap();
        let listed = store.list_roles().await.unwrap();
        let uses: Vec<(&str, i64)> = listed.iter().map(|(r, n)| (r.kind.as_str(), *n)).collect();
        assert_eq!(uses, [("authenticated", 1), ("public", 0), ("editor", 0)]);

        let seq = store
            .invalidations_since(0)
            .await
            .unwrap()
            .last()
            .map_or(0, |(s, _)| *s);
        assert!(
            store
                .set_user_role(alice.id, editor.id, NOW + 1)
                .await
                .unwrap()
        );
        assert!(
            !store
                .set_user_role(9_999, editor.id, NOW + 1)
                .await
                .unwrap()
        );
        assert_eq!(
            store.user_by_id(alice.id).await.unwrap().unwrap().role.kind,
            "editor"
        );
        assert_eq!(
            changes_since(&store, seq).await,
            [Invalidation::User(alice.id)]
        );

        // In use: it stays.
        assert_eq!(
            store.delete_role(editor.id).await.unwrap(),
            RoleRemoval::InUse(1)
        );
        let seq = store
            .invalidations_since(0)
            .await
            .unwrap()
            .last()
            .map_or(0, |(s, _)| *s);
        assert!(
            store
                .rename_role(editor.id, "Editors", NOW + 2)
                .await
                .unwrap()
        );
        assert!(is_conflict(
            store.rename_role(editor.id, "Public", NOW + 2).await
        ));
        assert!(!store.rename_role(9_999, "Nobody", NOW + 2).await.unwrap());
        assert_eq!(
            store.user_by_id(alice.id).await.unwrap().unwrap().role.name,
            "Editors"
        );
        // Her cached copy names the role: the rename is in the log for her.
        assert_eq!(
            changes_since(&store, seq).await,
            [Invalidation::User(alice.id)]
        );

        let authenticated = store.role_by_kind("authenticated").await.unwrap().unwrap();
        assert!(
            store
                .set_user_role(alice.id, authenticated.id, NOW + 3)
                .await
                .unwrap()
        );
        assert_eq!(
            store.delete_role(editor.id).await.unwrap(),
            RoleRemoval::Removed
        );
        assert_eq!(
            store.delete_role(editor.id).await.unwrap(),
            RoleRemoval::NotFound
        );
        assert_eq!(store.role_by_kind("editor").await.unwrap(), None);
    })
    .await;
}

fn imported(strapi_id: i64, name: &str) -> ImportedUser {
    ImportedUser {
        strapi_id,
        account: NewUser {
            password_hash: Some(format!("$2a$10$hash-of-{name}")),
            created_at: NOW - 2_000,
            ..new_user(name)
        },
        updated_at: NOW - 1_000,
        strapi: StrapiState {
            password_digest: Some(format!("digest-of-{name}")),
            confirmed: true,
            blocked: false,
        },
    }
}

#[tokio::test]
async fn imported_users_keep_their_strapi_id_timestamps_and_hash() {
    on_each_engine(|store| async move {
        let mut ivy = imported(42, "ivy");
        ivy.account.confirmed = false;
        ivy.account.blocked = true;
        ivy.account.provider = "github".into();
        store.insert_imported_user(&ivy).await.unwrap();
        let stored = store.user_by_id(42).await.unwrap().expect("kept its id");
        assert_eq!(stored.username, "ivy");
        assert_eq!(stored.email, "ivy@example.com");
        assert_eq!(stored.document_id, "doc-ivy");
        assert_eq!(stored.provider, "github");
        assert!(!stored.confirmed && stored.blocked);
        assert_eq!(stored.role.kind, "authenticated");
        assert_eq!(
            (stored.created_at, stored.updated_at),
            (NOW - 2_000, NOW - 1_000)
        );
        let jack = imported(7, "jack");
        store.insert_imported_user(&jack).await.unwrap();
        let creds = store
            .local_credentials("jack@example.com", "jack")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(creds.user.id, 7);
        assert_eq!(creds.password_hash.as_deref(), Some("$2a$10$hash-of-jack"));

        // Ids handed out afterwards come after the highest imported one, and importing a lower id
        // later never moves them back.
        let next = user(&store, "kate").await;
        assert!(next.id > 42, "new id {} after imported 42", next.id);
        store
            .insert_imported_user(&imported(3, "liam"))
            .await
            .unwrap();
        let after = user(&store, "mia").await;
        assert!(after.id > next.id, "{} after {}", after.id, next.id);

        // Everything unique stays unique.
        let mut same_id = imported(42, "other");
        assert!(is_conflict(store.insert_imported_user(&same_id).await));
        same_id.strapi_id = next.id;
        assert!(
            is_conflict(store.insert_imported_user(&same_id).await),
            "the id of an account made in Keyway"
        );
        let mut same_username = imported(100, "ivy");
        same_username.account.email = "ivy2@example.com".into();
        same_username.account.document_id = "doc-ivy2".into();
        assert!(is_conflict(
            store.insert_imported_user(&same_username).await
        ));
        let mut same_email = imported(101, "ivy3");
        same_email.account.email = "ivy@example.com".into();
        assert!(is_conflict(store.insert_imported_user(&same_email).await));
        let mut same_document = imported(102, "ivy4");
        same_document.account.document_id = "doc-ivy".into();
        assert!(is_conflict(
            store.insert_imported_user(&same_document).await
        ));
        assert_eq!(store.list_users().await.unwrap().len(), 5);
    })
    .await;
}

#[tokio::test]
async fn imported_users_are_found_by_strapi_id_or_document_never_native_ones() {
    on_each_engine(|store| async move {
        let native = user(&store, "nora").await;
        store
            .insert_imported_user(&imported(50, "otto"))
            .await
            .unwrap();
        let found = |strapi_id: i64, document: Option<&'static str>| {
            let store = store.clone();
            async move {
                store
                    .imported_user(strapi_id, document)
                    .await
                    .unwrap()
                    .map(|c| (c.user.id, c.password_hash))
            }
        };
        assert_eq!(
            found(50, None).await,
            Some((50, Some("$2a$10$hash-of-otto".into())))
        );
        let otto = store.imported_user(50, None).await.unwrap().unwrap();
        assert_eq!(otto.strapi_id, 50);
        assert_eq!(otto.strapi, imported(50, "otto").strapi, "what Strapi had");
        // Strapi 5 re-created the row under a new id: the document still finds the account.
        assert_eq!(found(51, Some("doc-otto")).await.map(|f| f.0), Some(50));
        assert_eq!(found(51, None).await, None);
        assert_eq!(found(51, Some("doc-nobody")).await, None);
        assert_eq!(
            found(native.id, Some("doc-nora")).await,
            None,
            "an account made in Keyway is never taken for an imported one"
        );
        // The Strapi id wins over a document id that names another imported account.
        store
            .insert_imported_user(&imported(60, "pia"))
            .await
            .unwrap();
        assert_eq!(found(60, Some("doc-otto")).await.map(|f| f.0), Some(60));

        // Deleting the account forgets that it was imported: a later import may bring it back.
        assert!(store.delete_user(50).await.unwrap());
        assert_eq!(found(50, Some("doc-otto")).await, None);
        store
            .insert_imported_user(&imported(50, "otto"))
            .await
            .unwrap();
        assert_eq!(found(50, None).await.map(|f| f.0), Some(50));
    })
    .await;
}

#[tokio::test]
async fn updating_an_imported_user_changes_its_data_and_records_it() {
    on_each_engine(|store| async move {
        store
            .insert_imported_user(&imported(70, "quinn"))
            .await
            .unwrap();
        user(&store, "rita").await;
        let editor = store
            .create_role(&NewRole {
                name: "Editor".into(),
                description: String::new(),
                kind: "editor".into(),
            })
            .await
            .unwrap();
        let seq = store.last_invalidation().await.unwrap();
        let mut changed = imported(70, "quinn2");
        changed.account.document_id = "doc-ignored".into();
        changed.account.password_hash = Some("$2a$10$new".into());
        changed.account.blocked = true;
        changed.account.confirmed = false;
        changed.account.provider = "google".into();
        changed.account.role_id = editor.id;
        changed.account.created_at = 1;
        changed.updated_at = NOW;
        // Strapi 5 re-created the row under another id; Strapi's password and flags changed.
        changed.strapi_id = 71;
        changed.strapi = StrapiState {
            password_digest: None,
            confirmed: false,
            blocked: true,
        };
        assert!(
            store
                .update_imported_user(70, &changed, NOW + 5)
                .await
                .unwrap()
        );
        let now = store.user_by_id(70).await.unwrap().unwrap();
        assert_eq!(
            (
                now.username.as_str(),
                now.email.as_str(),
                now.provider.as_str()
            ),
            ("quinn2", "quinn2@example.com", "google")
        );
        assert!(now.blocked && !now.confirmed);
        assert_eq!(now.role, editor);
        assert_eq!(now.updated_at, NOW);
        assert_eq!(
            (now.document_id.as_str(), now.created_at),
            ("doc-quinn", NOW - 2_000),
            "the document id and creation time stay"
        );
        assert!(store.imported_user(70, None).await.unwrap().is_none());
        let quinn = store.imported_user(71, None).await.unwrap().unwrap();
        assert_eq!(quinn.user.id, 70, "the account keeps its id");
        assert_eq!(quinn.strapi_id, 71);
        assert_eq!(quinn.strapi, changed.strapi);
        assert_eq!(quinn.password_hash.as_deref(), Some("$2a$10$new"));
        assert_eq!(changes_since(&store, seq).await, [Invalidation::User(70)]);

        let mut taken = imported(70, "rita");
        taken.account.email = "fresh@example.com".into();
        assert!(is_conflict(
            store.update_imported_user(70, &taken, NOW).await
        ));
        assert!(
            !store
                .update_imported_user(9_999, &changed, NOW)
                .await
                .unwrap()
        );
    })
    .await;
}

#[tokio::test]
async fn deleting_a_user_cascades_and_records_each_session() {
    on_each_engine(|store| async move {
        let frank = user(&store, "frank").await;
        let grace = user(&store, "grace").await;
        store
            .create_session(&session("f1", frank.id, "d1", NOW), Some("f1-r0"))
            .await
            .unwrap();
        store
            .create_session(&session("f2", frank.id, "d2", NOW), Some("f2-r0"))
            .await
            .unwrap();
        store
            .create_session(&session("g1", grace.id, "d1", NOW), Some("g1-r0"))
            .await
            .unwrap();
        store
            .create_code(&new_code(
                "f-code",
                frank.id,
                CodePurpose::ResetPassword,
                NOW,
                NOW + 60_000,
            ))
            .await
            .unwrap();

        let seq = store.last_invalidation().await.unwrap();
        assert!(store.delete_user(frank.id).await.unwrap());
        for gone in ["f1", "f2"] {
            assert_eq!(store.session(gone).await.unwrap(), None);
        }
        assert_eq!(store.refresh_token("f1-r0").await.unwrap(), None);
        assert_eq!(
            store
                .code_owner(Code::new("f-code", CodePurpose::ResetPassword), NOW)
                .await
                .unwrap(),
            None
        );
        assert!(store.sessions_of_user(frank.id).await.unwrap().is_empty());
        assert!(store.session("g1").await.unwrap().is_some(), "others stay");
        assert!(store.refresh_token("g1-r0").await.unwrap().is_some());

        let changes = changes_since(&store, seq).await;
        assert_eq!(changes.len(), 3, "{changes:?}");
        let mut sessions = changes[..2].to_vec();
        sessions.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(
            sessions,
            [
                Invalidation::Session("f1".into()),
                Invalidation::Session("f2".into())
            ]
        );
        assert_eq!(changes[2], Invalidation::User(frank.id));
    })
    .await;
}

#[tokio::test]
async fn sessions_and_refresh_tokens_round_trip() {
    on_each_engine(|store| async move {
        let hana = user(&store, "hana").await;
        let first = session("s-first", hana.id, "laptop", NOW);
        let mut second = session("s-second", hana.id, "phone", NOW + 50);
        second.device_name = None;
        second.user_agent = None;
        second.ip = None;
        store.create_session(&first, Some("r-first")).await.unwrap();
        store.create_session(&second, None).await.unwrap();

        assert_eq!(store.session("s-first").await.unwrap(), Some(first.clone()));
        assert_eq!(
            store.session("s-second").await.unwrap(),
            Some(second.clone())
        );
        assert_eq!(store.session("s-none").await.unwrap(), None);
        assert_eq!(
            store.sessions_of_user(hana.id).await.unwrap(),
            [second.clone(), first.clone()],
            "most recently active first"
        );
        assert!(
            is_conflict(store.create_session(&first, None).await),
            "session ids are unique"
        );
        assert!(
            store
                .create_session(&session("s-ghost", 9_999, "x", NOW), None)
                .await
                .is_err(),
            "a session needs its user"
        );

        let record = store.refresh_token("r-first").await.unwrap().unwrap();
        assert_eq!(record.hash, "r-first");
        assert_eq!(record.session_id, "s-first");
        assert_eq!(record.created_at, NOW);
        assert_eq!((record.used_at, record.nonce.clone()), (None, None));
        assert_eq!(store.refresh_token("r-none").await.unwrap(), None);

        // The same, with its session, in one read.
        let (joined, session) = store
            .refresh_token_and_session("r-first")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(joined, record);
        assert_eq!(Some(session), store.session("s-first").await.unwrap());
        assert_eq!(
            store.refresh_token_and_session("r-none").await.unwrap(),
            None
        );
    })
    .await;
}

#[tokio::test]
async fn revocations_end_exactly_the_open_sessions_named() {
    on_each_engine(|store| async move {
        let ivan = user(&store, "ivan").await;
        let judy = user(&store, "judy").await;
        for (id, owner, device) in [
            ("i1", ivan.id, "d1"),
            ("i2", ivan.id, "d1"),
            ("i3", ivan.id, "d2"),
            ("i4", ivan.id, "d3"),
            ("j1", judy.id, "d1"),
        ] {
            store
                .create_session(&session(id, owner, device, NOW), None)
                .await
                .unwrap();
        }
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let at = NOW + 100;
        let seq = store.last_invalidation().await.unwrap();

        let ended = store
            .revoke_sessions(Revoke::Session("i1".into()), "logout", at)
            .await
            .unwrap();
        assert_eq!(ended, ["i1"]);
        let again = store
            .revoke_sessions(Revoke::Session("i1".into()), "logout", at + 1)
            .await
            .unwrap();
        assert!(again.is_empty(), "an ended session is not ended twice");
        let i1 = store.session("i1").await.unwrap().unwrap();
        assert_eq!(i1.revoked_at, Some(at), "the first revocation stands");
        assert_eq!(i1.revoked_reason.as_deref(), Some("logout"));

        let ended = store
            .revoke_sessions(
                Revoke::Device {
                    user_id: ivan.id,
                    device_id: "d1".into(),
                },
                "device_logout",
                at,
            )
            .await
            .unwrap();
        assert_eq!(ended, ["i2"], "i1 was already ended; judy's d1 is hers");

        let ended = store
            .revoke_sessions(
                Revoke::AllOfUserExcept {
                    user_id: ivan.id,
                    keep: "i3".into(),
                },
                "others",
                at,
            )
            .await
            .unwrap();
        assert_eq!(ended, ["i4"]);

        let ended = store
            .revoke_sessions(Revoke::AllOfUser(ivan.id), "all", at)
            .await
            .unwrap();
        assert_eq!(ended, ["i3"]);
        assert_eq!(
            store
                .revoke_sessions(Revoke::Session("nope".into()), "x", at)
                .await
                .unwrap(),
            Vec::<String>::new()
        );

        let j1 = store.session("j1").await.unwrap().unwrap();
        assert_eq!((j1.revoked_at, j1.revoked_reason), (None, None));
        assert!(store.session("i4").await.unwrap().unwrap().revoked_at == Some(at));

        assert_eq!(
            changes_since(&store, seq).await,
            ["i1", "i2", "i4", "i3"].map(|s| Invalidation::Session(s.into())),
            "one invalidation per ended session, in order"
        );

        // Many at once, all reported and recorded.
        for n in 0..3 {
            store
                .create_session(&session(&format!("j-many-{n}"), judy.id, "d9", NOW), None)
                .await
                .unwrap();
        }
        let seq = store.last_invalidation().await.unwrap();
        let ended = store
            .revoke_sessions(Revoke::AllOfUser(judy.id), "password_change", at)
            .await
            .unwrap();
        assert_eq!(
            sorted(ended.clone()),
            ["j-many-0", "j-many-1", "j-many-2", "j1"]
        );
        let recorded: Vec<String> = changes_since(&store, seq)
            .await
            .into_iter()
            .map(|c| match c {
                Invalidation::Session(s) => s,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(recorded, ended);
    })
    .await;
}

#[tokio::test]
async fn a_refresh_token_rotates_once() {
    on_each_engine(|store| async move {
        let kim = user(&store, "kim").await;
        store
            .create_session(&session("k1", kim.id, "d", NOW), Some("r0"))
            .await
            .unwrap();

        let rotated = store
            .rotate_refresh(&rotation(
                "r0",
                b"nonce-\x00\xff",
                "r1",
                NOW + 10,
                NOW + 5_000,
            ))
            .await
            .unwrap();
        assert!(rotated);
        let used = store.refresh_token("r0").await.unwrap().unwrap();
        assert_eq!(used.used_at, Some(NOW + 10));
        assert_eq!(used.nonce.as_deref(), Some(&b"nonce-\x00\xff"[..]));
        let next = store.refresh_token("r1").await.unwrap().unwrap();
        assert_eq!(
            (next.session_id.as_str(), next.created_at, next.used_at),
            ("k1", NOW + 10, None)
        );
        let s = store.session("k1").await.unwrap().unwrap();
        assert_eq!(
            (s.last_active_at, s.idle_expires_at),
            (NOW + 10, NOW + 5_000)
        );

        let replay = store
            .rotate_refresh(&rotation("r0", b"other", "r2", NOW + 20, NOW + 9_000))
            .await
            .unwrap();
        assert!(!replay, "a used token does not rotate again");
        assert_eq!(store.refresh_token("r2").await.unwrap(), None);
        assert_eq!(store.refresh_token("r0").await.unwrap(), Some(used));
        let s = store.session("k1").await.unwrap().unwrap();
        assert_eq!(
            (s.last_active_at, s.idle_expires_at),
            (NOW + 10, NOW + 5_000)
        );

        assert!(
            !store
                .rotate_refresh(&rotation("unknown", b"n", "r3", NOW, NOW))
                .await
                .unwrap()
        );
        assert!(
            store
                .rotate_refresh(&rotation("r1", b"n", "r4", NOW + 30, NOW + 6_000))
                .await
                .unwrap()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_of_one_token_have_one_winner() {
    on_each_engine(|store| async move {
        let lee = user(&store, "lee").await;
        store
            .create_session(&session("l1", lee.id, "d", NOW), Some("l-r0"))
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|n| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let next = format!("l-r1-{n}");
                    let won = store
                        .rotate_refresh(&rotation("l-r0", &[n as u8], &next, NOW + 1, NOW + 2))
                        .await
                        .expect("a lost race is `false`, not an error");
                    (won, next)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for racer in racers {
            let (won, next) = racer.await.unwrap();
            if won {
                winners.push(next);
            }
        }
        assert_eq!(winners.len(), 1, "exactly one rotation wins: {winners:?}");
        for n in 0..RACERS {
            let next = format!("l-r1-{n}");
            assert_eq!(
                store.refresh_token(&next).await.unwrap().is_some(),
                winners.contains(&next),
                "only the winner's successor exists"
            );
        }
        let used = store.refresh_token("l-r0").await.unwrap().unwrap();
        let winner: usize = winners[0]["l-r1-".len()..].parse().unwrap();
        assert_eq!(
            used.nonce,
            Some(vec![winner as u8]),
            "the winner's nonce is kept"
        );
    })
    .await;
}

/// U+0000 is ordinary text to SQLite and unstorable in PostgreSQL's TEXT; a client can send it (JSON
/// `"\u0000"`). Lookups with it find nothing, and values with it are stored and matched again — on
/// PostgreSQL as U+FFFD, which is the one visible difference.
#[tokio::test]
async fn nul_characters_are_stored_and_matched_not_errors() {
    on_each_engine(|store| async move {
        let quinn = user(&store, "quinn").await;
        assert!(
            store
                .local_credentials("qu\0inn@example.com", "qu\0inn")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            !store
                .identity_taken("qu\0inn", "x\0@example.com")
                .await
                .unwrap()
        );
        assert_eq!(store.user_by_username("qu\0inn").await.unwrap(), None);
        assert_eq!(store.session("s\0").await.unwrap(), None);
        assert_eq!(store.refresh_token("r\0").await.unwrap(), None);
        assert_eq!(
            store
                .consume_code(Code::new("c\0", CodePurpose::ResetPassword), NOW)
                .await
                .unwrap(),
            None
        );
        assert!(
            store
                .revoke_sessions(Revoke::Session("s\0".into()), "x", NOW)
                .await
                .unwrap()
                .is_empty()
        );

        let mut odd = session("q1", quinn.id, "tab\0let", NOW);
        odd.device_name = Some("name\0".into());
        odd.user_agent = Some("agent\0".into());
        store.create_session(&odd, Some("q-r0")).await.unwrap();
        let stored = store.session("q1").await.unwrap().unwrap();
        let as_sent = |s: &str| s.replace('\u{FFFD}', "\0");
        assert_eq!(as_sent(&stored.device_id), "tab\0let");
        assert_eq!(
            stored.device_name.as_deref().map(as_sent).as_deref(),
            Some("name\0")
        );
        let ended = store
            .revoke_sessions(
                Revoke::Device {
                    user_id: quinn.id,
                    device_id: "tab\0let".into(),
                },
                "logout",
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(ended, ["q1"], "the device id matches itself");

        let mut e = event(NOW, "login_failure", Some(quinn.id));
        e.detail = Some("odd\0detail".into());
        store.record_audit(&e).await.unwrap();
        let trail = store.audit_events(Some(quinn.id), None, 10).await.unwrap();
        assert_eq!(
            trail[0].detail.as_deref().map(as_sent).as_deref(),
            Some("odd\0detail")
        );
    })
    .await;
}

#[tokio::test]
async fn one_time_codes_work_once_for_their_purpose_until_they_expire() {
    on_each_engine(|store| async move {
        let mia = user(&store, "mia").await;
        let reset = CodePurpose::ResetPassword;
        let confirm = CodePurpose::ConfirmEmail;
        let exp = NOW + 60_000;
        let c1 = Code::new("c1", reset);
        let c1_confirm = Code::new("c1", confirm);
        let c2 = Code::new("c2", reset);
        let c3 = Code::new("c3", reset);
        let k1 = Code::new("k1", confirm);
        let none = Code::new("none", reset);
        store
            .create_code(&new_code("c1", mia.id, reset, NOW, exp))
            .await
            .unwrap();

        assert_eq!(store.code_owner(c1, NOW).await.unwrap(), Some(mia.id));
        assert_eq!(store.code_owner(c1, NOW).await.unwrap(), Some(mia.id));
        assert_eq!(store.code_owner(c1_confirm, NOW).await.unwrap(), None);
        assert_eq!(store.consume_code(c1_confirm, NOW).await.unwrap(), None);
        assert_eq!(store.code_owner(c1, exp - 1).await.unwrap(), Some(mia.id));
        assert_eq!(store.code_owner(c1, exp).await.unwrap(), None, "expired");
        assert_eq!(store.consume_code(c1, exp).await.unwrap(), None);
        assert_eq!(store.consume_code(c1, exp - 1).await.unwrap(), Some(mia.id));
        assert_eq!(store.consume_code(c1, NOW).await.unwrap(), None, "used");
        assert_eq!(store.code_owner(c1, NOW).await.unwrap(), None);
        assert_eq!(store.consume_code(none, NOW).await.unwrap(), None);

        // A new code replaces the unused ones of its purpose, and only those.
        store
            .create_code(&new_code("c2", mia.id, reset, NOW, exp))
            .await
            .unwrap();
        store
            .create_code(&new_code("k1", mia.id, confirm, NOW, exp))
            .await
            .unwrap();
        store
            .create_code(&new_code("c3", mia.id, reset, NOW + 1, exp))
            .await
            .unwrap();
        assert_eq!(store.code_owner(c2, NOW).await.unwrap(), None, "replaced");
        assert_eq!(store.code_owner(c3, NOW).await.unwrap(), Some(mia.id));
        assert_eq!(store.code_owner(k1, NOW).await.unwrap(), Some(mia.id));
        // The used code keeps its row, so its hash cannot be issued again.
        assert!(is_conflict(
            store
                .create_code(&new_code("c1", mia.id, reset, NOW, exp))
                .await
        ));
        assert!(
            store
                .create_code(&new_code("c-ghost", 9_999, reset, NOW, exp))
                .await
                .is_err(),
            "a code needs its user"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_uses_of_one_code_have_one_winner() {
    on_each_engine(|store| async move {
        let nia = user(&store, "nia").await;
        store
            .create_code(&new_code(
                "n1",
                nia.id,
                CodePurpose::ResetPassword,
                NOW,
                NOW + 60_000,
            ))
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .consume_code(Code::new("n1", CodePurpose::ResetPassword), NOW + 1)
                        .await
                        .expect("a lost race is `None`, not an error")
                })
            })
            .collect();
        let mut owners = Vec::new();
        for racer in racers {
            owners.extend(racer.await.unwrap());
        }
        assert_eq!(owners, [nia.id], "exactly one use succeeds");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_new_codes_leave_exactly_one_usable() {
    on_each_engine(|store| async move {
        let olga = user(&store, "olga").await;
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|n| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .create_code(&new_code(
                            &format!("o{n}"),
                            olga.id,
                            CodePurpose::ResetPassword,
                            NOW,
                            NOW + 60_000,
                        ))
                        .await
                        .expect("issuing a code");
                })
            })
            .collect();
        for racer in racers {
            racer.await.unwrap();
        }
        let mut usable = 0;
        for n in 0..RACERS {
            if store
                .code_owner(Code::new(&format!("o{n}"), CodePurpose::ResetPassword), NOW)
                .await
                .unwrap()
                .is_some()
            {
                usable += 1;
            }
        }
        assert_eq!(usable, 1, "each new code replaces the others");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_with_one_email_have_one_winner() {
    on_each_engine(|store| async move {
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|n| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    let mut new = new_user(&format!("racer{n}"));
                    new.email = "contested@example.com".into();
                    barrier.wait().await;
                    store.create_user(new).await
                })
            })
            .collect();
        let (mut created, mut conflicts) = (0, 0);
        for racer in racers {
            match racer.await.unwrap() {
                Ok(_) => created += 1,
                Err(StoreError::Conflict) => conflicts += 1,
                Err(e) => panic!("a lost race is a Conflict, not: {e}"),
            }
        }
        assert_eq!((created, conflicts), (1, RACERS - 1));
        assert_eq!(store.list_users().await.unwrap().len(), 1);
    })
    .await;
}

fn event(at: i64, kind: &str, user_id: Option<i64>) -> AuditEvent {
    AuditEvent {
        at,
        kind: kind.to_owned(),
        user_id,
        ip: Some("198.51.100.7".into()),
        user_agent: Some("curl/8".into()),
        detail: user_id.map(|id| format!("user {id}")),
    }
}

#[tokio::test]
async fn audit_events_filter_limit_and_prune() {
    on_each_engine(|store| async move {
        let events = [
            event(100, "login_success", Some(1)),
            event(200, "login_failure", Some(2)),
            event(200, "logout", Some(1)),
            event(300, "rate_limited", None),
            event(400, "password_change", Some(1)),
        ];
        // Recorded out of time order: the trail is ordered by time, then by recording.
        for e in [&events[3], &events[0], &events[1], &events[2], &events[4]] {
            store.record_audit(e).await.unwrap();
        }
        let all = store.audit_events(None, None, 100).await.unwrap();
        assert_eq!(all, events, "oldest first; same instant in recording order");
        let mut bare = event(50, "user_deleted", None);
        bare.ip = None;
        bare.user_agent = None;
        store.record_audit(&bare).await.unwrap();
        assert_eq!(store.audit_events(None, None, 100).await.unwrap()[0], bare);

        assert_eq!(
            store.audit_events(Some(1), None, 100).await.unwrap(),
            [events[0].clone(), events[2].clone(), events[4].clone()]
        );
        assert_eq!(
            store.audit_events(None, Some(200), 100).await.unwrap(),
            events[1..],
            "since is inclusive"
        );
        assert_eq!(
            store.audit_events(Some(1), Some(150), 100).await.unwrap(),
            [events[2].clone(), events[4].clone()]
        );
        assert_eq!(
            store.audit_events(None, None, 2).await.unwrap(),
            [events[3].clone(), events[4].clone()],
            "a limit keeps the newest, still oldest first"
        );
        assert_eq!(
            store.audit_events(None, Some(100), 3).await.unwrap(),
            events[2..]
        );
        assert!(store.audit_events(None, None, 0).await.unwrap().is_empty());
        assert!(
            store
                .audit_events(Some(42), None, 10)
                .await
                .unwrap()
                .is_empty()
        );

        store.prune_audit(200).await.unwrap();
        assert_eq!(
            store.audit_events(None, None, 100).await.unwrap(),
            events[1..],
            "events before the cut are gone, those at it stay"
        );
    })
    .await;
}

#[tokio::test]
async fn invalidations_come_back_in_order_after_a_sequence_number() {
    on_each_engine(|store| async move {
        assert_eq!(store.last_invalidation().await.unwrap(), 0);
        assert!(store.invalidations_since(0).await.unwrap().is_empty());
        let changes = [
            Invalidation::Session("s-1".into()),
            Invalidation::User(7),
            Invalidation::Keys,
            Invalidation::User(-3),
        ];
        for (n, change) in changes.iter().enumerate() {
            store
                .record_invalidation(change, NOW + n as i64)
                .await
                .unwrap();
        }
        let log = store.invalidations_since(0).await.unwrap();
        assert_eq!(
            log.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
            changes
        );
        assert!(
            log.windows(2).all(|w| w[0].0 < w[1].0),
            "sequence numbers increase: {log:?}"
        );
        let last = store.last_invalidation().await.unwrap();
        assert_eq!(last, log[3].0);
        assert_eq!(store.invalidations_since(log[1].0).await.unwrap(), log[2..]);
        assert!(store.invalidations_since(last).await.unwrap().is_empty());
    })
    .await;
}

/// A poller that remembers the last sequence number it saw must, over time, see every entry: on
/// PostgreSQL that needs numbers to become visible in order (see `INVALIDATIONS_LOCK`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poller_sees_every_invalidation_written_concurrently() {
    const WRITERS: usize = 4;
    const EACH: usize = 40;
    on_each_engine(|store| async move {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    for n in 0..EACH {
                        let change = Invalidation::Session(format!("w{w}-{n}"));
                        store.record_invalidation(&change, NOW).await.unwrap();
                    }
                })
            })
            .collect();
        let mut seen = HashSet::new();
        let mut last = 0;
        let poll = |last: i64| {
            let store = store.clone();
            async move { store.invalidations_since(last).await.unwrap() }
        };
        while seen.len() < WRITERS * EACH {
            let batch = poll(last).await;
            for (seq, change) in batch {
                last = last.max(seq);
                seen.insert(format!("{change:?}"));
            }
            if writers.iter().all(|w| w.is_finished()) {
                // One last look: anything still missing now was skipped for good.
                for (seq, change) in poll(last).await {
                    last = last.max(seq);
                    seen.insert(format!("{change:?}"));
                }
                break;
            }
            tokio::task::yield_now().await;
        }
        for writer in writers {
            writer.await.unwrap();
        }
        assert_eq!(
            seen.len(),
            WRITERS * EACH,
            "every invalidation reached the poller"
        );
    })
    .await;
}

#[tokio::test]
async fn pruning_deletes_what_can_no_longer_matter() {
    on_each_engine(|store| async move {
        let pat = user(&store, "pat").await;
        let cut = NOW;
        let mut expired = session("p-expired", pat.id, "d", NOW - 20_000);
        expired.expires_at = cut - 1;
        let mut revoked_old = session("p-revoked-old", pat.id, "d", NOW - 5_000);
        revoked_old.revoked_at = Some(cut - 1);
        let mut revoked_new = session("p-revoked-new", pat.id, "d", NOW - 5_000);
        revoked_new.revoked_at = Some(cut);
        let mut live = session("p-live", pat.id, "d", NOW - 5_000);
        live.expires_at = cut;
        store
            .create_session(&expired, Some("p-r-expired"))
            .await
            .unwrap();
        store.create_session(&revoked_old, None).await.unwrap();
        store.create_session(&revoked_new, None).await.unwrap();
        store.create_session(&live, Some("p-r-live")).await.unwrap();
        store
            .create_code(&new_code(
                "p-old",
                pat.id,
                CodePurpose::ResetPassword,
                NOW,
                cut - 1,
            ))
            .await
            .unwrap();
        store
            .create_code(&new_code(
                "p-new",
                pat.id,
                CodePurpose::ConfirmEmail,
                NOW,
                cut,
            ))
            .await
            .unwrap();
        store
            .record_invalidation(&Invalidation::User(1), NOW - 10)
            .await
            .unwrap();
        store
            .record_invalidation(&Invalidation::User(2), NOW)
            .await
            .unwrap();

        store.prune(cut, NOW).await.unwrap();
        assert_eq!(store.session("p-expired").await.unwrap(), None);
        assert_eq!(store.refresh_token("p-r-expired").await.unwrap(), None);
        assert_eq!(store.session("p-revoked-old").await.unwrap(), None);
        assert!(store.session("p-revoked-new").await.unwrap().is_some());
        assert!(store.session("p-live").await.unwrap().is_some());
        assert!(store.refresh_token("p-r-live").await.unwrap().is_some());
        // A pruned code's hash is free again; the other one is still there.
        store
            .create_code(&new_code(
                "p-old",
                pat.id,
                CodePurpose::ResetPassword,
                NOW,
                cut + 1,
            ))
            .await
            .unwrap();
        assert!(is_conflict(
            store
                .create_code(&new_code(
                    "p-new",
                    pat.id,
                    CodePurpose::ResetPassword,
                    NOW,
                    cut + 1
                ))
                .await
        ));
        assert_eq!(changes_since(&store, 0).await, [Invalidation::User(2)]);
    })
    .await;
}

fn key(kid: &str, created_at: i64) -> StoredKey {
    StoredKey {
        kid: kid.to_owned(),
        alg: "EdDSA".into(),
        private_der: vec![0, 1, 2, 0xff, 0],
        public_raw: kid.as_bytes().to_vec(),
        created_at,
        retired_at: None,
    }
}

#[tokio::test]
async fn retiring_signing_keys_keeps_the_first_retirement() {
    on_each_engine(|store| async move {
        assert_eq!(store.retire_signing_keys(50).await.unwrap(), 0);
        store.insert_signing_key(&key("k1", 100)).await.unwrap();
        let seq = store.last_invalidation().await.unwrap();
        assert_eq!(store.retire_signing_keys(200).await.unwrap(), 1);
        let recorded = store.invalidations_since(seq).await.unwrap();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].1, Invalidation::Keys, "running servers reload");

        // A restart in HS256 mode retires again: k1 keeps its time, only the newcomer is marked,
        // and nothing changed records nothing.
        store.insert_signing_key(&key("k2", 300)).await.unwrap();
        assert_eq!(store.retire_signing_keys(400).await.unwrap(), 1);
        let seq = store.last_invalidation().await.unwrap();
        assert_eq!(store.retire_signing_keys(500).await.unwrap(), 0);
        assert!(store.invalidations_since(seq).await.unwrap().is_empty());
        let keys = store.signing_keys().await.unwrap();
        let retired: Vec<_> = keys
            .iter()
            .map(|k| (k.kid.as_str(), k.retired_at))
            .collect();
        assert_eq!(retired, [("k2", Some(400)), ("k1", Some(200))]);
    })
    .await;
}

#[tokio::test]
async fn signing_keys_come_newest_first() {
    on_each_engine(|store| async move {
        assert!(store.signing_keys().await.unwrap().is_empty());
        for (kid, at) in [("k1", 100), ("k2", 300), ("k3", 200), ("k4", 300)] {
            let seq = store.last_invalidation().await.unwrap();
            store.insert_signing_key(&key(kid, at)).await.unwrap();
            let recorded = store.invalidations_since(seq).await.unwrap();
            assert_eq!(recorded.len(), 1);
            assert_eq!(recorded[0].1, Invalidation::Keys, "running servers reload");
        }
        let keys = store.signing_keys().await.unwrap();
        let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(
            kids,
            ["k4", "k2", "k3", "k1"],
            "newest first; of two in the same millisecond, the later insert"
        );
        assert_eq!(keys[0].private_der, [0, 1, 2, 0xff, 0]);
        assert_eq!(keys[0].public_raw, b"k4");
        assert_eq!((keys[0].alg.as_str(), keys[0].created_at), ("EdDSA", 300));
        assert!(is_conflict(store.insert_signing_key(&key("k1", 500)).await));
    })
    .await;
}

// ---- settings only PostgreSQL has (SQLite ignores them) ----

/// An administrator's connection to a test database, to watch and obstruct the store under test.
async fn admin_of(db: &PgDatabase) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(db.url_str())
        .await
        .expect("connect to the test database")
}

/// The store's connections to `db`, as the server sees them: whether each uses TLS.
async fn keyway_connections(admin: &mut sqlx::PgConnection, db: &PgDatabase) -> Vec<bool> {
    sqlx::query_scalar(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid \
         WHERE a.datname = current_database() AND a.application_name = 'keyway'",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_else(|e| panic!("pg_stat_ssl of {}: {e}", db.url_str()))
}

async fn pg_store(db: &PgDatabase, settings: DatabaseSettings) -> Result<PgStore, StoreError> {
    Ok(PgStore::open(db.url_str(), &settings).await?.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_statement_timeout_cancels_a_stuck_statement() {
    let db = PgDatabase::create().await;
    let settings = DatabaseSettings {
        statement_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let store = pg_store(&db, settings).await.expect("store opens");
    let mut admin = admin_of(&db).await;
    sqlx::query("BEGIN").execute(&mut admin).await.unwrap();
    sqlx::query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .execute(&mut admin)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let stuck = tokio::time::timeout(std::time::Duration::from_secs(10), store.user_by_id(1))
        .await
        .expect("the server cancels the statement; it does not hang");
    let waited = started.elapsed();
    assert!(matches!(stuck, Err(StoreError::Database(_))), "{stuck:?}");
    assert!(
        waited >= std::time::Duration::from_millis(250),
        "cancelled after the timeout, not before: {waited:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut admin).await.unwrap();
    assert_eq!(
        store.user_by_id(1).await.unwrap(),
        None,
        "the store recovers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_pool_size_bounds_the_connections() {
    let db = PgDatabase::create().await;
    let settings = DatabaseSettings {
        pool_size: Some(2),
        ..Default::default()
    };
    let store: Arc<dyn Store> = Arc::new(pg_store(&db, settings).await.expect("store opens"));
    let mut admin = admin_of(&db).await;
    // Not `admin`: inside a transaction the server keeps showing the activity it saw first.
    let mut watcher = admin_of(&db).await;
    // Every lookup waits on the lock while holding a connection, so the pool grows as far as it may.
    sqlx::query("BEGIN").execute(&mut admin).await.unwrap();
    sqlx::query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .execute(&mut admin)
        .await
        .unwrap();
    let lookups: Vec<_> = (0..RACERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.user_by_id(1).await })
        })
        .collect();
    let mut open = 0;
    for _ in 0..100 {
        open = keyway_connections(&mut watcher, &db).await.len();
        if open >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Give a pool that would overshoot the time to do it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    open = open.max(keyway_connections(&mut watcher, &db).await.len());
    assert_eq!(
        open, 2,
        "database_pool_size = 2 with {RACERS} waiting lookups"
    );
    sqlx::query("ROLLBACK").execute(&mut admin).await.unwrap();
    for lookup in lookups {
        assert_eq!(lookup.await.unwrap().unwrap(), None);
    }
}

#[tokio::test]
async fn postgres_sslmode_is_honoured() {
    use keyway::store::SslMode;
    let with_mode = |mode| DatabaseSettings {
        ssl_mode: Some(mode),
        ..Default::default()
    };
    let db = PgDatabase::create().await;
    let mut admin = admin_of(&db).await;
    let server_tls: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    eprintln!("server ssl = {server_tls}");

    // The setting overrides the URL's own sslmode (the configuration refuses a contradiction).
    let plain = pg_store(&db, with_mode(SslMode::Disable))
        .await
        .expect("plain TCP");
    // A query first, so the store certainly holds a connection to look at.
    plain.ping().await.unwrap();
    let tls = keyway_connections(&mut admin, &db).await;
    assert!(!tls.is_empty() && tls.iter().all(|on| !on), "{tls:?}");
    drop(plain);

    let db = PgDatabase::create().await;
    let mut admin = admin_of(&db).await;
    let required = pg_store(&db, with_mode(SslMode::Require)).await;
    if server_tls == "on" {
        let store = required.expect("TLS to a server that offers it");
        store.ping().await.unwrap();
        let tls = keyway_connections(&mut admin, &db).await;
        assert!(!tls.is_empty() && tls.iter().all(|on| *on), "{tls:?}");
        // A self-signed or private-CA certificate (the local server's) is not trusted by the
        // built-in web PKI roots, so full verification refuses it.
        let verified = pg_store(&db, with_mode(SslMode::VerifyFull)).await;
        assert!(
            verified.is_err(),
            "verify-full accepted an untrusted certificate"
        );
    } else {
        assert!(
            required.is_err(),
            "sslmode=require must refuse a server without TLS"
        );
    }
}

#[tokio::test]
async fn rate_windows_count_and_start_over() {
    on_each_engine(|store| async move {
        let key = "/api/auth/local|203.0.113.7";
        assert_eq!(store.hit_window(key, NOW, 60_000).await.unwrap(), (NOW, 1));
        assert_eq!(
            store.hit_window(key, NOW + 10, 60_000).await.unwrap(),
            (NOW, 2)
        );
        assert_eq!(
            store
                .hit_window("other|203.0.113.7", NOW + 20, 60_000)
                .await
                .unwrap(),
            (NOW + 20, 1),
            "another key has its own window"
        );
        // A window as old as its length starts over at the new hit.
        assert_eq!(
            store.hit_window(key, NOW + 60_000, 60_000).await.unwrap(),
            (NOW + 60_000, 1)
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_hits_are_all_counted() {
    on_each_engine(|store| async move {
        let hits = (0..RACERS).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.hit_window("race", NOW, 60_000).await.unwrap() })
        });
        let mut counts = Vec::new();
        for hit in hits {
            counts.push(hit.await.unwrap().1);
        }
        counts.sort_unstable();
        let expected: Vec<u32> = (1..=RACERS as u32).collect();
        assert_eq!(counts, expected, "each hit saw its own count");
    })
    .await;
}

const RULE: ThrottleRule = ThrottleRule {
    free: 2,
    max_pause_ms: 10_000,
    hourly_cap: 4,
};

const ALONE: ThrottleKeys<'static> = ThrottleKeys {
    account: "acc",
    client: None,
};

/// The client 203.0.113.7, whose own bucket on `acc` is `own`.
const CLIENT: ThrottleKeys<'static> = ThrottleKeys {
    account: "acc",
    client: Some(("203.0.113.7", "own")),
};

async fn wait_ms(store: &Arc<dyn Store>, keys: ThrottleKeys<'_>, now: i64) -> i64 {
    store
        .throttle_attempt(attempt(keys, now, RULE))
        .await
        .unwrap()
        .wait_ms
}

#[tokio::test]
async fn throttle_attempts_are_decided_and_counted_in_one_step() {
    on_each_engine(|store| async move {
        // Two free, then a pause doubling from a second, after the newest counted attempt.
        assert_eq!(
            store
                .throttle_attempt(attempt(ALONE, NOW, RULE))
                .await
                .unwrap(),
            ThrottleVerdict {
                bucket: "acc".into(),
                wait_ms: 0
            }
        );
        assert_eq!(wait_ms(&store, ALONE, NOW).await, 0);
        assert_eq!(wait_ms(&store, ALONE, NOW + 400).await, 600);
        assert_eq!(
            wait_ms(&store, ALONE, NOW + 400).await,
            600,
            "a refused attempt is not counted"
        );
        assert_eq!(wait_ms(&store, ALONE, NOW + 1_000).await, 0);
        assert_eq!(wait_ms(&store, ALONE, NOW + 1_000).await, 2_000);
        assert_eq!(wait_ms(&store, ALONE, NOW + 3_000).await, 0);
        // Four in the hour is the cap: until the oldest is an hour old, whatever the pauses.
        assert_eq!(wait_ms(&store, ALONE, NOW + 100_000).await, 3_500_000);
        // An hour on, the two first no longer count: two are left, so a second's pause applies.
        assert_eq!(wait_ms(&store, ALONE, NOW + 3_600_000).await, 0);
        assert_eq!(wait_ms(&store, ALONE, NOW + 3_600_000).await, 2_000);
        let other = ThrottleKeys {
            account: "other",
            client: None,
        };
        assert_eq!(wait_ms(&store, other, NOW + 3_600_000).await, 0, "its own");
    })
    .await;
}

#[tokio::test]
async fn a_success_is_taken_back_and_trusts_its_client_in_a_bucket_of_its_own() {
    on_each_engine(|store| async move {
        let counted = store
            .throttle_attempt(attempt(CLIENT, NOW, RULE))
            .await
            .unwrap();
        assert_eq!(counted.bucket, "acc", "not trusted yet");
        assert_eq!(wait_ms(&store, ALONE, NOW).await, 0);
        assert_eq!(wait_ms(&store, ALONE, NOW).await, 1_000, "two counted");
        store
            .throttle_success(success(CLIENT, &counted.bucket, NOW, NOW + 60_000))
            .await
            .unwrap();
        // Taken back: one counted, so one more is free on the account.
        assert_eq!(wait_ms(&store, ALONE, NOW).await, 0);
        assert_eq!(wait_ms(&store, ALONE, NOW).await, 1_000);
        // The client, trusted now, has its own bucket, untouched by the account's failures.
        let own = store
            .throttle_attempt(attempt(CLIENT, NOW, RULE))
            .await
            .unwrap();
        assert_eq!(
            own,
            ThrottleVerdict {
                bucket: "own".into(),
                wait_ms: 0
            }
        );
        assert_eq!(wait_ms(&store, CLIENT, NOW).await, 0);
        assert_eq!(wait_ms(&store, CLIENT, NOW).await, 1_000);
        // A success clears it, and renews the trust.
        let right = store
            .throttle_attempt(attempt(CLIENT, NOW + 1_000, RULE))
            .await
            .unwrap();
        assert_eq!(right.wait_ms, 0);
        store
            .throttle_success(success(CLIENT, &right.bucket, NOW + 1_000, NOW + 120_000))
            .await
            .unwrap();
        for _ in 0..2 {
            assert_eq!(wait_ms(&store, CLIENT, NOW + 1_000).await, 0);
        }
        assert_eq!(wait_ms(&store, CLIENT, NOW + 1_000).await, 1_000);
        // Another address is not trusted; trust ends when it says.
        let elsewhere = ThrottleKeys {
            account: "acc",
            client: Some(("203.0.113.8", "own-8")),
        };
        let untrusted = store
            .throttle_attempt(attempt(elsewhere, NOW + 1_000, RULE))
            .await
            .unwrap();
        assert_eq!(untrusted.bucket, "acc");
        let later = store
            .throttle_attempt(attempt(CLIENT, NOW + 120_000, RULE))
            .await
            .unwrap();
        assert_eq!(later.bucket, "acc", "trust expired");

        // Pruning forgets what can no longer count.
        store.prune(NOW + 7_300_000, NOW + 7_300_000).await.unwrap();
        for _ in 0..2 {
            assert_eq!(wait_ms(&store, ALONE, NOW + 7_300_000).await, 0);
        }
        assert_eq!(
            store
                .hit_window("k", NOW + 7_300_000, 60_000)
                .await
                .unwrap()
                .1,
            1
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_attempts_on_one_account_get_only_the_free_ones() {
    on_each_engine(|store| async move {
        let rule = ThrottleRule { free: 3, ..RULE };
        let attempts = (0..RACERS).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let ip = format!("203.0.113.{i}");
                let own = format!("own-{i}");
                let keys = ThrottleKeys {
                    account: "race",
                    client: Some((&ip, &own)),
                };
                store
                    .throttle_attempt(attempt(keys, NOW, rule))
                    .await
                    .unwrap()
                    .wait_ms
            })
        });
        let mut let_through = 0;
        for attempt in attempts {
            if attempt.await.unwrap() == 0 {
                let_through += 1;
            }
        }
        assert_eq!(let_through, 3, "each attempt saw those counted before it");
    })
    .await;
}

#[tokio::test]
async fn only_a_database_for_several_nodes_says_it_is_shared() {
    let (sqlite, _a) = fresh_sqlite().await;
    let (postgres, _b) = fresh_postgres().await;
    assert!(!sqlite.shared_by_nodes());
    assert!(postgres.shared_by_nodes());
}

#[tokio::test]
async fn a_hash_is_replaced_only_while_it_is_still_the_old_one() {
    on_each_engine(|store| async move {
        let u = user(&store, "erin").await;
        let hash = |s: &Arc<dyn Store>| {
            let s = s.clone();
            async move {
                s.local_credentials("erin@example.com", "erin")
                    .await
                    .unwrap()
                    .unwrap()
                    .password_hash
            }
        };
        assert!(
            store
                .replace_password_hash(&upgrade(u.id, "hash-of-erin", "upgraded", NOW + 1))
                .await
                .unwrap()
        );
        assert_eq!(hash(&store).await.as_deref(), Some("upgraded"));
        // A password change landed first: the late upgrade must not undo it.
        store
            .set_password_hash(u.id, "changed", NOW + 2)
            .await
            .unwrap();
        assert!(
            !store
                .replace_password_hash(&upgrade(u.id, "upgraded", "stale-upgrade", NOW + 3))
                .await
                .unwrap()
        );
        assert_eq!(hash(&store).await.as_deref(), Some("changed"));
    })
    .await;
}

#[tokio::test]
async fn the_one_step_refresh_rotates_only_a_fresh_token_of_an_open_session() {
    on_each_engine(|store| async move {
        let u = user(&store, "frank").await;
        store
            .create_session(&session("s-fresh", u.id, "laptop", NOW), Some("r-fresh"))
            .await
            .unwrap();
        let later = NOW + 500;
        match store
            .rotate_fresh_refresh(&rotation(
                "r-fresh",
                b"nonce-1",
                "r-next",
                later,
                later + 5_000,
            ))
            .await
            .unwrap()
        {
            // An engine without the shortcut leaves everything to the careful path.
            None => {
                let record = store.refresh_token("r-fresh").await.unwrap().unwrap();
                assert_eq!(record.used_at, None, "nothing changed");
                return;
            }
            Some(session) => {
                assert_eq!(session.id, "s-fresh");
                assert_eq!(session.idle_expires_at, later + 5_000);
                let old = store.refresh_token("r-fresh").await.unwrap().unwrap();
                assert_eq!(old.used_at, Some(later));
                assert_eq!(old.nonce.as_deref(), Some(&b"nonce-1"[..]));
                assert!(store.refresh_token("r-next").await.unwrap().is_some());
            }
        }
        // A used token, an ended session: not for the shortcut.
        let again = store
            .rotate_fresh_refresh(&rotation(
                "r-fresh",
                b"nonce-2",
                "r-other",
                later,
                later + 5_000,
            ))
            .await
            .unwrap();
        assert_eq!(again, None, "a used token");
        store
            .revoke_sessions(Revoke::Session("s-fresh".into()), "logout", later)
            .await
            .unwrap();
        let ended = store
            .rotate_fresh_refresh(&rotation(
                "r-next",
                b"nonce-3",
                "r-third",
                later,
                later + 5_000,
            ))
            .await
            .unwrap();
        assert_eq!(ended, None, "an ended session");
        assert!(store.refresh_token("r-third").await.unwrap().is_none());
    })
    .await;
}

fn sso_state(hash: &str, stage: SsoStage, expires_at: i64) -> SsoState {
    SsoState {
        hash: hash.to_owned(),
        stage,
        provider: "google".into(),
        browser: "browser-hash".into(),
        payload: r#"{"verifier":"v"}"#.into(),
        expires_at,
    }
}

#[tokio::test]
async fn sign_ins_in_progress_are_taken_once_at_their_stage_until_they_expire() {
    on_each_engine(|store| async move {
        let exp = NOW + 60_000;
        let take = |hash: &'static str, stage, now| {
            let store = store.clone();
            async move { store.take_sso_state(hash, stage, now).await.unwrap() }
        };
        store
            .put_sso_state(&sso_state("a", SsoStage::Authorize, exp))
            .await
            .unwrap();
        let got = take("a", SsoStage::Authorize, NOW).await.expect("taken");
        assert_eq!(
            (
                got.provider.as_str(),
                got.browser.as_str(),
                got.payload.as_str()
            ),
            ("google", "browser-hash", r#"{"verifier":"v"}"#)
        );
        assert_eq!(got.stage, SsoStage::Authorize);
        assert!(
            take("a", SsoStage::Authorize, NOW).await.is_none(),
            "only once"
        );

        // A state presented at the wrong stage, or late, is gone all the same: one attempt each.
        store
            .put_sso_state(&sso_state("b", SsoStage::Authorize, exp))
            .await
            .unwrap();
        assert!(take("b", SsoStage::Finish, NOW).await.is_none());
        assert!(take("b", SsoStage::Authorize, NOW).await.is_none());
        store
            .put_sso_state(&sso_state("c", SsoStage::Finish, exp))
            .await
            .unwrap();
        assert!(take("c", SsoStage::Finish, exp).await.is_none(), "expired");
        assert!(take("c", SsoStage::Finish, NOW).await.is_none());
        assert!(take("never", SsoStage::Finish, NOW).await.is_none());

        // Duplicate keys conflict; expired rows are pruned.
        store
            .put_sso_state(&sso_state("d", SsoStage::Finish, exp))
            .await
            .unwrap();
        assert!(is_conflict(
            store
                .put_sso_state(&sso_state("d", SsoStage::Finish, exp))
                .await
        ));
        store.prune(exp + 1, 0).await.unwrap();
        assert!(take("d", SsoStage::Finish, NOW).await.is_none(), "pruned");
    })
    .await;
}

#[tokio::test]
async fn identities_link_one_person_to_one_account() {
    on_each_engine(|store| async move {
        let ann = user(&store, "ann").await;
        let identity = |subject: &str, user_id: i64| Identity {
            provider: "google".into(),
            subject: subject.to_owned(),
            user_id,
            email: Some("ann@example.com".into()),
            created_at: NOW,
        };
        assert_eq!(store.identity_owner("google", "s1").await.unwrap(), None);
        store.link_identity(&identity("s1", ann.id)).await.unwrap();
        assert_eq!(
            store.identity_owner("google", "s1").await.unwrap(),
            Some(ann.id)
        );
        assert_eq!(store.identity_owner("github", "s1").await.unwrap(), None);
        let bob = user(&store, "bob").await;
        assert!(
            is_conflict(store.link_identity(&identity("s1", bob.id)).await),
            "an identity belongs to one account"
        );

        // Created together, or not at all.
        let mut new = new_user("cid");
        new.provider = "google".into();
        new.password_hash = None;
        let cid = store
            .create_user_with_identity(new, &identity("s2", 0))
            .await
            .unwrap();
        assert_eq!(cid.provider, "google");
        assert_eq!(
            store.identity_owner("google", "s2").await.unwrap(),
            Some(cid.id)
        );
        let mut twin = new_user("cid2");
        twin.email = "cid2@example.com".into();
        assert!(is_conflict(
            store
                .create_user_with_identity(twin, &identity("s2", 0))
                .await
        ));
        assert!(
            store.user_by_username("cid2").await.unwrap().is_none(),
            "the account of a refused link is rolled back"
        );

        let listed = store.identities_of_user(ann.id).await.unwrap();
        assert_eq!(listed, vec![identity("s1", ann.id)]);
        store.delete_user(ann.id).await.unwrap();
        assert_eq!(
            store.identity_owner("google", "s1").await.unwrap(),
            None,
            "deleting the account deletes its links"
        );
    })
    .await;
}

// ---- the security stamp ----

#[tokio::test]
async fn the_security_stamp_moves_with_passwords_blocks_and_imports_only() {
    on_each_engine(|store| async move {
        let mia = user(&store, "mia").await;
        assert_eq!((mia.stamp, mia.password_changed_at), (0, None));
        let stamp = |store: Arc<dyn Store>| async move {
            let u = store.user_by_id(mia.id).await.unwrap().unwrap();
            (u.stamp, u.password_changed_at)
        };

        // An upgrade of the hash and a confirmation leave the password, and decisions on it, alone.
        assert!(
            store
                .replace_password_hash(&upgrade(mia.id, "hash-of-mia", "rehashed", NOW + 1))
                .await
                .unwrap()
        );
        store.set_confirmed(mia.id, NOW + 2).await.unwrap();
        assert_eq!(stamp(store.clone()).await, (0, None));

        let seq = store.last_invalidation().await.unwrap();
        store
            .set_password_hash(mia.id, "new-hash", NOW + 3)
            .await
            .unwrap();
        assert_eq!(stamp(store.clone()).await, (1, Some(NOW + 3)));
        assert_eq!(
            changes_since(&store, seq).await,
            [Invalidation::User(mia.id)],
            "other nodes learn of the new password (and its time)"
        );
        store.set_blocked(mia.id, true, NOW + 4).await.unwrap();
        store.set_blocked(mia.id, false, NOW + 5).await.unwrap();
        assert_eq!(stamp(store.clone()).await, (3, Some(NOW + 3)));

        // An import: a stamp for every rewrite, a password change only when the hash changes.
        store
            .insert_imported_user(&imported(80, "noa"))
            .await
            .unwrap();
        let noa = store.user_by_username("noa").await.unwrap().unwrap();
        assert_eq!((noa.stamp, noa.password_changed_at), (0, None));
        let mut again = imported(80, "noa");
        again.account.confirmed = false;
        store
            .update_imported_user(80, &again, NOW + 6)
            .await
            .unwrap();
        let noa = store.user_by_id(80).await.unwrap().unwrap();
        assert_eq!((noa.stamp, noa.password_changed_at), (1, None));
        again.account.password_hash = Some("$2a$10$changed-in-strapi".into());
        store
            .update_imported_user(80, &again, NOW + 7)
            .await
            .unwrap();
        let noa = store.user_by_id(80).await.unwrap().unwrap();
        assert_eq!((noa.stamp, noa.password_changed_at), (2, Some(NOW + 7)));
    })
    .await;
}

#[tokio::test]
async fn sessions_open_only_on_the_current_stamp_of_an_unblocked_account() {
    on_each_engine(|store| async move {
        let ola = user(&store, "ola").await;
        assert!(
            store
                .create_session_if_current(&session("o1", ola.id, "d", NOW), Some("o1-r0"), 0)
                .await
                .unwrap()
        );
        assert!(store.session("o1").await.unwrap().is_some());
        assert!(store.refresh_token("o1-r0").await.unwrap().is_some());

        store
            .set_password_hash(ola.id, "new-hash", NOW + 1)
            .await
            .unwrap();
        assert!(
            !store
                .create_session_if_current(&session("o2", ola.id, "d", NOW), Some("o2-r0"), 0)
                .await
                .unwrap(),
            "a stamp read before the password change"
        );
        assert_eq!(store.session("o2").await.unwrap(), None);
        assert_eq!(
            store.refresh_token("o2-r0").await.unwrap(),
            None,
            "nothing of the refused session is kept"
        );
        assert!(
            store
                .create_session_if_current(&session("o3", ola.id, "d", NOW), None, 1)
                .await
                .unwrap()
        );

        store.set_blocked(ola.id, true, NOW + 2).await.unwrap();
        let blocked = store.user_by_id(ola.id).await.unwrap().unwrap();
        assert!(
            !store
                .create_session_if_current(&session("o4", ola.id, "d", NOW), None, blocked.stamp)
                .await
                .unwrap(),
            "a blocked account, even on its current stamp"
        );
        store.delete_user(ola.id).await.unwrap();
        assert!(
            !store
                .create_session_if_current(&session("o5", ola.id, "d", NOW), None, blocked.stamp)
                .await
                .unwrap(),
            "a deleted account: refused, not an error"
        );
    })
    .await;
}

/// The race a login loses: sessions opened on the stamp read before a block, concurrently with the
/// block and the revocation that follows it. Whatever the interleaving, no such session may be open
/// once both are done (on PostgreSQL, one that committed between the block and the revocation's
/// snapshot would be).
#[tokio::test]
async fn no_session_opened_on_a_stamp_from_before_a_block_survives_it() {
    on_each_engine(|store| async move {
        let pia = user(&store, "pia").await;
        let racers: Vec<_> = (0..RACERS)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..200 {
                        let s = session(&format!("p-{n}-{i}"), pia.id, "d", NOW);
                        let opened = store
                            .create_session_if_current(&s, None, pia.stamp)
                            .await
                            .expect("a lost race is `false`, not an error");
                        if !opened {
                            return true;
                        }
                    }
                    false
                })
            })
            .collect();
        // Block while the racers are opening sessions.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.sessions_of_user(pia.id).await.unwrap().len() < RACERS {
            assert!(
                tokio::time::Instant::now() < deadline,
                "racers never started"
            );
            tokio::task::yield_now().await;
        }
        store.set_blocked(pia.id, true, NOW + 1).await.unwrap();
        store
            .revoke_sessions(Revoke::AllOfUser(pia.id), "blocked", NOW + 1)
            .await
            .unwrap();
        for racer in racers {
            assert!(
                racer.await.unwrap(),
                "every racer was refused after the block"
            );
        }
        let open: Vec<String> = store
            .sessions_of_user(pia.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.revoked_at.is_none())
            .map(|s| s.id)
            .collect();
        assert!(open.is_empty(), "sessions outlived the block: {open:?}");
    })
    .await;
}
