//! Migration of a format-1 vault to format 2 (VAULT-FORMAT.md, "Limits and
//! versions"): on the first unlock, in one `BEGIN IMMEDIATE` transaction,
//! after a private copy of the file (`<vault>.pre-v2`).
//!
//! Format 2 binds every record of a secret or named key to a random record
//! id (`uid`) that is never reused, where format 1 bound only the row id,
//! which SQLite reuses after a purge (issue 8, L1). The migration gives each
//! secret and named key a record id and re-seals each of their records,
//! unchanged inside, under the format-2 associated data and the current
//! data key. Afterwards no format-1 record opens in the vault again: a row
//! copied from an older file is refused.

use std::fs;
use std::path::PathBuf;

use rusqlite::{OptionalExtension, params};

use tresor_core::{Error, Operation, Result};
use tresor_crypto::{RecordAad, RecordKind, open, seal};

use super::{Owner, STORE, Vault};
use crate::schema::{self, FORMAT_VERSION};

impl Vault {
    /// Migrates a vault of format `from` (only 1 exists) to
    /// [`FORMAT_VERSION`]. Another process that migrated first leaves
    /// nothing to do.
    pub(super) fn migrate(&mut self, from: u64) -> Result<()> {
        if from != 1 {
            return Err(Error::UnsupportedFormat {
                what: self.path.display().to_string(),
                found: from.to_string(),
                supported: "format 1, the only one to migrate from".into(),
            });
        }
        // A format-2 file whose meta says 1 (an edited meta row) must not be
        // "migrated" a second time: refuse it untouched.
        if self.has_column("secrets", "uid")? {
            return Err(self.integrity(format!(
                "{} claims vault format 1 but its tables are format {FORMAT_VERSION}: its meta \
                 table was altered; restore the file from a backup",
                self.path.display()
            )));
        }
        self.copy_before_migration()?;
        self.transaction(|v| {
            // Under the write lock: has another process migrated meanwhile?
            if v.stored_format()? >= FORMAT_VERSION {
                return Ok(());
            }
            v.migrate_1_to_2()
        })?;
        // Old ciphertext leaves the WAL too (as after a purge).
        self.checkpoint_truncate();
        Ok(())
    }

    fn migrate_1_to_2(&mut self) -> Result<()> {
        self.conn
            .execute_batch(schema::MIGRATE_1_TO_2)
            .map_err(|e| self.db(e))?;
        let named_keys = self.has_table("named_keys")?;
        if named_keys {
            self.conn
                .execute_batch(schema::MIGRATE_1_TO_2_NAMED_KEYS)
                .map_err(|e| self.db(e))?;
        }
        let mut records = 0u64;
        records += self.rebind(Table::SECRETS)?;
        if named_keys {
            records += self.rebind(Table::NAMED_KEYS)?;
        }
        self.conn
            .execute(
                "UPDATE meta SET value = ?1 WHERE key = 'format_version'",
                [&FORMAT_VERSION.to_be_bytes()[..]],
            )
            .map_err(|e| self.db(e))?;
        let body = self.audit_body(
            Operation::Migrate,
            None,
            vec![records],
            "ok",
            Some(format!("vault format 1 to {FORMAT_VERSION}")),
        );
        self.append_audit(&body)
    }

