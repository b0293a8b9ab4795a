//! The bounded in-process caches of sessions and users that keep the per-request session check off
//! the database, and the tickets that keep a stale read from being put back after a change.

use moka::sync::Cache;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::store::{Invalidation, Session, User};

/// Bounded caches of session state and users. Every change that can invalidate an entry goes through
/// [`Caches::apply`], fed both by this process's own changes and by the invalidation log other
/// processes write. Entries also expire after a minute, a backstop should an invalidation be missed.
///
/// A copy read from the store is put in only through a [`Ticket`] taken before the read, and stays
/// only if no invalidation came in since: otherwise a read that began before a change (a revocation,
/// a block, made here or by another node) could put back the copy the change had just removed, and
/// it would be believed until the backstop.
pub struct Caches {
    sessions: Cache<String, Arc<Session>>,
    users: Cache<i64, Arc<User>>,
    /// Moved on by every invalidation before it drops anything.
    generation: AtomicU64,
}

/// The cache generation before a read from the store; see [`Caches`].
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl Caches {
    pub fn new(capacity: u64) -> Self {
        let ttl = Duration::from_secs(60);
        Self {
            sessions: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            users: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            generation: AtomicU64::new(0),
        }
    }

    /// Take before reading what is to be cached.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::SeqCst))
    }

    pub fn apply(&self, change: &Invalidation) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        match change {
            Invalidation::Session(id) => self.sessions.invalidate(id),
            Invalidation::User(id) => self.users.invalidate(id),
            Invalidation::Keys => {}
        }
    }

    /// Entries held now (sessions, users), pending evictions applied first: what a bound must hold.
    pub fn entries(&self) -> (u64, u64) {
        self.sessions.run_pending_tasks();
        self.users.run_pending_tasks();
        (self.sessions.entry_count(), self.users.entry_count())
    }

    /// Forgets everything: used when invalidations may have been missed.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.sessions.invalidate_all();
        self.users.invalidate_all();
    }

    pub fn user(&self, id: i64) -> Option<Arc<User>> {
        self.users.get(&id)
    }

    pub fn session(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.get(id)
    }

    /// Caches `user`, read from the store after `ticket` was taken, unless an invalidation came in
    /// since. Put first, check after: an invalidation that moves the generation after the check
    /// drops the entry after it was put, so either way a copy it overtook does not stay.
    pub fn put_user(&self, ticket: Ticket, user: Arc<User>) {
        let id = user.id;
        self.users.insert(id, user);
        if self.generation.load(Ordering::SeqCst) != ticket.0 {
            self.users.invalidate(&id);
        }
    }

    /// [`Caches::put_user`] for a session.
    pub fn put_session(&self, ticket: Ticket, session: Arc<Session>) {
        let id = session.id.clone();
        self.sessions.insert(id.clone(), session);
        if self.generation.load(Ordering::SeqCst) != ticket.0 {
            self.sessions.invalidate(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_session(id: &str) -> Arc<Session> {
        Arc::new(Session {
            id: id.into(),
            user_id: 1,
            device_id: "d".into(),
            device_name: None,
            created_at: 0,
            last_active_at: 0,
            idle_expires_at: 1,
            expires_at: 1,
            revoked_at: None,
            revoked_reason: None,
            user_agent: None,
            ip: None,
        })
    }

    #[test]
    fn a_copy_read_before_an_invalidation_or_a_clear_is_not_kept() {
        let caches = Caches::new(10);
        let ticket = caches.ticket();
        caches.put_session(ticket, a_session("kept"));
        assert!(caches.session("kept").is_some(), "nothing came in between");

        for overtaken in [
            (|c: &Caches| c.apply(&Invalidation::Session("other".into()))) as fn(&Caches),
            |c: &Caches| c.clear(),
        ] {
            let ticket = caches.ticket();
            overtaken(&caches);
            caches.put_session(ticket, a_session("stale"));
            assert!(caches.session("stale").is_none());
        }
    }
}
