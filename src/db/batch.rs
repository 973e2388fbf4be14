//! Small writes that commit together, on SQLite. One process at a time writes a
//! SQLite file, and each transaction pays for its own commit (the WAL frames of every
//! page it touched) and, on a pooled connection that another one wrote through
//! last, for reading its pages again. A burst of small writes from many requests (a
//! fleet's install reports) is taken by one writer thread instead: it runs the
//! writes waiting, up to [`BATCH`], in one transaction, each in a savepoint of its
//! own so that one that fails takes back only itself, and answers each once the
//! whole has committed. It keeps its connection while writes keep coming.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use diesel::r2d2::Pool;
use diesel::Connection;

use super::background::QueueThread;
use super::breaker::Breaker;
use super::{ConnectionManager, DbConnection, RunError};

/// The most writes one transaction takes.
pub const BATCH: usize = 64;

/// One write waiting for the writer.
pub trait Write: Send {
    /// Runs the write on the batch's connection, inside the batch's transaction.
    fn run(&mut self, conn: &mut DbConnection);
    /// Answers its caller once the batch's fate is known: what the write came to,
    /// or why it was not committed.
    fn answer(self: Box<Self>, committed: Result<(), String>);
}

/// A write and where its answer goes.
pub struct Pending<F, T, E> {
    work: Option<F>,
    done: Option<Result<T, E>>,
    reply: tokio::sync::oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> Pending<F, T, E> {
    pub fn new(work: F, reply: tokio::sync::oneshot::Sender<Result<T, E>>) -> Self {
        Pending {
            work: Some(work),
            done: None,
            reply,
        }
    }
}

impl<F, T, E> Write for Pending<F, T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send,
    T: Send,
    E: From<RunError> + From<diesel::result::Error> + Send,
{
    fn run(&mut self, conn: &mut DbConnection) {
        if let Some(work) = self.work.take() {
            // Nested in the batch's transaction, this is a savepoint: an error
            // takes back this write alone.
            self.done = Some(conn.transaction(work));
        }
    }

    fn answer(self: Box<Self>, committed: Result<(), String>) {
        let answer = match (self.done, committed) {
            // Taken back either way.
            (Some(Err(err)), _) => Err(err),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(why)) => Err(RunError::Unavailable(why).into()),
            (None, Ok(())) => Err(RunError::Crashed("the write was not run".into()).into()),
        };
        let _ = self.reply.send(answer);
    }
}

/// The writer thread, started by the first write, and how many transactions it
/// committed.
pub struct Writer {
    thread: QueueThread<Box<dyn Write>>,
    batches: Arc<AtomicU64>,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            thread: QueueThread::new("db-writer"),
            batches: Arc::default(),
        }
    }
}

impl Writer {
    /// Queues `write` for the writer, which takes its connections from `pool`;
    /// false when the thread could not be started (or has gone).
    pub fn send(&self, write: Box<dyn Write>, pool: &Pool<ConnectionManager>, breaker: &Arc<Breaker>) -> bool {
        self.thread.send(write, || {
            let (pool, breaker, batches) = (pool.clone(), breaker.clone(), self.batches.clone());
            move |queue: mpsc::Receiver<Box<dyn Write>>| {
                while let Ok(first) = queue.recv() {
                    // A panicking write fails the writes of its batch (their answers
                    // go unsent), its connection is let go as broken, and the writer
                    // goes on with the next writes.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        serve(&pool, &breaker, &queue, first, &batches);
                    }));
                }
            }
        })
    }

    /// How many transactions the writer has committed.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
}

