//! Shards: the threads that serve client connections, one single-threaded
//! runtime each.
//!
//! The listener's loop hands each accepted connection to the next shard in
//! turn, and from then on everything that connection does, its requests, their
//! upstream calls and the upstream connections they use, runs on that shard's
//! thread. A request never waits for another thread to be woken, and no
//! runtime looks for work to steal: on a small machine where the load, the
//! upstream and the gateway share the cores, those wake-ups cost as much as
//! the proxying itself.
//!
//! Each shard thread has a process-unique id ([`current`]; 0 on any other
//! thread). A socket belongs to the runtime that opened it, so the upstream
//! pool ([`super::h1`]) hands a connection only to the shard that made it.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

thread_local! {
    static CURRENT: Cell<u32> = const { Cell::new(0) };
}

static NEXT: AtomicU32 = AtomicU32::new(1);

/// The id of the shard running on this thread, or 0 off the shards.
pub fn current() -> u32 {
    CURRENT.with(Cell::get)
}

/// The running shards and the way to stop them.
pub struct Shards {
    shards: Vec<Shard>,
    next: usize,
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
        Ok(Shards { shards, next: 0 })
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// Runs `task` on the next shard in turn. Anything the task opens (sockets,
    /// timers, spawned tasks) belongs to that shard.
    pub fn spawn<F>(&mut self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let shard = &self.shards[self.next];
        self.next = (self.next + 1) % self.shards.len();
        drop(shard.handle.spawn(task));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_go_round_robin_and_each_shard_has_its_own_id() {
        let mut shards = Shards::start(2).unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            shards.spawn(async move {
                let _ = tx.send((current(), std::thread::current().name().map(String::from)));
            });
            seen.push(rx.await.unwrap());
        }
        assert_eq!(current(), 0, "the test's own thread is no shard");
        assert_ne!(seen[0].0, 0);
        assert_ne!(seen[0].0, seen[1].0);
        assert_eq!(seen[0], seen[2]);
        assert_eq!(seen[1], seen[3]);
        assert_eq!(seen[0].1.as_deref(), Some("flywheel-shard-0"));
        shards.stop().await;
    }

    #[tokio::test]
    async fn stopping_cancels_what_is_still_running() {
        let mut shards = Shards::start(1).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        shards.spawn(async move {
            let _keep = tx;
            std::future::pending::<()>().await;
        });
        shards.stop().await;
        assert!(rx.await.is_err(), "the task's sender was dropped with it");
    }
}
