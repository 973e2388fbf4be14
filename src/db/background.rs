//! The database's background lane: one thread, started on first use, for writes no
//! request waits on (the observations polls queue). It runs at a lower scheduling
//! priority than the threads that answer requests, so when the cores are busy a
//! poll answered from memory is not kept waiting behind a batch of history rows;
//! when they are idle the lane runs at full speed. Its work runs one task at a
//! time, in the order given.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::OnceLock;

/// How far below the request threads the lane runs (a nice value: at 10 it gets
/// about a tenth of a core contended with request threads, all of an idle one).
pub const BACKGROUND_NICE: i32 = 10;

type Task = Box<dyn FnOnce() + Send>;

/// The lane's queue, its thread started by the first task. The thread ends when the
/// lane is dropped (with the last clone of its [`Db`](super::Db)).
pub struct Lane {
    thread: QueueThread<Task>,
}

impl Default for Lane {
    fn default() -> Self {
        Lane {
            thread: QueueThread::new("db-background"),
        }
    }
}

impl Lane {
    /// Queues `task`; false when the thread could not be started (or has gone),
    /// and the task was dropped unrun.
    pub fn send(&self, task: Task) -> bool {
        self.thread.send(task, || {
            |receiver: mpsc::Receiver<Task>| {
                lower_priority();
                for task in receiver {
                    // A panicking task is its caller's failure (its answer channel
                    // closes unanswered); the lane goes on with the next.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(task));
                }
            }
        })
    }
}

/// A named thread that takes what is sent to it from a queue, started by the first
/// item sent; it ends when its queue is dropped.
pub struct QueueThread<T> {
    name: &'static str,
    queue: OnceLock<mpsc::Sender<T>>,
}

impl<T: Send + 'static> QueueThread<T> {
    pub fn new(name: &'static str) -> Self {
        QueueThread {
            name,
            queue: OnceLock::new(),
        }
    }

    /// Queues `item`, starting the thread when none runs yet with the body `start`
    /// makes (which takes the queue); false when the thread could not be started
    /// (or has gone) and `item` was dropped.
    pub fn send<B>(&self, item: T, start: impl FnOnce() -> B) -> bool
    where
        B: FnOnce(mpsc::Receiver<T>) + Send + 'static,
    {
        if let Some(queue) = self.queue.get() {
            return queue.send(item).is_ok();
        }
        let body = start();
        let (sender, receiver) = mpsc::channel::<T>();
        match std::thread::Builder::new()
            .name(self.name.into())
            .spawn(move || body(receiver))
        {
            Ok(_) => {
                // Another caller may have started a thread first; its thread is
                // kept, and this one ends as its sender is dropped here.
                let _ = self.queue.set(sender);
                self.queue.get().is_some_and(|queue| queue.send(item).is_ok())
            }
            Err(err) => {
                tracing::error!(error = %err, thread = self.name, "a database thread could not be started");
                false
            }
        }
    }
}

/// Lowers the calling thread's scheduling priority by [`BACKGROUND_NICE`]. On Linux
/// the nice value is the thread's own. Where it cannot be lowered the lane runs at
/// the usual priority, which is correct, only less kind to requests.
fn lower_priority() {
    match rustix::process::getpriority_process(None) {
        Ok(now) => {
            if let Err(err) = rustix::process::setpriority_process(None, (now + BACKGROUND_NICE).min(19)) {
                tracing::warn!(error = %err, "the database's background thread keeps the usual priority");
            }
        }
        Err(err) => tracing::warn!(error = %err, "the database's background thread keeps the usual priority"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_in_order_on_one_lowered_thread_and_a_panic_does_not_end_it() {
        let lane = Lane::default();
        let (done, results) = mpsc::channel();
        for n in 0..5 {
            let done = done.clone();
            assert!(lane.send(Box::new(move || {
                let nice = rustix::process::getpriority_process(None).unwrap();
                done.send((n, std::thread::current().id(), nice)).unwrap();
            })));
        }
        assert!(lane.send(Box::new(|| panic!("a failing task"))));
        let after = done.clone();
        assert!(lane.send(Box::new(move || after
            .send((5, std::thread::current().id(), 0))
            .unwrap())));
        drop(done);
        let seen: Vec<_> = results.iter().take(6).collect();
        assert_eq!(seen.iter().map(|(n, _, _)| *n).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
        assert!(seen.iter().all(|(_, thread, _)| *thread == seen[0].1), "one thread");
        assert_ne!(seen[0].1, std::thread::current().id());
        let own = rustix::process::getpriority_process(None).unwrap();
        assert_eq!(seen[0].2, (own + BACKGROUND_NICE).min(19), "lowered by BACKGROUND_NICE");
    }
}
