//! The database: one connection type over SQLite and PostgreSQL (chosen by the URL
//! scheme, never by trying), its pool, the embedded migrations of both backends, and
//! the bridge that runs blocking diesel work off the async executor. Backend-specific
//! SQL lives in this module and nowhere else; models and handlers are written once.

pub mod background;
pub mod batch;
pub mod breaker;
pub mod models;
pub mod schema;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// A connection to whichever backend the configuration names.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl DbConnection {
    /// Runs `work` in a transaction that writes. On SQLite the outermost one begins
    /// with `BEGIN IMMEDIATE`, taking the write lock at once: a deferred transaction
    /// that read first fails at its first write with "database is locked" whenever
    /// another writer committed in between, where this one waits its turn (the
    /// connection's busy timeout). Nested, it is a savepoint as usual.
    pub fn write_transaction<T, E, F>(&mut self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        let DbConnection::Sqlite(sqlite) = self else {
            return self.transaction(work);
        };
        let outermost = AnsiTransactionManager::transaction_manager_status_mut(sqlite)
            .transaction_depth()?
            .is_none();
        if !outermost {
            return self.transaction(work);
        }
        // One writer of this process at a time waits for the write lock here, in
        // turn, instead of in SQLite's busy handler, which sleeps 1 to 100 ms between
        // tries while the lock it waits for may already be free: under a burst of
        // writes from every pooled connection, that sleeping, not the writes, set
        // the pace.
        let _turn = SQLITE_WRITER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
        let outcome = work(self);
        let DbConnection::Sqlite(sqlite) = self else {
            unreachable!("the connection's backend does not change");
        };
        match outcome {
            Ok(value) => {
                AnsiTransactionManager::commit_transaction(sqlite)?;
                Ok(value)
            }
            Err(e) => {
                AnsiTransactionManager::rollback_transaction(sqlite)?;
                Err(e)
            }
        }
    }
}

/// Held by the SQLite transaction that writes, from its `BEGIN IMMEDIATE` to its
/// end (see [`DbConnection::write_transaction`]). One for the process: a server
/// opens one database, and a transaction never waits on another thread while
/// holding it.
static SQLITE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The backend type that queries against [`DbConnection`] are built for.
pub type DbBackend = <DbConnection as Connection>::Backend;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Where the database lives, parsed from the configured URL.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// `postgres://` or `postgresql://` selects PostgreSQL; `sqlite://path` or a bare
    /// path selects SQLite; any other scheme is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let url = url::Url::parse(text).map_err(|err| format!("not a valid PostgreSQL URL: {err}"))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err("the PostgreSQL URL has no host".into());
            }
            return Ok(DatabaseUrl::Postgres(text.to_owned()));
        }
        if let Some(path) = text.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("the SQLite URL has no file path".into());
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "`{scheme}://` is not supported (use postgres://… or a SQLite file path)"
            ));
        }
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(text)))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            DatabaseUrl::Sqlite(_) => "sqlite",
            DatabaseUrl::Postgres(_) => "postgres",
        }
    }
}

/// Shows the location without any password it may carry.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            DatabaseUrl::Postgres(text) => match url::Url::parse(text) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        // Only fails for URLs that cannot carry a password at all.
                        let _ = url.set_password(Some("***"));
                    }
                    write!(f, "{url}")
                }
                Err(_) => f.write_str("postgres:<unparsable>"),
            },
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Opens one connection to `url`, with the per-connection settings SQLite needs.
pub fn establish(url: &DatabaseUrl) -> Result<DbConnection, r2d2::Error> {
    match url {
        DatabaseUrl::Postgres(text) => PgConnection::establish(text)
            .map(DbConnection::Postgres)
            .map_err(r2d2::Error::ConnectionError),
        DatabaseUrl::Sqlite(path) => {
            let mut conn =
                SqliteConnection::establish(&path.to_string_lossy()).map_err(r2d2::Error::ConnectionError)?;
            conn.batch_execute(
                "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                 PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
            )
            .map_err(r2d2::Error::QueryError)?;
            Ok(DbConnection::Sqlite(conn))
        }
    }
}

/// The r2d2 manager: it knows the backend from the URL and never guesses.
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        establish(&self.url)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1").map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        std::thread::panicking()
    }
}

pub type DbPooled = PooledConnection<ConnectionManager>;

/// Why [`Db::run`] could not run its work: no connection to be had, or the task
/// died (a panic in the work).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Unavailable(String),
    /// The database is known to be down; nothing was tried.
    #[error("the database is unavailable; retry in {0:?}")]
    KnownDown(Duration),
    #[error("{0}")]
    Crashed(String),
    #[error("database query: {0}")]
    Query(#[from] diesel::result::Error),
}

