//! Shards: the threads that serve client connections, one single-threaded
//! runtime each.
//!
//! Every shard accepts on its own copy of the listening socket, and from then
//! on everything a connection does, its requests, their upstream calls and
//! the upstream connections they use, runs on that shard's thread. A request
//! never waits for another thread to be woken, and no runtime looks for work
//! to steal: on a small machine where the load, the upstream and the gateway
//! share the cores, those wake-ups cost as much as the proxying itself.
//!
//! [`Balance`] keeps the shards' connection counts even: a shard accepts only
//! while no other shard holds fewer connections, so a burst of new clients is
//! dealt out in turn instead of landing on whichever thread woke first.
//!
//! Each shard thread has a process-unique id ([`current`]; 0 on any other
//! thread). A socket belongs to the runtime that opened it, so the upstream
//! pool ([`crate::http1::client`]) hands a connection only to the shard that made it.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

thread_local! {
    static CURRENT: Cell<u32> = const { Cell::new(0) };
}

static NEXT: AtomicU32 = AtomicU32::new(1);

/// The id of the shard running on this thread, or 0 off the shards.
pub fn current() -> u32 {
    CURRENT.with(Cell::get)
}

/// This thread's slot among `n` per-shard slots: the shard id modulo `n`, so
/// the shards of a process's first gateway (ids 1, 2, ...) each have one of
/// their own when `n` exceeds their count, and every other thread takes 0.
pub fn slot(n: usize) -> usize {
    current() as usize % n
}

/// How many slots the fixed-size per-shard structures have: the pending-id
/// map, the capture queue's byte counts and the upstream pool's idle lists.
///
/// Each slot that threads write is a `crossbeam_utils::CachePadded`, which
/// gives it room of its own: two cache lines on x86-64 and aarch64 (a core
/// fetches lines in adjacent pairs), so neighbouring slots written by
/// different threads never share one.
pub const SLOTS: usize = 16;

/// The running thread's place among [`SLOTS`] slots (see [`slot`]), kept
/// with what it put somewhere so the thread that takes it out finds its slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot(u8);

impl Slot {
    pub fn current() -> Slot {
        Slot(slot(SLOTS) as u8)
    }

    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The slot with this index (taken modulo [`SLOTS`]).
    pub fn at(index: usize) -> Slot {
        Slot((index % SLOTS) as u8)
    }
}

/// The running shards and the way to stop them.
pub struct Shards {
    shards: Vec<Shard>,
}

