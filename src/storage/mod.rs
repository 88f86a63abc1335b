//! Storage: diesel over an embedded SQLite file (WAL mode) or PostgreSQL, picked by the URL
//! scheme; one code path for both through diesel's `MultiConnection`.
//!
//! The public API takes and returns `model` types; row structs stay private. Every query is
//! blocking and runs on tokio's blocking pool through [`Storage::read`] / [`Storage::write`].
//! Reads use an r2d2 pool; writes go through one writer connection per process (SQLite has one
//! writer at a time anyway). On SQLite a write transaction takes the write lock with its first
//! statement, so several processes on one file are safe; on PostgreSQL, writers to one collection
//! are serialised by a row lock on its clock (see `objects::insert`), so positions commit in order.

pub mod access;
pub mod audit;
pub mod credentials;
pub mod objects;
pub mod operators;
pub mod plans;
pub mod schema;
pub mod statuses;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// A connection to either backend.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Sqlite(SqliteConnection),
    Postgresql(PgConnection),
}

/// The connection type every query runs on.
pub type Conn = AnyConnection;

/// Runs the same code on the concrete connection, for the few statements diesel cannot build
/// through `MultiConnection` (batch inserts, upserts, row locks).
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::storage::AnyConnection::Sqlite($c) => $body,
            $crate::storage::AnyConnection::Postgresql($c) => $body,
        }
    };
}
pub(crate) use per_backend;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Storage failures. `Unavailable` becomes a 503, `Backend` a logged 500.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("the database is busy or unreachable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("database error")]
    Backend(#[from] diesel::result::Error),
    #[error("invalid database URL or connection: {0}")]
    Connection(String),
    /// A dry run: the transaction was rolled back on purpose; carries what it would have done.
    #[error("dry run")]
    RolledBack(Vec<String>),
    /// The policy changed since the caller loaded it (a write checks this under its collection's
    /// lock, so that it feeds every derived collection the new policy defines): reload, retry.
    #[error("the policy changed while the request was handled")]
    StalePolicy,
}

impl StorageError {
    /// Whether the database is only busy or out of connections (worth a 503 and a retry).
    pub fn is_busy(&self) -> bool {
        use diesel::result::DatabaseErrorKind as K;
        match self {
            StorageError::Unavailable(_) => true,
            StorageError::Backend(diesel::result::Error::DatabaseError(kind, info)) => {
                let m = info.message();
                matches!(kind, K::SerializationFailure | K::ClosedConnection | K::UnableToSendCommand)
                    || m.contains("database is locked")
                    || m.contains("database is busy")
                    || m.contains("deadlock detected")
                    || m.contains("lock timeout")
                    || m.contains("statement timeout")
                    || m.contains("could not obtain lock")
            }
            _ => false,
        }
    }
}

impl From<r2d2::PoolError> for StorageError {
    fn from(e: r2d2::PoolError) -> Self {
        StorageError::Unavailable(Box::new(e))
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// Where the database lives: `postgres://…` / `postgresql://…`, else a SQLite file path
/// (`sqlite://PATH` or a bare path).
#[derive(Debug, Clone)]
pub enum DbUrl {
    Sqlite(String),
    Postgres(String),
}

impl DbUrl {
    pub fn parse(url: &str) -> StorageResult<DbUrl> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DbUrl::Postgres(url.to_owned()));
        }
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        if path.is_empty() || path.contains('=') && path.contains(' ') {
            return Err(StorageError::Connection(format!(
                "'{}' is not a database URL such as sqlite://concordia.db or postgres://user@host/db",
                mask_url(url)
            )));
        }
        Ok(DbUrl::Sqlite(path.to_owned()))
    }
}

