//! The SQLite schema and connection setup (VAULT-FORMAT.md, "Tables").

use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

/// The format version this build writes and reads. A vault of format 1 is
/// migrated on its first unlock (`vault/migrate.rs`, VAULT-FORMAT.md
/// "Limits and versions").
pub const FORMAT_VERSION: u64 = 2;

/// Tables of format 2. Plaintext columns hold only ids, the blind index,
/// version numbers, labels, key ids, timestamps, flags, the random record
/// id (`uid`, bound into the associated data of every record of its secret
/// or named key) and the count of encryptions reserved per named-key
/// version (`sealed`). The columns a format-1 vault lacks come last, with
/// the defaults `ALTER TABLE` needs ([`MIGRATE_1_TO_2`]); every row written
/// holds a real value.
pub const CREATE: &str = "
CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE keyslots(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, label TEXT,
    params BLOB NOT NULL, wrapped BLOB NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE data_keys(id INTEGER PRIMARY KEY, wrapped BLOB NOT NULL,
    created_at INTEGER NOT NULL, retired_at INTEGER);
CREATE TABLE secrets(id INTEGER PRIMARY KEY, bidx BLOB NOT NULL UNIQUE, header BLOB NOT NULL,
    header_key INTEGER NOT NULL REFERENCES data_keys(id),
    current INTEGER, previous INTEGER, pending INTEGER,
    next_version INTEGER NOT NULL, deleted_at INTEGER, uid BLOB NOT NULL DEFAULT x'');
CREATE TABLE versions(secret_id INTEGER NOT NULL REFERENCES secrets(id), version INTEGER NOT NULL,
    key_id INTEGER NOT NULL REFERENCES data_keys(id), body BLOB, destroyed_at INTEGER,
    PRIMARY KEY (secret_id, version)) WITHOUT ROWID;
CREATE TABLE named_keys(id INTEGER PRIMARY KEY, bidx BLOB NOT NULL UNIQUE, header BLOB NOT NULL,
    header_key INTEGER NOT NULL REFERENCES data_keys(id),
    latest INTEGER NOT NULL, min_decrypt INTEGER NOT NULL, deleted_at INTEGER,
    uid BLOB NOT NULL DEFAULT x'');
CREATE TABLE named_key_versions(key_id_ref INTEGER NOT NULL REFERENCES named_keys(id),
    version INTEGER NOT NULL, data_key INTEGER NOT NULL REFERENCES data_keys(id),
    body BLOB NOT NULL, sealed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id_ref, version)) WITHOUT ROWID;
CREATE TABLE audit(seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, key_id INTEGER NOT NULL,
    body BLOB NOT NULL, mac BLOB NOT NULL);
";

/// The named-key tables of [`CREATE`], for vaults made before they existed:
/// the first use of named keys runs this in a write transaction.
pub const CREATE_NAMED_KEYS: &str = "
CREATE TABLE IF NOT EXISTS named_keys(id INTEGER PRIMARY KEY, bidx BLOB NOT NULL UNIQUE, header BLOB NOT NULL,
    header_key INTEGER NOT NULL REFERENCES data_keys(id),
    latest INTEGER NOT NULL, min_decrypt INTEGER NOT NULL, deleted_at INTEGER,
    uid BLOB NOT NULL DEFAULT x'');
CREATE TABLE IF NOT EXISTS named_key_versions(key_id_ref INTEGER NOT NULL REFERENCES named_keys(id),
    version INTEGER NOT NULL, data_key INTEGER NOT NULL REFERENCES data_keys(id),
    body BLOB NOT NULL, sealed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id_ref, version)) WITHOUT ROWID;
";

/// The columns format 2 adds to the tables of a format-1 vault (run by the
/// migration in its transaction; the named-key part only when those tables
/// exist).
pub const MIGRATE_1_TO_2: &str = "
ALTER TABLE secrets ADD COLUMN uid BLOB NOT NULL DEFAULT x'';
";

/// [`MIGRATE_1_TO_2`] for the named-key tables.
pub const MIGRATE_1_TO_2_NAMED_KEYS: &str = "
ALTER TABLE named_keys ADD COLUMN uid BLOB NOT NULL DEFAULT x'';
ALTER TABLE named_key_versions ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
";

/// How a connection is set up.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// How long to wait for another process's write lock.
    pub lock_timeout: Duration,
    /// Skip the WAL checkpoint when the last connection closes: right for
    /// short-lived processes such as the CLI, whose next run reuses the WAL.
    pub no_checkpoint_on_close: bool,
}

/// Opens `path` with tresor's settings (ARCHITECTURE.md, "Start-up, and
/// why"): WAL is set once at creation; every connection gets
/// `synchronous=FULL`, `secure_delete=ON`, `foreign_keys=ON`, the busy
/// timeout, and a stable query planner (QPSG), without which cached
/// statements are re-prepared on every call.
pub fn connect(
    path: &Path,
    create: bool,
    options: &ConnectOptions,
) -> rusqlite::Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(options.lock_timeout)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    if options.no_checkpoint_on_close {
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    conn.execute_batch(
        "PRAGMA synchronous=FULL; PRAGMA secure_delete=ON; PRAGMA foreign_keys=ON;
         PRAGMA cache_size=-16384; PRAGMA mmap_size=268435456;",
    )?;
    Ok(conn)
}