/// Takes a connection and writes batches on it while writes keep coming.
fn serve(
    pool: &Pool<ConnectionManager>,
    breaker: &Breaker,
    queue: &mpsc::Receiver<Box<dyn Write>>,
    first: Box<dyn Write>,
    batches: &AtomicU64,
) {
    let mut conn = match pool.get() {
        Ok(conn) => {
            breaker.succeeded();
            conn
        }
        Err(err) => {
            breaker.failed(Instant::now());
            // The writes waiting now are told at once, not each after its own wait.
            let why = format!("database pool: {err}");
            first.answer(Err(why.clone()));
            while let Ok(write) = queue.try_recv() {
                write.answer(Err(why.clone()));
            }
            return;
        }
    };
    let mut batch = vec![first];
    loop {
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let committed = conn
            .write_transaction(|conn| {
                for write in &mut batch {
                    write.run(conn);
                }
                Ok::<_, diesel::result::Error>(())
            })
            .map_err(|err| format!("committing a batch of writes: {err}"));
        if committed.is_ok() {
            batches.fetch_add(1, Ordering::Relaxed);
        }
        for write in batch.drain(..) {
            write.answer(committed.clone());
        }
        match queue.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use diesel::connection::SimpleConnection;
    use diesel::sql_types::BigInt;
    use diesel::RunQueryDsl;

    use super::super::{DatabaseUrl, Db};
    use super::*;

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    type Answer = Result<(i64, Option<String>), RunError>;

    /// A write of `n` into the test table; the seventh fails after writing.
    fn write_of(db: &Db, n: i64) -> Pin<Box<dyn Future<Output = Answer> + '_>> {
        Box::pin(db.write(move |conn| {
            diesel::sql_query(format!("INSERT INTO batch_test (n) VALUES ({n})")).execute(conn)?;
            if n == 7 {
                return Err(RunError::Crashed("write 7 fails after writing".into()));
            }
            Ok((n, std::thread::current().name().map(String::from)))
        }))
    }

    #[tokio::test]
    async fn writes_waiting_together_commit_in_one_transaction_and_one_that_fails_takes_back_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&DatabaseUrl::Sqlite(dir.path().join("batch.db")), 4).unwrap();
        db.run(|conn| {
            conn.batch_execute("CREATE TABLE batch_test (n BIGINT PRIMARY KEY)")
                .map_err(RunError::from)
        })
        .await
        .unwrap();
        // The first write holds the writer until the other 49 are queued behind it.
        let (started, running) = tokio::sync::oneshot::channel();
        let (open_gate, gate) = std::sync::mpsc::channel::<()>();
        let writer = db.clone();
        let first = tokio::spawn(async move {
            writer
                .write(move |conn| {
                    diesel::sql_query("INSERT INTO batch_test (n) VALUES (0)").execute(conn)?;
                    started.send(()).unwrap();
                    gate.recv().unwrap();
                    Ok::<_, RunError>(0)
                })
                .await
        });
        running.await.unwrap();
        let mut rest: Vec<_> = (1..50).map(|n| write_of(&db, n)).collect();
        let mut cx = Context::from_waker(Waker::noop());
        for write in &mut rest {
            // Polled once, each write is on the writer's queue.
            assert!(matches!(write.as_mut().poll(&mut cx), Poll::Pending));
        }
        open_gate.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 0);
        let mut answers = Vec::new();
        for write in rest {
            answers.push(write.await);
        }
        assert_eq!(db.write_batches(), 2, "the first write alone, then the 49 that waited");
        for (n, answer) in (1..50).zip(&answers) {
            match answer {
                Err(err) => {
                    assert_eq!(n, 7);
                    assert!(err.to_string().contains("write 7 fails"), "{err}");
                }
                Ok((written, thread)) => {
                    assert_eq!(*written, n);
                    assert_eq!(thread.as_deref(), Some("db-writer"));
                }
            }
        }
        let stored: Vec<i64> = db
            .run(|conn| {
                diesel::sql_query("SELECT n FROM batch_test ORDER BY n")
                    .load::<Row>(conn)
                    .map_err(RunError::from)
            })
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.n)
            .collect();
        assert_eq!(stored, (0..50).filter(|n| *n != 7).collect::<Vec<_>>());

        // A write that panics fails, and the writer goes on with the next.
        let panicked = db
            .write(|_conn| -> Result<(), RunError> { panic!("a failing write") })
            .await;
        assert!(matches!(panicked, Err(RunError::Crashed(_))), "{panicked:?}");
        assert_eq!(write_of(&db, 60).await.unwrap().0, 60);
    }
}