/// A URL or connection string with its passwords masked: the password of `scheme://user:pw@host`
/// and the value of every `password=` parameter (query string or libpq `key=value` form).
pub fn mask_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        // libpq ends the user information at the first '/' (a '?' or '#' may be part of a
        // password); masking too much is harmless, too little is not.
        let authority_end = out.get(rest_start..).and_then(|r| r.find('/')).map_or(out.len(), |i| rest_start + i);
        if let Some(authority) = out.get(rest_start..authority_end) {
            if let Some(at) = authority.rfind('@') {
                if let Some(colon) = authority.get(..at).and_then(|u| u.find(':')) {
                    out.replace_range(rest_start + colon + 1..rest_start + at, "***");
                }
            }
        }
    }
    let mut masked = String::with_capacity(out.len());
    let mut rest = out.as_str();
    loop {
        let lower = rest.to_ascii_lowercase();
        match lower.find("password=") {
            Some(i) => {
                let value_start = i + "password=".len();
                masked.push_str(rest.get(..value_start).unwrap_or_default());
                let after = rest.get(value_start..).unwrap_or_default();
                let value_len = if after.starts_with('\'') {
                    after.get(1..).and_then(|a| a.find('\'')).map_or(after.len(), |j| j + 2)
                } else {
                    after.find(['&', ' ', '#']).unwrap_or(after.len())
                };
                masked.push_str("***");
                rest = after.get(value_len..).unwrap_or_default();
            }
            None => {
                masked.push_str(rest);
                break;
            }
        }
    }
    masked
}

/// Opens one connection: SQLite with the pragmas every connection needs (busy_timeout first),
/// PostgreSQL with libpq's own error messages kept.
pub fn open(url: &DbUrl) -> StorageResult<Conn> {
    match url {
        DbUrl::Postgres(u) => {
            let mut c =
                PgConnection::establish(u).map_err(|e| StorageError::Connection(e.to_string().trim().to_owned()))?;
            // Nothing may wait forever: a writer blocked on another node's lock, or a runaway
            // statement, turns into an error (503) instead of a stuck request.
            c.batch_execute("SET lock_timeout = '15s'; SET statement_timeout = '120s'; SET client_encoding = 'UTF8';")
                .map_err(StorageError::Backend)?;
            Ok(AnyConnection::Postgresql(c))
        }
        DbUrl::Sqlite(path) => {
            let mut c = SqliteConnection::establish(path).map_err(|e| StorageError::Connection(e.to_string()))?;
            c.batch_execute(
                "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 10000; PRAGMA cache_size = -2048;",
            )
            .map_err(StorageError::Backend)?;
            Ok(AnyConnection::Sqlite(c))
        }
    }
}

/// The SQLite writer connection: a page cache of 16 MB (the readers have 2 MB); statement
/// journals in memory; and no
/// checkpoints on commit: the checkpointer thread copies the WAL back into the database file off
/// the writer's path. The automatic checkpoint stays as a backstop at 200 MB of WAL should that
/// thread fall behind, which also bounds the WAL file (it is reused from the start, not
/// truncated, so appending to it never has to allocate and zero new blocks).
///
/// The cache was 64 MB, for the random inserts into `objects_version`: every miss is a read from
/// the OS. At 1M objects (1 and 4 clients, then a full read) 64, 16 and 8 MB ingested at the same
/// rate within the noise of the machine (27-30k and 33-40k objects/s), and the OS page cache
/// serves the misses; but the server's peak RSS was 146, 101 and 84 MB. Past a few MB the
/// cache only holds memory.
const SQLITE_WRITER_PRAGMAS: &str =
    "PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 50000;";

/// How often the checkpointer looks at the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The row `PRAGMA wal_checkpoint` answers: frames in the WAL and frames copied back.
#[derive(QueryableByName)]
struct CheckpointRow {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    checkpointed: i32,
}

