//! SQL plumbing: transactions with their audit entry, SQLite errors mapped
//! onto tresor's, the vault file's meta row, path checks, WAL bounds.

use super::*;

impl Vault {
    pub(super) fn check_value(&self, name: &SecretName, value: &SecretValue) -> Result<()> {
        if value.len() as u64 > self.settings.max_value_len {
            return Err(Error::TooLarge {
                what: format!(
                    "the value of '{name}' ({} bytes; setting max_value_len)",
                    value.len()
                ),
                limit: self.settings.max_value_len,
            });
        }
        Ok(())
    }

    pub(crate) fn audit_body(
        &self,
        operation: Operation,
        name: Option<&SecretName>,
        versions: Vec<u64>,
        result: &str,
        reason: Option<String>,
    ) -> AuditBody {
        AuditBody {
            actor: self.actor.clone(),
            operation: operation.as_str().into(),
            store: STORE.into(),
            name: name.map(|n| n.to_string()),
            versions,
            result: result.into(),
            reason,
            flags: Vec::new(),
        }
    }

    /// Appends a successful entry about no secret (`versions` only).
    pub(crate) fn append_ok(&self, op: Operation, versions: Vec<u64>) -> Result<()> {
        self.append_audit(&self.audit_body(op, None, versions, "ok", None))
    }

    pub(crate) fn append_audit(&self, body: &AuditBody) -> Result<()> {
        audit::append(
            &self.conn,
            &self.keys,
            &self.vault_id,
            self.write_key,
            self.write_dek(),
            body,
            &self.known_head,
        )
        .map_err(|e| self.db(e))
    }

    /// Checks foreign keys when the current transaction commits instead of
    /// after each statement (SQLite turns this off again at the commit or
    /// rollback). A bulk write's every INSERT would otherwise keep a
    /// statement journal so that a violation could undo just that
    /// statement: a twentieth of an import's time. A violation still fails
    /// the commit, and the whole transaction rolls back.
    pub(crate) fn defer_foreign_keys(&self) -> Result<()> {
        self.exec_cached("PRAGMA defer_foreign_keys=ON")
    }

    /// Appends `bodies` in order inside the current transaction, moving the
    /// chain head once (see `audit::append_many`).
    pub(crate) fn append_audit_many(&self, bodies: &[AuditBody]) -> Result<()> {
        audit::append_many(
            &self.conn,
            &self.keys,
            &self.vault_id,
            self.write_key,
            self.write_dek(),
            bodies,
            &self.known_head,
        )
        .map_err(|e| self.db(e))
    }

    /// Appends one audit entry in its own transaction. Read entries commit
    /// at `synchronous=NORMAL`: they survive a process crash, and only a
    /// power loss before the next checkpoint can drop them.
    pub(super) fn audit_write(
        &mut self,
        op: Operation,
        name: Option<&SecretName>,
        versions: Vec<u64>,
        outcome: &str,
        reason: Option<String>,
        relaxed: bool,
    ) -> Result<()> {
        let body = self.audit_body(op, name, versions, outcome, reason);
        if relaxed {
            self.exec_cached("PRAGMA synchronous=NORMAL")?;
        }
        let result = self.transaction(|v| v.append_audit(&body));
        if relaxed {
            self.exec_cached("PRAGMA synchronous=FULL")?;
        }
        result
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, appends its audit entry,
    /// and commits. A failure rolls everything back and, for refusals a user
    /// should see later (conflicts, missing secrets), records the attempt.
    pub(crate) fn write<T>(
        &mut self,
        op: Operation,
        name: Option<&SecretName>,
        reason: Option<&str>,
        f: impl FnOnce(&mut Self) -> Result<(T, Vec<u64>)>,
    ) -> Result<T> {
        self.write_flagged(op, name, reason, &[], f)
    }

    /// [`Self::write`] with flags in the audit entry (`unvalidated`).
    pub(crate) fn write_flagged<T>(
        &mut self,
        op: Operation,
        name: Option<&SecretName>,
        reason: Option<&str>,
        flags: &[&str],
        f: impl FnOnce(&mut Self) -> Result<(T, Vec<u64>)>,
    ) -> Result<T> {
        let result = self.transaction(|v| {
            let (out, versions) = f(v)?;
            let mut body =
                v.audit_body(op.clone(), name, versions, "ok", reason.map(str::to_string));
            body.flags = flags.iter().map(|f| f.to_string()).collect();
            v.append_audit(&body)?;
            Ok(out)
        });
        if let Err(e) = &result
            && matches!(e, Error::Conflict { .. } | Error::NotFound { .. })
        {
            let kind = e.kind();
            // Best effort: the refusal itself is the answer the caller needs.
            let _ = self.audit_write(op, name, vec![], kind, reason.map(str::to_string), false);
        }
        result
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, first making sure,
    /// under the write lock, that this handle's keys and settings are the
    /// vault's current ones ([`Vault::ensure_keys_current`],
    /// [`Vault::refresh_settings`]).
    pub(crate) fn transaction<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.exec_cached("BEGIN IMMEDIATE")?;
        match self
            .ensure_keys_current()
            .and_then(|()| self.refresh_settings())
            .and_then(|()| f(self))
        {
            Ok(out) => match self.exec_cached("COMMIT") {
                Ok(()) => Ok(out),
                Err(e) => {
                    let _ = self.exec_cached("ROLLBACK");
                    Err(e)
                }
            },
            Err(e) => {
                let _ = self.exec_cached("ROLLBACK");
                Err(e)
            }
        }
    }

    pub(crate) fn exec_cached(&self, sql: &str) -> Result<()> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    pub(crate) fn checkpoint_truncate(&self) {
        // Best effort: readers in other processes can hold the WAL open.
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }

    pub(crate) fn db(&self, e: rusqlite::Error) -> Error {
        db_error(e, &self.path)
    }

    pub(crate) fn integrity(&self, detail: String) -> Error {
        Error::Integrity {
            store: STORE.into(),
            detail,
        }
    }

    pub(super) fn integrity_or_db(&self, e: audit::AuditError) -> Error {
        match e {
            audit::AuditError::Db(e) => self.db(e),
            audit::AuditError::Broken(detail) => self.integrity(detail),
        }
    }
}

impl Vault {
    /// Checkpoints the WAL into the vault file and truncates it when it has
    /// grown past [`WAL_BOUND_BYTES`], without waiting: when another process
    /// is reading or writing, this returns at once and a later run does it.
    /// Returns whether the WAL was truncated. One-shot processes (opened with
    /// `no_checkpoint_on_close`) call it on drop, so their WAL stays small and
    /// the next run's open stays cheap; a checkpoint is crash-safe at any
    /// instant, so nothing is lost if the process dies during it.
    pub fn bound_wal(&mut self) -> bool {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let big = std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_BOUND_BYTES);
        if !big {
            return false;
        }
        // Never wait on another process here: a busy vault is left alone.
        if self.conn.busy_timeout(Duration::ZERO).is_err() {
            return false;
        }
        let done = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
            .is_ok_and(|busy| busy == 0);
        done && std::fs::metadata(&wal).is_ok_and(|m| m.len() == 0)
    }
}