    /// Gives every row of `table` a record id and re-seals its header and
    /// its versions' bodies under format-2 associated data. Returns the
    /// number of records re-sealed.
    fn rebind(&mut self, table: Table) -> Result<u64> {
        let rows: Vec<(i64, u32, Vec<u8>)> = self
            .conn
            .prepare(&format!(
                "SELECT id, header_key, header FROM {} ORDER BY id",
                table.owners
            ))
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(|e| self.db(e))?;
        let (wk, vid) = (self.write_key, self.vault_id);
        let mut records = 0;
        for (id, key_id, blob) in rows {
            let owner = Owner::new(id);
            let old = RecordAad {
                kind: table.header,
                vault_id: vid,
                row: id as u64,
                version: 0,
                key_id,
            };
            let plain = open(self.dek(key_id)?, &old.bytes(), &blob)
                .map_err(|_| self.not_format_1(&format!("the header of {} {id}", table.what)))?;
            let sealed = seal(
                self.write_dek(),
                &owner.aad(table.header, &vid, 0, wk),
                &plain,
            );
            drop(plain);
            self.conn
                .execute(
                    &format!(
                        "UPDATE {} SET header = ?2, header_key = ?3, uid = ?4 WHERE id = ?1",
                        table.owners
                    ),
                    params![id, sealed, wk, &owner.uid[..]],
                )
                .map_err(|e| self.db(e))?;
            records += 1;
            let versions: Vec<(u64, u32, Vec<u8>)> = self
                .conn
                .prepare(&format!(
                    "SELECT version, {key}, body FROM {t} WHERE {owner} = ?1 AND body IS NOT NULL",
                    key = table.key_column,
                    t = table.versions,
                    owner = table.owner_column
                ))
                .and_then(|mut s| {
                    s.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                        .collect()
                })
                .map_err(|e| self.db(e))?;
            for (version, key_id, blob) in versions {
                let old = RecordAad {
                    kind: table.version,
                    vault_id: vid,
                    row: id as u64,
                    version,
                    key_id,
                };
                let plain = open(self.dek(key_id)?, &old.bytes(), &blob).map_err(|_| {
                    self.not_format_1(&format!("{} {id} version {version}", table.what))
                })?;
                let sealed = seal(
                    self.write_dek(),
                    &owner.aad(table.version, &vid, version, wk),
                    &plain,
                );
                drop(plain);
                self.conn
                    .execute(
                        &format!(
                            "UPDATE {t} SET body = ?3, {key} = ?4 WHERE {owner} = ?1 AND version = ?2",
                            key = table.key_column,
                            t = table.versions,
                            owner = table.owner_column
                        ),
                        params![id, version, sealed, wk],
                    )
                    .map_err(|e| self.db(e))?;
                records += 1;
            }
        }
        Ok(records)
    }

    fn not_format_1(&self, what: &str) -> Error {
        self.integrity(format!(
            "{what} in {} does not decrypt as a format-1 record: the file was altered; nothing \
             was migrated (restore the file from a backup)",
            self.path.display()
        ))
    }

    /// Writes a private copy of the format-1 file to `<vault>.pre-v2`
    /// (0600, created exclusively) with SQLite's `VACUUM INTO`, which reads
    /// one consistent snapshot. A copy left by an earlier attempt is kept.
    fn copy_before_migration(&self) -> Result<()> {
        let copy = self.pre_migration_path();
        let io = |source| Error::Io {
            store: STORE.into(),
            path: copy.clone(),
            source,
        };
        {
            use std::os::unix::fs::OpenOptionsExt;
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&copy)
            {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
                Err(e) => return Err(io(e)),
            }
        }
        let target = copy.to_str().ok_or_else(|| Error::UnsafePath {
            path: copy.clone(),
            problem: "the vault's path is not UTF-8; SQLite cannot write the copy before \
                          the format migration"
                .into(),
        })?;
        if let Err(e) = self.conn.execute("VACUUM INTO ?1", [target]) {
            let _ = fs::remove_file(&copy);
            return Err(self.db(e));
        }
        // Durable before the migration commits: the file, then its folder.
        let file = fs::OpenOptions::new()
            .append(true)
            .open(&copy)
            .map_err(io)?;
        file.sync_all().map_err(io)?;
        if let Some(dir) = copy.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| Error::Io {
                    store: STORE.into(),
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        Ok(())
    }

    fn pre_migration_path(&self) -> PathBuf {
        let mut copy = self.path.clone().into_os_string();
        copy.push(format!(".pre-v{FORMAT_VERSION}"));
        PathBuf::from(copy)
    }

    fn stored_format(&self) -> Result<u64> {
        let value: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'format_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        value
            .and_then(|v| <[u8; 8]>::try_from(&v[..]).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| self.integrity("the vault's format version is missing".into()))
    }

    fn has_table(&self, table: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .map_err(|e| self.db(e))
    }

    fn has_column(&self, table: &str, column: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
                [table, column],
                |r| r.get(0),
            )
            .map_err(|e| self.db(e))
    }
}

/// The tables of one kind of owner and its versions.
#[derive(Clone, Copy)]
struct Table {
    what: &'static str,
    owners: &'static str,
    versions: &'static str,
    owner_column: &'static str,
    key_column: &'static str,
    header: RecordKind,
    version: RecordKind,
}

impl Table {
    const SECRETS: Table = Table {
        what: "secret",
        owners: "secrets",
        versions: "versions",
        owner_column: "secret_id",
        key_column: "key_id",
        header: RecordKind::SecretHeader,
        version: RecordKind::SecretVersion,
    };
    const NAMED_KEYS: Table = Table {
        what: "named key",
        owners: "named_keys",
        versions: "named_key_versions",
        owner_column: "key_id_ref",
        key_column: "data_key",
        header: RecordKind::NamedKeyHeader,
        version: RecordKind::NamedKeyVersion,
    };
}