/// Starts the SQLite checkpointer: a thread with its own connection that runs a passive
/// checkpoint (it never blocks readers or the writer) every [`CHECKPOINT_EVERY`], until the
/// storage's writer is dropped. Once the WAL is fully copied back and nothing was written for a
/// whole period, it empties the WAL file (if no reader holds it at that moment): readers then
/// find every page in the database file instead of searching a WAL left over from a bulk load.
fn spawn_checkpointer(path: String, writer: std::sync::Weak<Mutex<Conn>>) -> StorageResult<()> {
    let AnyConnection::Sqlite(mut conn) = open(&DbUrl::Sqlite(path))? else {
        return Err(StorageError::Connection("the checkpointer needs a SQLite database".into()));
    };
    // Never wait for a reader or the writer: a busy moment is simply retried a period later.
    conn.batch_execute("PRAGMA busy_timeout = 0").map_err(StorageError::Backend)?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let (mut failing, mut last_log) = (false, -1);
            while writer.strong_count() > 0 {
                std::thread::sleep(CHECKPOINT_EVERY);
                let r = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<CheckpointRow>(&mut conn);
                match r {
                    Ok(r) => {
                        failing = false;
                        if r.log > 0 && r.checkpointed == r.log && r.log == last_log {
                            // Idle and fully copied: empty the WAL. Busy (a reader or writer
                            // just started) is not an error; the next idle period tries again.
                            let _ = diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)")
                                .get_result::<CheckpointRow>(&mut conn);
                        }
                        last_log = r.log;
                    }
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "WAL checkpoint failed; the writer's own checkpoint takes over");
                    }
                    Err(_) => {}
                }
            }
        })
        .map_err(|e| StorageError::Connection(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(())
}

/// r2d2 manager that keeps diesel's own error messages and applies the pragmas.
#[derive(Debug, Clone)]
struct Manager(DbUrl);

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<Conn, r2d2::Error> {
        open(&self.0).map_err(|e| match e {
            StorageError::Backend(q) => r2d2::Error::QueryError(q),
            other => r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(other.to_string())),
        })
    }

    fn is_valid(&self, c: &mut Conn) -> Result<(), r2d2::Error> {
        c.batch_execute("SELECT 1").map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _c: &mut Conn) -> bool {
        std::thread::panicking()
    }
}

#[derive(QueryableByName)]
struct EncodingRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    server_encoding: String,
}

/// PostgreSQL: the database must store UTF-8, or text a partner shared (any Unicode character
/// in a STIX object) could not be stored as it came.
fn check_encoding(c: &mut Conn) -> StorageResult<()> {
    let AnyConnection::Postgresql(pg) = c else { return Ok(()) };
    let enc = diesel::sql_query("SHOW server_encoding").get_result::<EncodingRow>(pg)?.server_encoding;
    if enc.eq_ignore_ascii_case("UTF8") {
        Ok(())
    } else {
        Err(StorageError::Connection(format!(
            "the database uses the encoding {enc}; Concordia needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8')"
        )))
    }
}

/// Applies pending migrations, then fills in what a migration left to code (the facets of
/// versions stored before `feeds`, the filter postings of versions stored before
/// `filter_postings`); returns the versions that ran. Stop the nodes of an older release before
/// an upgrade: what they write after the migration gets no facets or postings.
pub fn migrate(c: &mut Conn) -> StorageResult<Vec<String>> {
    let names = |v: Vec<diesel::migration::MigrationVersion<'_>>| v.iter().map(ToString::to_string).collect();
    let pg = matches!(c, AnyConnection::Postgresql(_));
    if pg {
        // Nodes starting together must not run the same migration twice.
        diesel::sql_query("SELECT pg_advisory_lock(724031)").execute(c)?;
    }
    let ran: StorageResult<Vec<String>> = match c {
        AnyConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(names),
        AnyConnection::Postgresql(c) => c.run_pending_migrations(PG_MIGRATIONS).map(names),
    }
    .map_err(|e| StorageError::Connection(format!("migration failed: {e}")));
    let ran = ran.and_then(|ran| objects::backfill_facets(c, &ran).map(|_| ran));
    // After the facets: the postings are read from the facet columns.
    let ran = ran.and_then(|ran| objects::backfill_tags(c).map(|_| ran));
    if pg {
        diesel::sql_query("SELECT pg_advisory_unlock(724031)").execute(c)?;
    }
    ran
}

/// How hard SQLite makes a commit (PostgreSQL follows its own `synchronous_commit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = NORMAL` in WAL mode: an acknowledged write survives the death of the
    /// process, not a power loss or an operating system crash (the last commits may be lost).
    #[default]
    Normal,
    /// `synchronous = FULL`: every commit is synced to disk before it is acknowledged.
    Full,
}

/// How to open the database.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Read connections.
    pub pool_size: u32,
    /// Apply pending migrations first.
    pub migrate: bool,
    pub durability: Durability,
}

