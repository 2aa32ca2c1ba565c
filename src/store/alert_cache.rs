//! A cache of worklist pages for the PostgreSQL store, kept exactly as
//! fresh as the alert changes it hears of.
//!
//! Every nurse of a team asks for the same worklist, over and over, while
//! it changes only when an alert does. The cache keeps the last answer per
//! [`AlertQuery`] with the *generation* it was read at; any alert change
//! starts a new generation, and an answer of an older one is not served.
//!
//! # Where changes come from
//!
//! - This instance's own writes ([`AlertQueryCache::invalidate`], called
//!   right after the store commits a raise or a transition), so a nurse who
//!   claims an alert and reloads sees her claim.
//! - Every other writer's, through the `LISTEN` of
//!   [`Store::alert_changes`](super::Store::alert_changes): the cache holds
//!   a subscription and empties it before each lookup. A change that
//!   reached any subscriber (say the SSE stream that makes a browser
//!   reload) is therefore already in the cache's subscription when that
//!   reload's lookup runs.
//! - While the listener is not connected (at start, or after a lost
//!   connection, when changes may be missed), nothing is served from the
//!   cache.
//!
//! Besides, an answer is served for at most [`MAX_AGE`]: changes that are
//! not alert events (a patient renamed or moved to another team) show
//! within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast::{self, error::TryRecvError};

use super::{AlertChange, AlertPage, AlertQuery};

/// The longest an answer is served.
pub const MAX_AGE: Duration = Duration::from_secs(2);

/// More distinct queries than this (teams × filters × pages) empty the
/// cache instead of growing it.
const MAX_ENTRIES: usize = 256;

/// See the module docs.
#[derive(Debug, Default)]
pub struct AlertQueryCache {
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    generation: u64,
    changes: Option<broadcast::Receiver<AlertChange>>,
    entries: HashMap<AlertQuery, Entry>,
}

#[derive(Debug)]
struct Entry {
    generation: u64,
    read_at: Instant,
    page: Arc<AlertPage>,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// The very page kept: every reader of one generation shares it, so
    /// what is derived from it can be kept with it
    /// ([`crate::worklist::rendered`]).
    Hit(Arc<AlertPage>),
    /// Read it, then [`AlertQueryCache::keep`] it with this generation.
    Miss(u64),
}

impl AlertQueryCache {
    /// Whether the cache needs a subscription to alert changes (it has none
    /// or its subscription closed).
    pub fn needs_subscription(&self) -> bool {
        self.lock().changes.is_none()
    }

    /// Hands the cache its subscription to alert changes.
    pub fn subscribe(&self, changes: broadcast::Receiver<AlertChange>) {
        let mut state = self.lock();
        state.changes = Some(changes);
        state.generation += 1;
    }

    /// Looks `query` up at `now`. With `listening` false (changes may be
    /// missed) it always misses.
    pub fn lookup(&self, query: &AlertQuery, listening: bool, now: Instant) -> Lookup {
        let mut state = self.lock();
        state.drain_changes();
        if !listening || state.changes.is_none() {
            state.entries.clear();
            state.generation += 1;
            return Lookup::Miss(state.generation);
        }
        match state.entries.get(query) {
            Some(entry)
                if entry.generation == state.generation
                    && now.saturating_duration_since(entry.read_at) < MAX_AGE =>
            {
                Lookup::Hit(Arc::clone(&entry.page))
            }
            _ => Lookup::Miss(state.generation),
        }
    }

    /// Keeps what was read for `query` in `generation`, begun at `read_at`;
    /// an answer begun before a change is not kept.
    pub fn keep(
        &self,
        query: &AlertQuery,
        generation: u64,
        read_at: Instant,
        page: &Arc<AlertPage>,
    ) {
        let mut state = self.lock();
        state.drain_changes();
        if state.generation != generation {
            return;
        }
        if state.entries.len() >= MAX_ENTRIES && !state.entries.contains_key(query) {
            state.entries.clear();
        }
        state.entries.insert(
            query.clone(),
            Entry {
                generation,
                read_at,
                page: Arc::clone(page),
            },
        );
    }