/// The pool, cheap to clone; what handlers, jobs and the CLI use.
#[derive(Clone)]
pub struct Db {
    pool: Pool<ConnectionManager>,
    url: DatabaseUrl,
    breaker: std::sync::Arc<breaker::Breaker>,
    background: std::sync::Arc<background::Lane>,
    /// One per pooled connection for requests (the pool holds [`OWN_THREADS`] more):
    /// a task takes one before it takes a blocking thread, so the tasks that wait
    /// for a connection wait here, in the order they came, instead of each holding a
    /// thread.
    turns: std::sync::Arc<tokio::sync::Semaphore>,
    writer: std::sync::Arc<batch::Writer>,
}

/// The database's own threads, each holding a connection of its own while it works:
/// the background lane ([`background`]) and the writer ([`batch`]).
const OWN_THREADS: u32 = 2;

/// How long a task waits for its turn at a connection before it is refused as
/// busy: the pool's own wait for a connection.
const TURN_WAIT: Duration = Duration::from_secs(5);

impl Db {
    /// Applies pending migrations (so an unreachable database fails here, clearly),
    /// then builds the pool.
    pub fn open(url: &DatabaseUrl, pool_size: u32) -> anyhow::Result<Db> {
        for version in migrate(url)? {
            tracing::info!(migration = %version, "applied migration");
        }
        let pool = Pool::builder()
            // The requests' connections, and one each for the database's own
            // threads (the background lane and the writer), which take no turn.
            .max_size(pool_size + OWN_THREADS)
            // Connections open on demand: no background thread keeps dialling a
            // database that has gone away.
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(5))
            .build(ConnectionManager { url: url.clone() })
            .with_context(|| format!("opening the connection pool for {url}"))?;
        Ok(Db {
            pool,
            url: url.clone(),
            breaker: std::sync::Arc::default(),
            background: std::sync::Arc::default(),
            turns: std::sync::Arc::new(tokio::sync::Semaphore::new(pool_size as usize)),
            writer: std::sync::Arc::default(),
        })
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// A pooled connection for blocking callers (CLI, jobs).
    pub fn conn(&self) -> Result<DbPooled, r2d2::PoolError> {
        self.pool.get()
    }

    /// Runs `work` on a pooled connection on the blocking thread pool, in its turn
    /// (at most one task per connection holds a thread; refused as unavailable
    /// after [`TURN_WAIT`]). Whatever error type the caller works in only needs to
    /// take a [`RunError`].
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<RunError> + Send + 'static,
    {
        let job = self.job(work)?;
        let turn = match tokio::time::timeout(TURN_WAIT, self.turns.clone().acquire_owned()).await {
            Ok(Ok(turn)) => turn,
            Ok(Err(closed)) => return Err(RunError::Crashed(format!("database turns: {closed}")).into()),
            Err(_) => {
                return Err(RunError::Unavailable(format!(
                    "the database is busy: no connection was free within {TURN_WAIT:?}"
                ))
                .into())
            }
        };
        let job = move || {
            let _turn = turn;
            job()
        };
        match tokio::task::spawn_blocking(job).await {
            Ok(result) => result,
            Err(err) => Err(RunError::Crashed(format!("database task failed: {err}")).into()),
        }
    }

    /// Runs `work` on a pooled connection on the background lane: one thread, at a
    /// lower priority than the threads answering requests, for writes no request
    /// waits on (see [`background`]).
    pub async fn run_background<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<RunError> + Send + 'static,
    {
        let job = self.job(work)?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        if !self.background.send(Box::new(move || {
            let _ = answer.send(job());
        })) {
            return Err(RunError::Crashed("the database's background thread is not running".into()).into());
        }
        match answered.await {
            Ok(result) => result,
            Err(_) => Err(RunError::Crashed("database task failed: it panicked".into()).into()),
        }
    }

    /// Runs `work`, which writes, in a transaction, answered once it has committed.
    /// On SQLite it waits for the writer thread, which runs it with the other writes
    /// waiting then in one transaction, in a savepoint of its own (see [`batch`]); on
    /// PostgreSQL, whose writers do not take turns, on a pooled connection as
    /// [`Db::run`] does.
    pub async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<RunError> + From<diesel::result::Error> + Send + 'static,
    {
        if matches!(self.url, DatabaseUrl::Postgres(_)) {
            return self.run(move |conn| conn.write_transaction(work)).await;
        }
        self.breaker
            .admit(std::time::Instant::now())
            .map_err(|down| RunError::KnownDown(down.retry_after))?;
        let (reply, answered) = tokio::sync::oneshot::channel();
        if !self
            .writer
            .send(Box::new(batch::Pending::new(work, reply)), &self.pool, &self.breaker)
        {
            return Err(RunError::Crashed("the database's writer thread is not running".into()).into());
        }
        match answered.await {
            Ok(result) => result,
            Err(_) => Err(RunError::Crashed("database write failed: it panicked".into()).into()),
        }
    }

    /// How many transactions of batched writes ([`Db::write`]) have committed.
    pub fn write_batches(&self) -> u64 {
        self.writer.batches()
    }