/// Handle to the database, cheap to clone.
#[derive(Clone)]
pub struct Storage {
    pool: r2d2::Pool<Manager>,
    /// SQLite only: the database file (its WAL is `<path>-wal`).
    sqlite_path: Option<Arc<str>>,
    /// SQLite only: the one writer connection (SQLite has one writer at a time anyway). On
    /// PostgreSQL writes take pooled connections and run concurrently; row locks order them.
    writer: Option<Arc<Mutex<Conn>>>,
    /// SQLite only: the thread that runs the server's writes ([`Storage::write`]). Writes wait
    /// in its queue instead of each holding a blocking thread on the writer's lock, and the
    /// writer connection's page cache is always allocated and freed by the same thread.
    jobs: Option<std::sync::mpsc::Sender<WriteJob>>,
    /// Migrations this handle applied when it connected.
    applied: Arc<Vec<String>>,
    /// How the filtered pages of each collection were last best read.
    plans: Arc<objects::PagePlans>,
}

/// A write for the writer thread.
type WriteJob = Box<dyn FnOnce() + Send + 'static>;

/// Starts the writer thread; it ends when the last [`Storage`] handle is dropped.
fn spawn_writer_thread() -> StorageResult<std::sync::mpsc::Sender<WriteJob>> {
    let (tx, rx) = std::sync::mpsc::channel::<WriteJob>();
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || {
            for job in rx {
                job();
            }
        })
        .map_err(|e| StorageError::Connection(format!("cannot start the writer thread: {e}")))?;
    Ok(tx)
}

impl Storage {
    /// Opens the database, optionally applying pending migrations first.
    pub fn connect(url: &str, pool_size: u32, run_migrations: bool) -> StorageResult<Storage> {
        Storage::open(url, Options { pool_size, migrate: run_migrations, durability: Durability::Normal })
    }

    /// Opens the database with these options.
    pub fn open(url: &str, options: Options) -> StorageResult<Storage> {
        let Options { pool_size, migrate: run_migrations, durability } = options;
        let url = DbUrl::parse(url)?;
        let mut first = open(&url)?;
        check_encoding(&mut first)?;
        let applied = if run_migrations { migrate(&mut first)? } else { Vec::new() };
        let sqlite_path = match &url {
            DbUrl::Sqlite(path) => Some(Arc::from(path.as_str())),
            DbUrl::Postgres(_) => None,
        };
        let (writer, jobs) = match &url {
            DbUrl::Postgres(_) => (None, None),
            DbUrl::Sqlite(path) => {
                first.batch_execute(SQLITE_WRITER_PRAGMAS).map_err(StorageError::Backend)?;
                if durability == Durability::Full {
                    first.batch_execute("PRAGMA synchronous = FULL").map_err(StorageError::Backend)?;
                }
                let writer = Arc::new(Mutex::new(first));
                spawn_checkpointer(path.clone(), Arc::downgrade(&writer))?;
                (Some(writer), Some(spawn_writer_thread()?))
            }
        };
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(2))
            .test_on_check_out(true)
            .build(Manager(url))
            .map_err(|e| StorageError::Connection(e.to_string()))?;
        Ok(Storage { pool, sqlite_path, writer, jobs, applied: Arc::new(applied), plans: Arc::default() })
    }

    /// Read connections: (open, idle).
    pub fn pool_state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.connections, s.idle_connections)
    }

    /// SQLite only: the size of the write-ahead log, in bytes (0 when there is none).
    pub fn wal_bytes(&self) -> Option<u64> {
        let path = self.sqlite_path.as_deref()?;
        Some(std::fs::metadata(format!("{path}-wal")).map_or(0, |m| m.len()))
    }

    /// The page plans this handle found (shared by its clones), for [`objects::PageQuery::plans`].
    pub fn page_plans(&self) -> Arc<objects::PagePlans> {
        Arc::clone(&self.plans)
    }

    /// A pooled read connection; the wait (and a wait that gives up) is measured.
    fn pooled(&self) -> StorageResult<r2d2::PooledConnection<Manager>> {
        let started = std::time::Instant::now();
        let got = self.pool.get();
        let m = crate::metrics::get();
        m.pool_wait_seconds.observe(started.elapsed().as_secs_f64());
        if got.is_err() {
            m.pool_timeouts.inc();
        }
        Ok(got?)
    }

    /// The migrations this handle applied when it connected (to record them).
    pub fn migrations_applied(&self) -> Vec<String> {
        self.applied.as_ref().clone()
    }

    /// Runs a blocking read on a pooled connection.
    pub fn read_blocking<T>(&self, f: impl FnOnce(&mut Conn) -> StorageResult<T>) -> StorageResult<T> {
        let mut c = self.pooled()?;
        f(&mut c)
    }

    /// Runs a blocking write on the writer connection, inside `BEGIN IMMEDIATE … COMMIT`.
    pub fn write_blocking<T>(&self, f: impl FnOnce(&mut Conn) -> StorageResult<T>) -> StorageResult<T> {
        let Some(writer) = &self.writer else {
            // PostgreSQL: a pooled connection (checked on check-out, replaced when broken).
            let mut c = self.pooled()?;
            return (*c).transaction(f);
        };
        let mut guard = match writer.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.transaction(|c| {
            if let AnyConnection::Sqlite(sqlite) = c {
                // Take SQLite's write lock with the first statement (waiting up to busy_timeout
                // for another process), so the transaction never has to upgrade a read snapshot.
                sqlite.batch_execute("UPDATE meta SET value = value WHERE key = 'generation'")?;
            }
            f(c)
        })
    }

    /// Runs a read on the blocking thread pool.
    pub async fn read<T, F>(&self, f: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn) -> StorageResult<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read_blocking(f))
            .await
            .map_err(|e| StorageError::Unavailable(Box::new(e)))?
    }

    /// Runs a write transaction: on SQLite on the writer thread, on PostgreSQL on the blocking
    /// thread pool.
    pub async fn write<T, F>(&self, f: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn) -> StorageResult<T> + Send + 'static,
    {
        let this = self.clone();
        let Some(jobs) = &self.jobs else {
            return tokio::task::spawn_blocking(move || this.write_blocking(f))
                .await
                .map_err(|e| StorageError::Unavailable(Box::new(e)))?;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: WriteJob = Box::new(move || {
            // A panic stays in this job: its request fails (the sender is dropped unanswered)
            // and the writer thread goes on with the next write.
            if let Ok(r) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| this.write_blocking(f))) {
                let _ = tx.send(r);
            }
        });
        jobs.send(job).map_err(|e| StorageError::Unavailable(Box::new(std::io::Error::other(e.to_string()))))?;
        rx.await.map_err(|e| StorageError::Unavailable(Box::new(e)))?
    }
}