    /// Starts a new generation: an alert changed.
    pub fn invalidate(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // The state stays consistent whatever panicked while holding it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl CacheState {
    /// Takes every change heard of since the last look; any starts a new
    /// generation.
    fn drain_changes(&mut self) {
        let Some(changes) = self.changes.as_mut() else {
            return;
        };
        let mut changed = false;
        loop {
            match changes.try_recv() {
                Ok(_) | Err(TryRecvError::Lagged(_)) => changed = true,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => {
                    self.changes = None;
                    changed = true;
                    break;
                }
            }
        }
        if changed {
            self.generation += 1;
            self.entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn page(total: i64) -> Arc<AlertPage> {
        Arc::new(AlertPage {
            items: Vec::new(),
            total,
        })
    }

    fn team(n: u128) -> AlertQuery {
        AlertQuery {
            teams: Some(vec![Uuid::from_u128(n)]),
            ..AlertQuery::default()
        }
    }

    fn change() -> AlertChange {
        AlertChange {
            alert_id: Uuid::from_u128(7),
            patient_id: Uuid::from_u128(8),
            kind: "raised".to_owned(),
        }
    }

    fn cached(cache: &AlertQueryCache, query: &AlertQuery, now: Instant) -> Option<i64> {
        match cache.lookup(query, true, now) {
            Lookup::Hit(page) => Some(page.total),
            Lookup::Miss(_) => None,
        }
    }

    fn fill(cache: &AlertQueryCache, query: &AlertQuery, total: i64, now: Instant) {
        let Lookup::Miss(generation) = cache.lookup(query, true, now) else {
            panic!("expected a miss");
        };
        cache.keep(query, generation, now, &page(total));
    }

    #[test]
    fn an_answer_is_served_until_an_alert_changes() {
        let (sender, receiver) = broadcast::channel(8);
        let cache = AlertQueryCache::default();
        assert!(cache.needs_subscription());
        cache.subscribe(receiver);
        let now = Instant::now();
        fill(&cache, &team(1), 3, now);
        assert_eq!(cached(&cache, &team(1), now), Some(3));
        assert_eq!(cached(&cache, &team(2), now), None, "another team's query");
        // A change heard through the subscription (another instance's write).
        sender.send(change()).unwrap();
        assert_eq!(cached(&cache, &team(1), now), None);
        fill(&cache, &team(1), 4, now);
        assert_eq!(cached(&cache, &team(1), now), Some(4));
        // This instance's own write.
        cache.invalidate();
        assert_eq!(cached(&cache, &team(1), now), None);
    }

    #[test]
    fn an_answer_read_across_a_change_is_not_kept() {
        let (sender, receiver) = broadcast::channel(8);
        let cache = AlertQueryCache::default();
        cache.subscribe(receiver);
        let now = Instant::now();
        let Lookup::Miss(generation) = cache.lookup(&team(1), true, now) else {
            panic!("expected a miss");
        };
        // The query runs; meanwhile an alert changes.
        sender.send(change()).unwrap();
        cache.keep(&team(1), generation, now, &page(3));
        assert_eq!(cached(&cache, &team(1), now), None);
        let Lookup::Miss(generation) = cache.lookup(&team(1), true, now) else {
            panic!("expected a miss");
        };
        cache.invalidate();
        cache.keep(&team(1), generation, now, &page(3));
        assert_eq!(cached(&cache, &team(1), now), None);
    }

    #[test]
    fn nothing_is_served_without_a_listener_or_after_the_longest_age() {
        let (_sender, receiver) = broadcast::channel(8);
        let cache = AlertQueryCache::default();
        let now = Instant::now();
        // No subscription yet: changes may be missed.
        let Lookup::Miss(generation) = cache.lookup(&team(1), true, now) else {
            panic!("expected a miss");
        };
        cache.keep(&team(1), generation, now, &page(3));
        assert_eq!(cached(&cache, &team(1), now), None);
        cache.subscribe(receiver);
        fill(&cache, &team(1), 3, now);
        // The listener lost its connection.
        assert!(matches!(
            cache.lookup(&team(1), false, now),
            Lookup::Miss(_)
        ));
        fill(&cache, &team(1), 3, now);
        assert_eq!(cached(&cache, &team(1), now + MAX_AGE / 2), Some(3));
        assert_eq!(cached(&cache, &team(1), now + MAX_AGE), None);
    }

    #[test]
    fn a_closed_subscription_stops_serving_until_renewed() {
        let (sender, receiver) = broadcast::channel(8);
        let cache = AlertQueryCache::default();
        cache.subscribe(receiver);
        let now = Instant::now();
        fill(&cache, &team(1), 3, now);
        drop(sender);
        assert_eq!(cached(&cache, &team(1), now), None);
        assert!(cache.needs_subscription());
    }

    #[test]
    fn a_lagging_subscription_counts_as_a_change() {
        let (sender, receiver) = broadcast::channel(2);
        let cache = AlertQueryCache::default();
        cache.subscribe(receiver);
        let now = Instant::now();
        fill(&cache, &team(1), 3, now);
        for _ in 0..5 {
            sender.send(change()).unwrap();
        }
        assert_eq!(cached(&cache, &team(1), now), None);
        fill(&cache, &team(1), 4, now);
        assert_eq!(cached(&cache, &team(1), now), Some(4));
    }
}
