//! The instance slots of one runtime: at most `max_instances` adapter
//! instances alive at once, whether they serve a call or wait, warm, for
//! their host's next one. Hosts keep idle instances to skip instantiating
//! and configuring on every call; those instances hold slots, so the slots
//! give them back on demand: a call that finds no free slot first has an
//! idle instance of any host on the runtime dropped, and a host done with
//! a call drops its instance instead of keeping it while a call waits.
//!
//! Invariant: no call waits for a slot while an idle instance holds one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One slot, given back when dropped.
pub(crate) type Slot = OwnedSemaphorePermit;

/// Something that keeps idle instances, each holding a slot.
pub(crate) trait Idle: Send + Sync {
    /// Drops its longest-idle instance, freeing that slot; false when it
    /// keeps none.
    fn release_one(&self) -> bool;
}

/// The slots of one runtime, and who keeps idle instances in them.
pub(crate) struct Slots {
    semaphore: Arc<Semaphore>,
    /// Calls waiting for a slot now.
    waiting: AtomicUsize,
    keepers: Mutex<Vec<Weak<dyn Idle>>>,
}

impl Slots {
    pub(crate) fn new(slots: usize) -> Slots {
        Slots {
            semaphore: Arc::new(Semaphore::new(slots)),
            waiting: AtomicUsize::new(0),
            keepers: Mutex::new(Vec::new()),
        }
    }

    /// Lets the slots take idle instances back from `keeper` when a call
    /// needs one. It is forgotten once dropped.
    pub(crate) fn register(&self, keeper: Weak<dyn Idle>) {
        let mut keepers = lock(&self.keepers);
        keepers.retain(|k| k.strong_count() > 0);
        keepers.push(keeper);
    }

    /// A free slot, or one an idle instance gave back; otherwise waits for
    /// a call to end. Cancel-safe.
    pub(crate) async fn acquire(&self) -> Slot {
        if let Ok(slot) = Arc::clone(&self.semaphore).try_acquire_owned() {
            return slot;
        }
        // Counted before the keepers are asked, so that an instance kept
        // after they were asked sees this call and gives its slot up.
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _counted = Waiting(&self.waiting);
        loop {
            if let Ok(slot) = Arc::clone(&self.semaphore).try_acquire_owned() {
                return slot;
            }
            if !self.release_idle() {
                break;
            }
        }
        Arc::clone(&self.semaphore)
            .acquire_owned()
            .await
            .expect("the instance semaphore is never closed")
    }

    /// Whether a call waits for a slot: an instance done with its call
    /// then gives its slot up rather than stay warm.
    pub(crate) fn wanted(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    /// Has one keeper drop one idle instance; false when none keeps any.
    fn release_idle(&self) -> bool {
        // Upgraded outside the lock: the last reference to a keeper may be
        // one of these, and dropping it drops a host's instances.
        let keepers: Vec<Arc<dyn Idle>> = {
            let mut keepers = lock(&self.keepers);
            keepers.retain(|k| k.strong_count() > 0);
            keepers.iter().filter_map(Weak::upgrade).collect()
        };
        keepers.iter().any(|keeper| keeper.release_one())
    }
}

/// Counts a waiting call for as long as it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Idle "instances" that are slots alone.
    struct Keeper(Mutex<Vec<Slot>>);

    impl Idle for Keeper {
        fn release_one(&self) -> bool {
            let mut idle = lock(&self.0);
            if idle.is_empty() {
                return false;
            }
            drop(idle.remove(0));
            true
        }
    }

    #[tokio::test]
    async fn a_call_takes_the_slot_of_an_idle_instance_instead_of_waiting() {
        let slots = Slots::new(2);
        let keeper = Arc::new(Keeper(Mutex::new(Vec::new())));
        slots.register(Arc::downgrade(&keeper) as Weak<dyn Idle>);
        let first = slots.acquire().await;
        let second = slots.acquire().await;
        lock(&keeper.0).extend([first, second]);
        let _third = slots.acquire().await;
        assert_eq!(lock(&keeper.0).len(), 1, "one idle instance gave its slot");
        assert!(!slots.wanted());
    }

    #[tokio::test]
    async fn a_waiting_call_is_seen_until_it_gets_its_slot() {
        let slots = Arc::new(Slots::new(1));
        let busy = slots.acquire().await;
        let waiter = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.acquire().await }
        });
        while !slots.wanted() {
            tokio::task::yield_now().await;
        }
        drop(busy);
        let _slot = waiter.await.unwrap();
        assert!(!slots.wanted());
    }

    #[tokio::test]
    async fn a_dropped_keeper_is_forgotten() {
        let slots = Slots::new(1);
        let keeper = Arc::new(Keeper(Mutex::new(Vec::new())));
        slots.register(Arc::downgrade(&keeper) as Weak<dyn Idle>);
        drop(keeper);
        assert!(!slots.release_idle());
        assert!(lock(&slots.keepers).is_empty());
    }
}