impl From<StorageError> for diesel::result::Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Backend(b) => b,
            other => diesel::result::Error::QueryBuilderError(Box::new(other)),
        }
    }
}

/// Reads a value from the `meta` table.
pub fn meta_get(c: &mut Conn, key: &str) -> StorageResult<Option<String>> {
    use schema::meta::dsl as m;
    Ok(m::meta.filter(m::key.eq(key)).select(m::value).first::<String>(c).optional()?)
}

/// Writes a value to the `meta` table.
pub fn meta_set(c: &mut Conn, key: &str, value: &str) -> StorageResult<()> {
    use schema::meta::dsl as m;
    per_backend!(c, |c| diesel::insert_into(m::meta)
        .values((m::key.eq(key), m::value.eq(value)))
        .on_conflict(m::key)
        .do_update()
        .set(m::value.eq(value))
        .execute(c))?;
    Ok(())
}

/// The policy generation: bumped by every change to partners, groups, collections or
/// credentials, so running servers know to reload their cached view and drop cached logins.
pub fn generation(c: &mut Conn) -> StorageResult<i64> {
    Ok(meta_get(c, "generation")?.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// The feed generation: bumped by every change to collections (their derived sources and
/// filters among them). Writers to a source compare it, under their locks, with the one their
/// policy came from (see `objects::insert`); credential changes do not touch it.
pub fn feed_generation(c: &mut Conn) -> StorageResult<i64> {
    Ok(meta_get(c, "feed_generation")?.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Bumps the feed generation (call inside the changing transaction).
pub fn bump_feed_generation(c: &mut Conn) -> StorageResult<()> {
    let next = feed_generation(c)? + 1;
    meta_set(c, "feed_generation", &next.to_string())
}

/// Bumps the policy generation (call inside the changing transaction).
pub fn bump_generation(c: &mut Conn) -> StorageResult<i64> {
    // One atomic increment, so two concurrent changes can never both write the same value.
    meta_insert_if_absent(c, "generation", "0")?;
    diesel::sql_query("UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = 'generation'")
        .execute(c)?;
    generation(c)
}

/// The `next`-token keys kept in the database (when no `server_key` is configured): the current
/// one and, after `concordia rotate-key`, the previous one with the end of its grace period.
/// `None` before the first server start created a key.
///
/// # Errors
/// Database failures.
pub fn load_keys(c: &mut Conn) -> StorageResult<Option<crate::model::cursor::KeyRing>> {
    let Some(current) = meta_get(c, "server_key")? else { return Ok(None) };
    let mut ring = crate::model::cursor::KeyRing::new(current.as_bytes());
    let previous = meta_get(c, "server_key_previous")?;
    let until = meta_get(c, "server_key_previous_until")?.and_then(|u| u.parse::<i64>().ok());
    if let (Some(previous), Some(until)) = (previous, until) {
        ring = ring.with_previous(previous.as_bytes(), until);
    }
    Ok(Some(ring))
}

/// Replaces the database's `next`-token key with `new`; tokens signed with the old one stay
/// valid until `until`. Bumps the generation, so every node reloads its keys.
///
/// # Errors
/// Database failures.
pub fn rotate_keys(c: &mut Conn, new: &str, until: i64) -> StorageResult<()> {
    if let Some(old) = meta_get(c, "server_key")? {
        meta_set(c, "server_key_previous", &old)?;
        meta_set(c, "server_key_previous_until", &until.to_string())?;
    }
    meta_set(c, "server_key", new)?;
    bump_generation(c)?;
    Ok(())
}

/// Inserts a meta value unless the key exists; returns the value now stored (the first writer's
/// value wins, so nodes starting together agree, e.g. on the server key).
pub fn meta_insert_if_absent(c: &mut Conn, key: &str, value: &str) -> StorageResult<String> {
    use schema::meta::dsl as m;
    per_backend!(&mut *c, |c| diesel::insert_into(m::meta)
        .values((m::key.eq(key), m::value.eq(value)))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(meta_get(c, key)?.unwrap_or_else(|| value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(QueryableByName)]
    struct SynchronousRow {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        synchronous: i32,
    }

    /// `durability` sets SQLite's `synchronous` on the connection that commits (1 NORMAL, 2 FULL).
    #[test]
    fn durability_sets_synchronous_on_the_writer() -> Result<(), Box<dyn std::error::Error>> {
        for (durability, expected) in [(Durability::Normal, 1), (Durability::Full, 2)] {
            let dir = tempfile::tempdir()?;
            let url = dir.path().join("d.db").to_string_lossy().into_owned();
            let storage = Storage::open(&url, Options { pool_size: 1, migrate: true, durability })?;
            let got = storage.write_blocking(|c| {
                Ok(diesel::sql_query("PRAGMA synchronous").get_result::<SynchronousRow>(c)?.synchronous)
            })?;
            assert_eq!(got, expected, "{durability:?}");
        }
        Ok(())
    }

    /// The writer does not checkpoint on commit; the checkpointer copies the WAL back and, once
    /// writes stop, empties the WAL file.
    #[test]
    fn checkpointer_empties_the_wal_after_writes_stop() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c.db");
        let storage = Storage::connect(&path.to_string_lossy(), 2, true)?;
        let wal = dir.path().join("c.db-wal");
        for i in 0..200 {
            storage.write_blocking(|c| meta_set(c, &format!("k{i}"), &"x".repeat(2000)))?;
        }
        let grown = std::fs::metadata(&wal)?.len();
        assert!(grown > 100_000, "the writes should have gone to the WAL ({grown} bytes)");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::metadata(&wal)?.len() > 0 {
            assert!(std::time::Instant::now() < deadline, "the WAL was not emptied within 5 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Nothing was lost on the way.
        let n: i64 = storage.read_blocking(|c| Ok(schema::meta::table.count().get_result(c)?))?;
        assert!(n >= 200);
        Ok(())
    }
}
