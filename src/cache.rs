//! A bounded TTL cache with single-flight: concurrent lookups of the same key share one
//! computation, which runs in its own task so a caller giving up (its deadline passed) does not
//! cancel the work others wait for.
//!
//! The computation decides how long its result lives: verification results are kept for a long
//! TTL when positive, a short one when definitely negative, and not at all when the failure was
//! transient (registry down, timeout).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// How a lookup was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A stored, unexpired result.
    Hit,
    /// Joined a computation another caller started.
    Shared,
    /// Started the computation.
    Miss,
}

impl Lookup {
    pub fn as_str(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Shared => "shared",
            Lookup::Miss => "miss",
        }
    }
}

type Pending<V> = Shared<BoxFuture<'static, Option<V>>>;

enum Slot<V> {
    Ready { value: V, expires: Instant },
    Pending(Pending<V>),
}

/// A cache of `V` by `K`.
pub struct Cache<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
    capacity: usize,
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache holding at most `capacity` results (pending computations included).
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Cache {
            slots: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        })
    }

    /// The cached value of `key`, or the result of `compute`, which returns the value and how
    /// long to keep it (`None`: do not keep). `compute` runs at most once at a time per key.
    ///
    /// Returns `None` only if the computation panicked or its task was aborted.
    pub async fn get_or_compute<F, Fut>(self: &Arc<Self>, key: K, compute: F) -> (Option<V>, Lookup)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = (V, Option<Duration>)> + Send + 'static,
    {
        let (pending, lookup) = {
            let mut slots = match self.slots.lock() {
                Ok(slots) => slots,
                Err(poisoned) => poisoned.into_inner(),
            };
            match slots.get(&key) {
                Some(Slot::Ready { value, expires }) if *expires > Instant::now() => {
                    return (Some(value.clone()), Lookup::Hit);
                }
                Some(Slot::Pending(pending)) => (pending.clone(), Lookup::Shared),
                _ => {
                    let pending = self.spawn(key.clone(), compute());
                    self.make_room(&mut slots);
                    slots.insert(key, Slot::Pending(pending.clone()));
                    (pending, Lookup::Miss)
                }
            }
        };
        (pending.await, lookup)
    }

    fn spawn<Fut>(self: &Arc<Self>, key: K, computation: Fut) -> Pending<V>
    where
        Fut: Future<Output = (V, Option<Duration>)> + Send + 'static,
    {
        let cache = Arc::clone(self);
        let task = tokio::spawn(async move {
            let (value, ttl) = computation.await;
            cache.settle(key, value.clone(), ttl);
            value
        });
        async move { task.await.ok() }.boxed().shared()
    }

    /// Stores a finished computation, or forgets the key when the result must not be kept.
    fn settle(&self, key: K, value: V, ttl: Option<Duration>) {
        let mut slots = match self.slots.lock() {
            Ok(slots) => slots,
            Err(poisoned) => poisoned.into_inner(),
        };
        match ttl {
            Some(ttl) if !ttl.is_zero() => {
                slots.insert(
                    key,
                    Slot::Ready {
                        value,
                        expires: Instant::now() + ttl,
                    },
                );
            }
            _ => {
                slots.remove(&key);
            }
        }
    }

    /// Drops expired entries, then, if still full, the entries closest to expiry.
    fn make_room(&self, slots: &mut HashMap<K, Slot<V>>) {
        if slots.len() < self.capacity {
            return;
        }
        let now = Instant::now();
        slots.retain(|_, slot| match slot {
            Slot::Ready { expires, .. } => *expires > now,
            Slot::Pending(_) => true,
        });
        if slots.len() < self.capacity {
            return;
        }
        let mut ready: Vec<(K, Instant)> = slots
            .iter()
            .filter_map(|(key, slot)| match slot {
                Slot::Ready { expires, .. } => Some((key.clone(), *expires)),
                Slot::Pending(_) => None,
            })
            .collect();
        ready.sort_by_key(|(_, expires)| *expires);
        let excess = slots.len() + 1 - self.capacity;
        for (key, _) in ready.into_iter().take(excess.max(self.capacity / 10)) {
            slots.remove(&key);
        }
    }

    /// Entries held (ready and pending).
    pub fn len(&self) -> usize {
        match self.slots.lock() {
            Ok(slots) => slots.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_lookups_share_one_computation() {
        let cache: Arc<Cache<&str, u32>> = Cache::new(10);
        let runs = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let lookups = (0..20).map(|_| {
            let runs = Arc::clone(&runs);
            let release = Arc::clone(&release);
            let cache = Arc::clone(&cache);
            async move {
                cache
                    .get_or_compute("digest", move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        (7, Some(Duration::from_secs(60)))
                    })
                    .await
            }
        });
        let all = futures::future::join_all(lookups);
        let releaser = async {
            while cache.is_empty() || runs.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
            release.notify_one();
        };
        let (results, ()) = tokio::join!(all, releaser);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|(v, _)| *v == Some(7)));
        assert_eq!(
            results.iter().filter(|(_, l)| *l == Lookup::Miss).count(),
            1
        );
        assert_eq!(
            results.iter().filter(|(_, l)| *l == Lookup::Shared).count(),
            19
        );
        let (value, lookup) = cache.get_or_compute("digest", || async { (8, None) }).await;
        assert_eq!((value, lookup), (Some(7), Lookup::Hit));
    }

    #[tokio::test]
    async fn uncached_and_expired_results_are_recomputed() {
        let cache: Arc<Cache<u8, &str>> = Cache::new(10);
        assert_eq!(
            cache
                .get_or_compute(1, || async { ("transient", None) })
                .await
                .1,
            Lookup::Miss
        );
        assert!(cache.is_empty(), "a result without TTL is not kept");
        let (value, lookup) = cache
            .get_or_compute(1, || async { ("fresh", Some(Duration::from_millis(1))) })
            .await;
        assert_eq!((value, lookup), (Some("fresh"), Lookup::Miss));
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (value, lookup) = cache
            .get_or_compute(1, || async { ("again", Some(Duration::from_secs(60))) })
            .await;
        assert_eq!((value, lookup), (Some("again"), Lookup::Miss));
    }

    #[tokio::test]
    async fn a_caller_giving_up_does_not_cancel_the_computation() {
        let cache: Arc<Cache<u8, u8>> = Cache::new(10);
        let release = Arc::new(tokio::sync::Notify::new());
        let waiting = {
            let release = Arc::clone(&release);
            cache.get_or_compute(1, move || async move {
                release.notified().await;
                (42, Some(Duration::from_secs(60)))
            })
        };
        // The first caller times out and is dropped.
        assert!(
            tokio::time::timeout(Duration::from_millis(10), waiting)
                .await
                .is_err()
        );
        release.notify_one();
        let (value, lookup) = cache.get_or_compute(1, || async { (0, None) }).await;
        assert_eq!(value, Some(42));
        assert_ne!(lookup, Lookup::Miss);
    }

    #[tokio::test]
    async fn size_is_bounded() {
        let cache: Arc<Cache<u32, u32>> = Cache::new(50);
        for key in 0..500 {
            cache
                .get_or_compute(
                    key,
                    move || async move { (key, Some(Duration::from_secs(60))) },
                )
                .await;
        }
        assert!(cache.len() <= 50, "{} entries", cache.len());
        // The newest entry survives eviction.
        assert_eq!(
            cache.get_or_compute(499, || async { (0, None) }).await.1,
            Lookup::Hit
        );
    }
}