    /// `work` as a task that takes a pooled connection (telling the breaker how
    /// that went) and runs on it; refused at once while the database is known down.
    fn job<T, E, F>(&self, work: F) -> Result<impl FnOnce() -> Result<T, E> + Send + 'static, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<RunError> + Send + 'static,
    {
        self.breaker
            .admit(std::time::Instant::now())
            .map_err(|down| RunError::KnownDown(down.retry_after))?;
        let (pool, breaker) = (self.pool.clone(), self.breaker.clone());
        Ok(move || {
            let mut conn = match pool.get() {
                Ok(conn) => {
                    breaker.succeeded();
                    conn
                }
                Err(err) => {
                    breaker.failed(std::time::Instant::now());
                    return Err(RunError::Unavailable(format!("database pool: {err}")).into());
                }
            };
            work(&mut conn)
        })
    }

    /// Runs one query function on a pooled connection on the blocking thread pool.
    pub async fn query<T, F>(&self, work: F) -> Result<T, RunError>
    where
        F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run(move |conn| work(conn).map_err(RunError::Query)).await
    }

    /// Whether the database is known to be down.
    pub fn known_down(&self) -> bool {
        self.breaker.is_open()
    }

    /// Connections open and idle, for the metrics endpoint.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }
}

/// Creates the SQLite file's directory when needed, connects, and applies pending
/// migrations; returns the versions applied.
pub fn migrate(url: &DatabaseUrl) -> anyhow::Result<Vec<String>> {
    if let DatabaseUrl::Sqlite(path) = url {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the database directory {}", dir.display()))?;
        }
    }
    let mut conn = establish(url).with_context(|| format!("connecting to the database at {url}"))?;
    run_migrations(&mut conn)
}

/// Applies pending migrations; returns the versions applied.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(versions),
        DbConnection::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(versions),
    };
    applied.map_err(|err| anyhow::anyhow!("applying migrations: {err}"))
}

/// Reverts every migration, newest first; returns the versions reverted.
pub fn revert_all_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let reverted = match conn {
        DbConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS).map(versions),
        DbConnection::Postgres(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS).map(versions),
    };
    reverted.map_err(|err| anyhow::anyhow!("reverting migrations: {err}"))
}

fn versions(list: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

/// Makes sure the advisory counter of `year` exists. A write, so that as the first
/// statement of a transaction it takes SQLite's write lock at once.
pub fn ensure_counter_row(conn: &mut DbConnection, year: i32) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    let sql = match conn {
        DbConnection::Sqlite(_) => {
            "INSERT INTO advisory_counters (year, last_number) VALUES (?, 0) ON CONFLICT (year) DO NOTHING"
        }
        DbConnection::Postgres(_) => {
            "INSERT INTO advisory_counters (year, last_number) VALUES ($1, 0) ON CONFLICT (year) DO NOTHING"
        }
    };
    diesel::sql_query(sql)
        .bind::<diesel::sql_types::Integer, _>(year)
        .execute(conn)
        .map(drop)
}

/// Refreshes the planner's statistics of the devices table after a bulk load, so
/// that the fleet's reads use their indexes at once instead of after the next
/// automatic pass (on PostgreSQL the vacuum also lets index-only scans skip the
/// table). Outside any transaction.
pub fn refresh_device_statistics(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    let sql = match conn {
        DbConnection::Sqlite(_) => "ANALYZE devices",
        // The folded tallies of a bulk import leave as many dead rows behind.
        DbConnection::Postgres(_) => "VACUUM (ANALYZE) devices, device_tallies",
    };
    conn.batch_execute(sql)
}

/// The names of the tables in the current schema, for migration tests.
pub fn table_names(conn: &mut DbConnection) -> diesel::QueryResult<Vec<String>> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let sql = match conn {
        DbConnection::Sqlite(_) => {
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations' ORDER BY name"
        }
        DbConnection::Postgres(_) => {
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_name <> '__diesel_schema_migrations' ORDER BY table_name"
        }
    };
    let rows: Vec<Name> = diesel::sql_query(sql).load(conn)?;
    Ok(rows.into_iter().map(|row| row.name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_scheme_picks_the_backend() {
        assert_eq!(
            DatabaseUrl::parse("data/pw.db"),
            Ok(DatabaseUrl::Sqlite("data/pw.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/pw.db"),
            Ok(DatabaseUrl::Sqlite("/tmp/pw.db".into()))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://pw@127.0.0.1/pw"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(matches!(
            DatabaseUrl::parse("postgresql://pw@db/pw"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(DatabaseUrl::parse("mysql://x/y").is_err());
        assert!(DatabaseUrl::parse("postgres://").is_err());
        assert!(DatabaseUrl::parse("").is_err());
    }

    #[test]
    fn display_hides_the_password() {
        let url = DatabaseUrl::parse("postgres://pw:s3cret@db:5432/pw").unwrap();
        assert!(!url.to_string().contains("s3cret"));
        assert!(url.to_string().contains("db:5432"));
    }
}