struct Shard {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Shards {
    /// Starts `count` (at least one) shard threads.
    pub fn start(count: usize) -> std::io::Result<Shards> {
        let mut shards = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(format!("flywheel-shard-{i}-blocking"))
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("flywheel-shard-{i}"))
                .spawn(move || {
                    CURRENT.with(|c| c.set(NEXT.fetch_add(1, Ordering::Relaxed)));
                    // The runtime runs its tasks only while this thread waits
                    // here; dropping it afterwards cancels what is left.
                    let _ = runtime.block_on(stopped);
                })?;
            shards.push(Shard {
                handle,
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(Shards { shards })
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// Runs `task` on shard `index` (modulo the count). Anything the task
    /// opens (sockets, timers, spawned tasks) belongs to that shard.
    pub fn spawn_on<F>(&self, index: usize, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shards[index % self.shards.len()].handle.spawn(task)
    }

    /// Stops every shard, cancelling the tasks still running there, and waits
    /// for their threads to end.
    pub async fn stop(mut self) {
        let threads: Vec<_> = self
            .shards
            .iter_mut()
            .filter_map(|s| {
                if let Some(stop) = s.stop.take() {
                    let _ = stop.send(());
                }
                s.thread.take()
            })
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        for s in &mut self.shards {
            if let Some(stop) = s.stop.take() {
                let _ = stop.send(());
            }
        }
    }
}

/// Open connections per shard, and a signal to each shard when it may take
/// connections again. The counts are read and written sequentially
/// consistent: two shards counting a connection at the same moment must each
/// see the other's count, or both could decide it is not their turn and wait
/// with nobody to wake them. It costs nothing per request, only per connection.
pub struct Balance {
    open: Box<[AtomicUsize]>,
    turn: Box<[Notify]>,
}

impl Balance {
    pub fn new(shards: usize) -> Balance {
        Balance {
            open: (0..shards.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            turn: (0..shards.max(1)).map(|_| Notify::new()).collect(),
        }
    }

    /// The open connections of all shards together.
    pub fn total(&self) -> usize {
        self.open.iter().map(|n| n.load(Ordering::SeqCst)).sum()
    }

    /// The open connections of each shard.
    pub fn open_counts(&self) -> Vec<usize> {
        self.open.iter().map(|n| n.load(Ordering::SeqCst)).collect()
    }

    /// Whether `shard` may take the next connection: no shard has fewer. Some
    /// shard always may, so connections never wait for a turn.
    pub fn may_accept(&self, shard: usize) -> bool {
        let mine = self.open[shard].load(Ordering::SeqCst);
        self.open.iter().all(|n| mine <= n.load(Ordering::SeqCst))
    }

    /// Resolves when `shard` may have become free to accept again. Create it
    /// (and `enable` it) before asking [`Balance::may_accept`], so that no
    /// change is missed between.
    pub fn turn(&self, shard: usize) -> tokio::sync::futures::Notified<'_> {
        self.turn[shard].notified()
    }

    /// Counts a connection on `shard` until the returned guard is dropped.
    pub fn opened(self: &Arc<Self>, shard: usize) -> Open {
        let before = self.open[shard].fetch_add(1, Ordering::SeqCst);
        // Only when this shard held the fewest alone does the least count
        // rise, and the shards now at it get their turn: a wake-up of another
        // thread only then, not for every connection.
        let others = (0..self.open.len()).filter(|&s| s != shard);
        let least_other = others
            .clone()
            .map(|s| self.open[s].load(Ordering::SeqCst))
            .min();
        if let Some(least) = least_other.filter(|&least| before < least) {
            if before + 1 >= least {
                for s in others.filter(|&s| self.open[s].load(Ordering::SeqCst) == least) {
                    self.turn[s].notify_one();
                }
            }
        }
        Open {
            balance: self.clone(),
            shard,
        }
    }
}

/// One open connection, counted in its shard's [`Balance`] while it lives.
pub struct Open {
    balance: Arc<Balance>,
    shard: usize,
}

impl Drop for Open {
    fn drop(&mut self) {
        let b = &self.balance;
        b.open[self.shard].fetch_sub(1, Ordering::SeqCst);
        // A falling count can only give this shard its turn; the connection
        // ends on this shard's thread, so this wake-up stays on it.
        b.turn[self.shard].notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_shard_is_one_thread_with_its_own_id() {
        let shards = Shards::start(2).unwrap();
        let mut seen = Vec::new();
        for i in 0..4 {
            let who = shards.spawn_on(i, async {
                (current(), std::thread::current().name().map(String::from))
            });
            seen.push(who.await.unwrap());
        }
        assert_eq!(current(), 0, "the test's own thread is no shard");
        assert_ne!(seen[0].0, 0);
        assert_ne!(seen[0].0, seen[1].0);
        assert_eq!(seen[0], seen[2]);
        assert_eq!(seen[1], seen[3]);
        assert_eq!(seen[0].1.as_deref(), Some("flywheel-shard-0"));
        shards.stop().await;
    }

    #[test]
    fn only_the_least_loaded_shards_may_accept() {
        let balance = Arc::new(Balance::new(3));
        assert!((0..3).all(|s| balance.may_accept(s)));
        let a = balance.opened(0);
        assert!(!balance.may_accept(0) && balance.may_accept(1) && balance.may_accept(2));
        let _b = balance.opened(1);
        let _c = balance.opened(2);
        assert!((0..3).all(|s| balance.may_accept(s)));
        let _d = balance.opened(2);
        drop(a);
        assert!(balance.may_accept(0) && !balance.may_accept(1) && !balance.may_accept(2));
    }

    #[tokio::test]
    async fn a_shard_waiting_for_its_turn_is_told_when_it_comes() {
        let balance = Arc::new(Balance::new(2));
        let _a = balance.opened(0);
        assert!(!balance.may_accept(0));
        let turn = balance.turn(0);
        tokio::pin!(turn);
        turn.as_mut().enable();
        // Shard 1 catches up: the least count rises to shard 0's.
        let _b = balance.opened(1);
        tokio::time::timeout(std::time::Duration::from_secs(1), turn)
            .await
            .expect("shard 0 is told");
        assert!(balance.may_accept(0));
    }

    #[tokio::test]
    async fn stopping_cancels_what_is_still_running() {
        let shards = Shards::start(1).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        shards.spawn_on(0, async move {
            let _keep = tx;
            std::future::pending::<()>().await;
        });
        shards.stop().await;
        assert!(rx.await.is_err(), "the task's sender was dropped with it");
    }
}
