//! Storage: diesel over an embedded SQLite file (WAL mode).
//!
//! The public API takes and returns `model` types; row structs stay private. Every query is
//! blocking and runs on tokio's blocking pool through [`Storage::read`] / [`Storage::write`].
//! Reads use a small r2d2 pool; writes go through one writer connection (SQLite has one writer at
//! a time anyway) and `BEGIN IMMEDIATE` transactions, so several processes on one file are safe.

pub mod access;
pub mod credentials;
pub mod objects;
pub mod schema;
pub mod statuses;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// The connection type every query runs on.
pub type Conn = SqliteConnection;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

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
}

impl StorageError {
    /// Whether the database is only busy or out of connections (worth a 503 and a retry).
    pub fn is_busy(&self) -> bool {
        match self {
            StorageError::Unavailable(_) => true,
            StorageError::Backend(diesel::result::Error::DatabaseError(_, info)) => {
                let m = info.message();
                m.contains("database is locked") || m.contains("database is busy")
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

/// Where the database lives: a SQLite file path (`sqlite://PATH` or a bare path).
#[derive(Debug, Clone)]
pub struct DbUrl(String);

impl DbUrl {
    pub fn parse(url: &str) -> StorageResult<DbUrl> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Err(StorageError::Connection(
                "PostgreSQL is not supported by this build yet; use a SQLite path (sqlite://concordia.db)".into(),
            ));
        }
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        if path.is_empty() || path.contains('=') && path.contains(' ') {
            return Err(StorageError::Connection(format!(
                "'{url}' is not a database URL such as sqlite://concordia.db"
            )));
        }
        Ok(DbUrl(path.to_owned()))
    }

    pub fn path(&self) -> &str {
        &self.0
    }
}

/// Opens one SQLite connection with the pragmas every connection needs (busy_timeout first).
pub fn open(url: &DbUrl) -> StorageResult<Conn> {
    let mut c = SqliteConnection::establish(url.path()).map_err(|e| StorageError::Connection(e.to_string()))?;
    c.batch_execute(
        "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 10000; PRAGMA cache_size = -8192;",
    )
    .map_err(StorageError::Backend)?;
    Ok(c)
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

/// Applies pending migrations; returns how many ran.
pub fn migrate(c: &mut Conn) -> StorageResult<usize> {
    c.run_pending_migrations(SQLITE_MIGRATIONS)
        .map(|v| v.len())
        .map_err(|e| StorageError::Connection(format!("migration failed: {e}")))
}

/// Handle to the database, cheap to clone.
#[derive(Clone)]
pub struct Storage {
    pool: r2d2::Pool<Manager>,
    writer: Arc<Mutex<Conn>>,
}

impl Storage {
    /// Opens the database, optionally applying pending migrations first.
    pub fn connect(url: &str, pool_size: u32, run_migrations: bool) -> StorageResult<Storage> {
        let url = DbUrl::parse(url)?;
        let mut writer = open(&url)?;
        if run_migrations {
            migrate(&mut writer)?;
        }
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(5))
            .build(Manager(url))
            .map_err(|e| StorageError::Connection(e.to_string()))?;
        Ok(Storage { pool, writer: Arc::new(Mutex::new(writer)) })
    }

    /// Runs a blocking read on a pooled connection.
    pub fn read_blocking<T>(&self, f: impl FnOnce(&mut Conn) -> StorageResult<T>) -> StorageResult<T> {
        let mut c = self.pool.get()?;
        f(&mut c)
    }

    /// Runs a blocking write on the writer connection, inside `BEGIN IMMEDIATE … COMMIT`.
    pub fn write_blocking<T>(&self, f: impl FnOnce(&mut Conn) -> StorageResult<T>) -> StorageResult<T> {
        let mut guard = match self.writer.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.immediate_transaction(f)
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

    /// Runs a write transaction on the blocking thread pool.
    pub async fn write<T, F>(&self, f: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn) -> StorageResult<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_blocking(f))
            .await
            .map_err(|e| StorageError::Unavailable(Box::new(e)))?
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
    diesel::insert_into(m::meta)
        .values((m::key.eq(key), m::value.eq(value)))
        .on_conflict(m::key)
        .do_update()
        .set(m::value.eq(value))
        .execute(c)?;
    Ok(())
}

/// The policy generation: bumped by every change to partners, groups, collections or
/// credentials, so running servers know to reload their cached view and drop cached logins.
pub fn generation(c: &mut Conn) -> StorageResult<i64> {
    Ok(meta_get(c, "generation")?.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Bumps the policy generation (call inside the changing transaction).
pub fn bump_generation(c: &mut Conn) -> StorageResult<i64> {
    let g = generation(c)? + 1;
    meta_set(c, "generation", &g.to_string())?;
    Ok(g)
}