pub(super) fn read_meta(conn: &Connection, path: &Path) -> Result<([u8; 16], u64)> {
    let rows: Vec<(String, Vec<u8>)> = conn
        .prepare("SELECT key, value FROM meta WHERE key IN ('format_version', 'vault_id')")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(|e| db_error(e, path))?;
    let not_a_vault = || Error::Integrity {
        store: STORE.into(),
        detail: format!(
            "{} is not a tresor vault (its meta table is incomplete)",
            path.display()
        ),
    };
    let mut format = None;
    let mut vault_id = None;
    for (key, value) in rows {
        match key.as_str() {
            "format_version" => {
                format = <[u8; 8]>::try_from(&value[..]).ok().map(u64::from_be_bytes)
            }
            "vault_id" => vault_id = <[u8; 16]>::try_from(&value[..]).ok(),
            _ => {}
        }
    }
    let format = format.ok_or_else(not_a_vault)?;
    if format > FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            what: path.display().to_string(),
            found: format.to_string(),
            supported: format!("format {FORMAT_VERSION} and older"),
        });
    }
    if format < 1 {
        return Err(not_a_vault());
    }
    Ok((vault_id.ok_or_else(not_a_vault)?, format))
}

pub(super) fn check_vault_path(path: &Path) -> Result<()> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::Io {
            store: STORE.into(),
            path: path.to_path_buf(),
            source: std::io::Error::other("is a directory, not a vault file"),
        }),
        Ok(m) if m.len() == 0 => Err(Error::Integrity {
            store: STORE.into(),
            detail: format!("{} is empty: not a tresor vault", path.display()),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NoVault {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(Error::Io {
            store: STORE.into(),
            path: path.to_path_buf(),
            source,
        }),
    }
}

pub(super) fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Io {
            store: STORE.into(),
            path: dir.to_path_buf(),
            source,
        })
}

pub(super) fn create_private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Exists {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(Error::Io {
            store: STORE.into(),
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Maps SQLite errors onto tresor's. SQLite's messages never contain bound
/// values, so they are safe to show.
pub(crate) fn db_error(e: rusqlite::Error, path: &Path) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return Error::Unavailable {
                    store: STORE.into(),
                    reason: format!(
                        "{} stayed locked by another writer past the lock timeout; \
                         raise TRESOR_LOCK_TIMEOUT (seconds, default 30) or retry",
                        path.display()
                    ),
                };
            }
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
                return Error::Integrity {
                    store: STORE.into(),
                    detail: format!("{} is corrupt or not a tresor vault ({e})", path.display()),
                };
            }
            ErrorCode::ReadOnly => {
                return Error::Io {
                    store: STORE.into(),
                    path: path.to_path_buf(),
                    source: std::io::Error::other(
                        "the vault file or its folder is read-only; tresor needs write access \
                         even to read, because reads are audited (setting audit_reads)",
                    ),
                };
            }
            ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::FileLockingProtocolFailed => {
                return Error::Io {
                    store: STORE.into(),
                    path: path.to_path_buf(),
                    source: std::io::Error::other(e.to_string()),
                };
            }
            _ => {}
        }
    }
    if let rusqlite::Error::SqlInputError { .. } | rusqlite::Error::InvalidColumnType(..) = e {
        return Error::Integrity {
            store: STORE.into(),
            detail: format!("unexpected vault layout: {e}"),
        };
    }
    Error::Integrity {
        store: STORE.into(),
        detail: format!("{}: {e}", path.display()),
    }
}
