//! Named encryption keys for applications: keys that never leave the vault,
//! used to seal application data into one-line envelopes
//! (VAULT-FORMAT.md: "Records", "Tables" and "Envelopes of named keys").
//!
//! A named key has versions 1, 2, 3 …; `rotate` adds one and new envelopes
//! use the newest; older envelopes keep opening until the key's minimum
//! decryption version passes them; `rewrap` moves an envelope to the newest
//! version without handing its plaintext to the caller.
//!
//! Storage follows secrets and versions: a `named_keys` row per key (blind
//! index, sealed header of record kind 4) and a `named_key_versions` row per
//! version (sealed key material, record kind 5), under the vault's data keys.
//!
//! Speed: the material of a version is unwrapped once and kept in memory
//! (wiped on drop, locked where the OS allows) for as long as the vault stays
//! unlocked. A change committed by another process empties that cache
//! (SQLite's `data_version`, read at most every [`CACHE_CHECK_INTERVAL`]),
//! so another process's `rotate`, `config` or `delete` shows within 100 ms.
//! Uses of keys (`encrypt`, `decrypt`, `rewrap`, `list`) are audited in
//! groups: see [`Keys`].

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use tresor_core::{Error, Operation, Result, SecretName, SecretValue};
use tresor_crypto::{
    BOUND_AAD_LEN, Envelope, EnvelopeError, Key, KeyType, NAMED_KEY_INDEX_PREFIX, RecordKind,
    VaultKeys, open, seal, seal_envelope,
};

use crate::payload::{decode, decode_owned, encode};
use crate::schema;
use crate::vault::{Owner, Vault, now_ms};

const STORE: &str = "vault";

/// How long uses of named keys are gathered before the next use writes
/// their audit entries (also written on [`Keys::flush`], before any change,
/// and when the [`Keys`] handle drops).
pub const AUDIT_INTERVAL: Duration = Duration::from_secs(1);

/// How often a cached key is checked against changes other processes
/// committed (a `rotate`, `config` or `delete` elsewhere shows within this
/// interval; this process's own changes show at once).
pub const CACHE_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Distinct groups of uses kept before an early flush.
const MAX_GROUPS: usize = 1024;

/// Envelopes one version of an AES-256-GCM named key may seal: 2^32. Its
/// nonces are 96 random bits, and NIST SP 800-38D caps random-nonce
/// encryptions under one key at 2^32 (the chance of a repeated nonce, which
/// gives away the key's authentication, stays below 2^-32). Past it,
/// `encrypt` and `rewrap` refuse until the key is rotated.
/// XChaCha20-Poly1305 keys (192-bit nonces) are not counted.
pub const GCM_BUDGET: u64 = 1 << 32;

/// From this many envelopes on, a version of an AES-256-GCM key is near
/// its budget: [`Keys::take_budget_warnings`] says so, and so does
/// [`KeyInfo::encryptions`].
pub const GCM_WARN_AT: u64 = 1 << 31;

/// Encryptions reserved with one write: a process counts in memory within
/// a block and writes (durably) only to reserve the next one; a crash
/// forfeits at most the unused rest of a block, counted as used.
pub const GCM_RESERVE_BLOCK: u64 = 65_536;

/// A version of an AES-256-GCM named key near its encryption budget
/// ([`GCM_WARN_AT`]). Its text says what is wrong; rotating the key is the
/// remedy, which a caller names in its own terms (the CLI: `tresor key
/// rotate NAME`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BudgetWarning {
    /// The key.
    pub name: SecretName,
    /// The version near its budget.
    pub version: u32,
    /// Envelopes sealed, or reserved, so far.
    pub sealed: u64,
    /// The budget.
    pub limit: u64,
}

impl std::fmt::Display for BudgetWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "named key '{}' version {} has sealed up to {} of the {} envelopes an AES-256-GCM \
             key (random 96-bit nonces) may seal; rotate it soon, and for high volume use a key \
             of type xchacha20-poly1305",
            self.name, self.version, self.sealed, self.limit
        )
    }
}

/// A named key as listed: never its material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The key's name (the secret-name rule applies).
    pub name: SecretName,
    /// Its cipher.
    #[serde(rename = "type")]
    pub key_type: KeyType,
    /// The newest version: the one `encrypt` and `rewrap` use.
    #[serde(rename = "latest_version")]
    pub latest: u32,
    /// Envelopes of older versions are refused.
    pub min_decryption_version: u32,
    /// When the key was made, in ms since the epoch.
    pub created_at: i64,
    /// Envelopes counted against the newest version's budget (AES-256-GCM
    /// keys only: reserved in blocks of [`GCM_RESERVE_BLOCK`], so an upper
    /// bound); `None` for other types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryptions: Option<u64>,
    /// The budget of [`KeyInfo::encryptions`]: [`GCM_BUDGET`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_budget: Option<u64>,
}

impl KeyInfo {
    /// Whether the newest version has used half its budget or more: time to
    /// rotate (`tresor key rotate NAME`).
    pub fn near_budget(&self) -> bool {
        self.encryptions.is_some_and(|n| n >= GCM_WARN_AT)
    }
}

impl Vault {
    /// The vault's named encryption keys, for applications to seal data
    /// with keys that never leave the vault.
    ///
    /// Hold one handle for a run of calls: uses are audited in groups that
    /// are written when the handle drops (and every [`AUDIT_INTERVAL`]).
    ///
    /// ```
    /// use tresor_core::SecretName;
    /// use tresor_crypto::KeyType;
    /// use tresor_crypto::slot::{Credential, new_key_file_text};
    /// use tresor_vault::{CreateOptions, Vault};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let credential = Credential::key_material(new_key_file_text().as_bytes()).unwrap();
    /// let mut vault = Vault::create(&dir.path().join("vault.db"), &credential, &CreateOptions::default())?.vault;
    ///
    /// let mut keys = vault.keys();
    /// let name = SecretName::new("app/orders")?;
    /// keys.create(&name, KeyType::default())?;
    /// let envelope = keys.encrypt(&name, b"card 4111")?;
    /// assert!(envelope.starts_with("tresor:v1:app/orders:1:"));
    ///
    /// keys.rotate(&name)?;
    /// let newer = keys.rewrap(&envelope)?;
    /// assert!(newer.starts_with("tresor:v1:app/orders:2:"));
    /// keys.config(&name, 2)?; // version 1 envelopes are refused from now on
    /// assert!(keys.decrypt(&envelope).is_err());
    /// assert_eq!(keys.decrypt(&newer)?.expose_secret(), b"card 4111");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn keys(&mut self) -> Keys<'_> {
        Keys {
            vault: self,
            uses: Vec::new(),
            since: None,
        }
    }
}

/// The named keys of an unlocked vault (from [`Vault::keys`]).
///
/// Changes (`create`, `rotate`, `config`, `delete`) each commit one durable
/// transaction with their audit entry, like any vault write.
///
/// Uses (`encrypt`, `decrypt`, `rewrap`, `list`) write nothing to the vault
/// themselves, so they are audited like reads (and not at all with the
/// setting `audit_reads` off), but in groups: calls with the same operation,
/// key, versions and result are counted, and each group becomes one audit
/// entry whose reason is its count (`1000 calls`). Groups are written by
/// the first use [`AUDIT_INTERVAL`] or more after the oldest of them, before
/// any change, on [`Keys::flush`] and when the handle drops, in one
/// transaction at `synchronous=NORMAL` as read entries are. The cost of
/// auditing is then independent of the call rate; the price is that a
/// process killed between two writes loses the use entries gathered since
/// the last one (never a change's). A call whose flush fails returns the
/// error (and no plaintext).
pub struct Keys<'v> {
    vault: &'v mut Vault,
    uses: Vec<Use>,
    since: Option<Instant>,
}

/// What an age key is lent for ([`Keys::age_use`]); names the audit entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgeUse {
    /// Decrypting an age file: every version allowed by the minimum.
    Decrypt,
    /// Encrypting an age file to the newest version's recipient.
    Encrypt,
    /// Showing the newest version's public recipient.
    Recipient,
}

impl AgeUse {
    /// The audit operation: `key decrypt file`, `key encrypt file` or
    /// `key recipient`.
    pub fn operation(self) -> Operation {
        match self {
            AgeUse::Decrypt => Operation::KeyDecryptFile,
            AgeUse::Encrypt => Operation::KeyEncryptFile,
            AgeUse::Recipient => Operation::KeyRecipient,
        }
    }
}

/// An opened envelope: its plaintext and version.
type Opened = (Zeroizing<Vec<u8>>, u32);

/// One group of audited uses.
struct Use {
    op: Operation,
    name: Option<SecretName>,
    versions: Vec<u64>,
    result: &'static str,
    calls: u64,
}

impl Keys<'_> {
    /// Makes a named key with a fresh random version 1.
    ///
    /// A name in use is refused; the name of a deleted key can be used
    /// again, and its versions continue after the deleted ones, so an old
    /// envelope never opens under the new key (it reports its version as
    /// destroyed).
    pub fn create(&mut self, name: &SecretName, key_type: KeyType) -> Result<KeyInfo> {
        self.before_change()?;
        let reason = format!("type {key_type}");
        let info = self
            .vault
            .write(Operation::KeyCreate, Some(name), Some(&reason), |v| {
                let bidx = blind_index(v.vault_keys(), name.as_str());
                let now = now_ms();
                let (owner, header) = match find(v, name, &bidx)? {
                    Some((_, h)) if h.deleted_at.is_none() => {
                        return Err(Error::Validation(format!(
                            "named key '{name}' already exists (version {}); rotating it \
                             adds a version",
                            h.latest
                        )));
                    }
                    // The name of a deleted key, used anew: same row, new
                    // record id, so the old incarnation's records never open.
                    Some((old_owner, old)) => {
                        let first = next_version(name, old.latest)?;
                        (
                            Owner::new(old_owner.id),
                            new_header(name, key_type, now, first),
                        )
                    }
                    None => (Owner::new(next_id(v)?), new_header(name, key_type, now, 1)),
                };
                store_header(v, owner, &header, &bidx)?;
                store_version(v, owner, header.latest, &Key::random(), now)?;
                let info = info_of(v, owner, name, &header)?;
                Ok((info, vec![u64::from(header.latest)]))
            })?;
        self.forget(name);
        Ok(info)
    }

    /// Every named key (not deleted ones), sorted by name.
    pub fn list(&mut self) -> Result<Vec<KeyInfo>> {
        self.prepare()?;
        type Row = (i64, u32, Vec<u8>, u32, u32, Option<i64>, Vec<u8>);
        let v = &*self.vault;
        let rows: Vec<Row> = v
            .conn()
            .prepare_cached(
                "SELECT id, header_key, header, latest, min_decrypt, deleted_at, uid
                 FROM named_keys WHERE deleted_at IS NULL",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })?
                .collect()
            })
            .map_err(|e| v.db(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, key_id, blob, latest, min_decrypt, deleted_at, uid) in rows {
            let owner = Owner::from_row(id, &uid, "named key")?;
            let header = open_header(v, owner, key_id, &blob)?;
            check_columns(v, &header, latest, min_decrypt, deleted_at)?;
            let name = SecretName::new(header.name.clone())
                .map_err(|_| v.integrity(format!("named key {id} has an invalid name")))?;
            out.push(info_of(v, owner, &name, &header)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        self.record(Operation::KeyList, None, &[], "ok")?;
        Ok(out)
    }

    /// One named key's type and versions.
    pub fn info(&mut self, name: &SecretName) -> Result<KeyInfo> {
        self.prepare()?;
        let (owner, header, _) = live(self.vault, name)?;
        info_of(self.vault, owner, name, &header)
    }

    /// Adds a fresh random version; new envelopes use it. Returns its number.
    pub fn rotate(&mut self, name: &SecretName) -> Result<u32> {
        self.before_change()?;
        let version = self
            .vault
            .write(Operation::KeyRotate, Some(name), None, |v| {
                let (owner, mut header, bidx) = live(v, name)?;
                header.latest = next_version(name, header.latest)?;
                store_header(v, owner, &header, &bidx)?;
                store_version(v, owner, header.latest, &Key::random(), now_ms())?;
                Ok((header.latest, vec![u64::from(header.latest)]))
            })?;
        self.forget(name);
        Ok(version)
    }

    /// Sets the minimum decryption version: envelopes of older versions are
    /// refused (their material is kept; lowering the minimum again lets them
    /// open). It must lie between 1 and the newest version.
    pub fn config(&mut self, name: &SecretName, min_decryption_version: u32) -> Result<KeyInfo> {
        self.before_change()?;
        let reason = format!("min_decryption_version {min_decryption_version}");
        let info = self
            .vault
            .write(Operation::KeyConfig, Some(name), Some(&reason), |v| {
                let (owner, mut header, bidx) = live(v, name)?;
                if min_decryption_version == 0 || min_decryption_version > header.latest {
                    return Err(Error::Validation(format!(
                        "the minimum decryption version of '{name}' must lie between 1 and its \
                     newest version {}, not {min_decryption_version}",
                        header.latest
                    )));
                }
                header.min_decrypt = min_decryption_version;
                store_header(v, owner, &header, &bidx)?;
                Ok((
                    info_of(v, owner, name, &header)?,
                    vec![u64::from(min_decryption_version)],
                ))
            })?;
        self.forget(name);
        Ok(info)
    }

    /// Deletes a named key and destroys the material of every version: no
    /// envelope made with it can be opened again, by anyone.
    pub fn delete(&mut self, name: &SecretName) -> Result<()> {
        self.before_change()?;
        self.vault
            .write(Operation::KeyDelete, Some(name), None, |v| {
                let (owner, mut header, bidx) = live(v, name)?;
                v.conn()
                    .prepare_cached("DELETE FROM named_key_versions WHERE key_id_ref = ?1")
                    .and_then(|mut s| s.execute([owner.id]))
                    .map_err(|e| v.db(e))?;
                header.deleted_at = Some(now_ms());
                store_header(v, owner, &header, &bidx)?;
                Ok(((), vec![]))
            })?;
        self.forget(name);
        // Freed pages are zeroed (secure_delete); truncating the WAL removes
        // the old sealed material from it too.
        self.vault.checkpoint_truncate();
        Ok(())
    }

    /// Seals `plaintext` under the newest version of `name`; returns the
    /// envelope `tresor:v1:<name>:<version>:<base64url>`.
    pub fn encrypt(&mut self, name: &SecretName, plaintext: &[u8]) -> Result<String> {
        let result = self.encrypt_latest(name, plaintext);
        let (version, outcome) = match &result {
            Ok((_, version)) => (Some(u64::from(*version)), "ok"),
            Err(e) => (None, e.kind()),
        };
        self.record(
            Operation::KeyEncrypt,
            Some(name),
            version.as_slice(),
            outcome,
        )?;
        result.map(|(envelope, _)| envelope)
    }

    /// Opens an envelope made by [`Keys::encrypt`] or [`Keys::rewrap`].
    ///
    /// Errors: `NotFound` for an unknown key or version, or one destroyed by
    /// `delete`; `Validation` for a version below the key's minimum (the
    /// message names both) or a text that is not an envelope; `Integrity`
    /// for an envelope that was altered, truncated, or made by another vault.
    pub fn decrypt(&mut self, envelope: &str) -> Result<SecretValue> {
        let (name, result) = match self.open_envelope(envelope) {
            Ok((name, opened)) => (Some(name), opened),
            Err(e) => (None, Err(e)),
        };
        let (version, outcome) = match &result {
            Ok((_, version)) => (Some(u64::from(*version)), "ok"),
            Err(e) => (None, e.kind()),
        };
        self.record(
            Operation::KeyDecrypt,
            name.as_ref(),
            version.as_slice(),
            outcome,
        )?;
        let (mut plain, _) = result?;
        Ok(SecretValue::from(std::mem::take(&mut *plain)))
    }

    /// Opens an envelope and seals its plaintext again under the newest
    /// version of its key, without returning the plaintext. The same checks
    /// as [`Keys::decrypt`] apply to the old envelope.
    pub fn rewrap(&mut self, envelope: &str) -> Result<String> {
        let (name, result) = match self.open_envelope(envelope) {
            Ok((name, opened)) => {
                let result = opened.and_then(|(plain, from)| {
                    let (envelope, to) = self.encrypt_latest(&name, &plain)?;
                    Ok((envelope, from, to))
                });
                (Some(name), result)
            }
            Err(e) => (None, Err(e)),
        };
        let (versions, outcome) = match &result {
            Ok((_, from, to)) => ([u64::from(*from), u64::from(*to)], "ok"),
            Err(e) => ([0, 0], e.kind()),
        };
        let versions = if result.is_ok() { &versions[..] } else { &[] };
        self.record(Operation::KeyRewrap, name.as_ref(), versions, outcome)?;
        result.map(|(envelope, _, _)| envelope)
    }

    /// Lends the identity material of an age key (type
    /// [`KeyType::AgeX25519`]: 32 bytes, the X25519 secret scalar) to `f`,
    /// and audits the use like an envelope's (grouped; operation
    /// [`AgeUse::operation`], the version `f` reports, and the outcome).
    ///
    /// [`AgeUse::Recipient`] and [`AgeUse::Encrypt`] lend the newest
    /// version; [`AgeUse::Decrypt`] lends every version from the key's
    /// minimum decryption version up, newest first, and `f` says which one
    /// worked. The material stays in the vault's cache (wiped on drop); `f`
    /// must not keep a copy beyond its work.
    ///
    /// Errors: `NotFound` for an unknown key, `Validation` for a key of
    /// another type.
    pub fn age_use<T>(
        &mut self,
        name: &SecretName,
        purpose: AgeUse,
        f: impl FnOnce(&[(u32, &Key)]) -> Result<(T, Option<u32>)>,
    ) -> Result<T> {
        let result = self.age_versions(name, purpose).and_then(|versions| {
            let state = &self.vault.named_keys.keys[name.as_str()];
            let lent: Vec<(u32, &Key)> =
                versions.iter().map(|v| (*v, &state.material[v])).collect();
            f(&lent)
        });
        let (version, outcome) = match &result {
            Ok((_, version)) => (version.map(u64::from), "ok"),
            Err(e) => (None, e.kind()),
        };
        self.record(purpose.operation(), Some(name), version.as_slice(), outcome)?;
        result.map(|(value, _)| value)
    }

    /// Writes the audit entries of the uses gathered so far.
    pub fn flush(&mut self) -> Result<()> {
        if self.uses.is_empty() {
            return Ok(());
        }
        let uses = std::mem::take(&mut self.uses);
        self.since = None;
        let vault = &mut *self.vault;
        vault.exec_cached("PRAGMA synchronous=NORMAL")?;
        let result = vault.transaction(|v| {
            for u in &uses {
                let calls = match u.calls {
                    1 => "1 call".to_string(),
                    n => format!("{n} calls"),
                };
                let body = v.audit_body(
                    u.op.clone(),
                    u.name.as_ref(),
                    u.versions.clone(),
                    u.result,
                    Some(calls),
                );
                v.append_audit(&body)?;
            }
            Ok(())
        });
        let restored = vault.exec_cached("PRAGMA synchronous=FULL");
        if result.is_err() {
            // Keep them for the next attempt, an interval from now.
            self.uses = uses;
            self.since = Some(Instant::now());
        }
        result.and(restored)
    }

    // ------------------------------------------------------------ internals

    /// Creates the tables in a vault made before them (once per unlocked
    /// vault), and empties the cache when another connection has committed.
    fn prepare(&mut self) -> Result<()> {
        let v = &mut *self.vault;
        if !v.named_keys.ready {
            if !tables_exist(v)? {
                v.transaction(|v| {
                    v.conn()
                        .execute_batch(schema::CREATE_NAMED_KEYS)
                        .map_err(|e| v.db(e))
                })?;
            }
            v.named_keys.ready = true;
        }
        // Asking SQLite costs about as much as an envelope: once per
        // interval is enough to see other processes' changes promptly.
        let now = Instant::now();
        if v.named_keys
            .checked_at
            .is_some_and(|t| now.duration_since(t) < CACHE_CHECK_INTERVAL)
        {
            return Ok(());
        }
        let version: i64 = v
            .conn()
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| v.db(e))?;
        if v.named_keys.data_version != Some(version) {
            // Another connection committed: it may have rekeyed, re-sealing
            // the key versions under data keys this handle lacks.
            v.ensure_keys_current()?;
            v.named_keys.keys.clear();
            v.named_keys.data_version = Some(version);
        }
        v.named_keys.checked_at = Some(now);
        Ok(())
    }

    fn before_change(&mut self) -> Result<()> {
        self.flush()?;
        self.vault.named_keys.checked_at = None;
        self.prepare()
    }

    /// Drops what the cache holds about `name` (its material is wiped).
    fn forget(&mut self, name: &SecretName) {
        self.vault.named_keys.keys.remove(name.as_str());
    }

    fn encrypt_latest(&mut self, name: &SecretName, plaintext: &[u8]) -> Result<(String, u32)> {
        self.prepare()?;
        let state = self.cached(name)?;
        let (latest, owner, key_type) = (state.latest, state.owner, state.key_type);
        if !key_type.seals_envelopes() {
            return Err(no_envelopes(name, key_type));
        }
        if key_type == KeyType::Aes256Gcm {
            // Loaded first: a destroyed version is reported as such.
            self.material(name, latest)?;
            self.count_encryption(name, owner, latest)?;
        }
        let (key_type, key) = self.material(name, latest)?;
        let envelope = seal_envelope(key_type, key, name.as_str(), latest, plaintext)
            .map_err(|_| no_envelopes(name, key_type))?;
        Ok((envelope, latest))
    }

    /// Counts one encryption with an AES-256-GCM key version against its
    /// budget: from this process's reserved block, else by reserving the
    /// next block in the vault (committed before the encryption happens).
    fn count_encryption(&mut self, name: &SecretName, owner: Owner, version: u32) -> Result<()> {
        let cache = &mut self.vault.named_keys;
        if let Some(block) = cache.reserved.get_mut(&(owner.uid, version))
            && block.next < block.end
        {
            block.next += 1;
            return Ok(());
        }
        let budget = cache.budget;
        let block = self.vault.transaction(|v| {
            let sealed: Option<u64> = v
                .conn()
                .prepare_cached(
                    "SELECT sealed FROM named_key_versions WHERE key_id_ref = ?1 AND version = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![owner.id, version], |r| r.get(0))
                        .optional()
                })
                .map_err(|e| v.db(e))?;
            let start = sealed.ok_or_else(|| destroyed(name, version))?;
            if start >= budget.limit {
                return Err(over_budget(name, version, budget.limit));
            }
            let end = start.saturating_add(budget.block).min(budget.limit);
            v.conn()
                .prepare_cached(
                    "UPDATE named_key_versions SET sealed = ?3 WHERE key_id_ref = ?1 AND version = ?2",
                )
                .and_then(|mut s| s.execute(params![owner.id, version, end]))
                .map_err(|e| v.db(e))?;
            Ok(Block {
                id: owner.id,
                next: start + 1,
                end,
            })
        })?;
        let cache = &mut self.vault.named_keys;
        if block.end > budget.warn_at {
            cache.warnings.push(BudgetWarning {
                name: name.clone(),
                version,
                sealed: block.end,
                limit: budget.limit,
            });
        }
        cache.reserved.insert((owner.uid, version), block);
        Ok(())
    }

    /// Takes the warnings of AES-256-GCM key versions near their budget
    /// ([`GCM_WARN_AT`] of [`GCM_BUDGET`] envelopes) given since the last
    /// call: one each time a block of encryptions is reserved past the
    /// mark. Show them to the user (the CLI prints them on stderr).
    pub fn take_budget_warnings(&mut self) -> Vec<BudgetWarning> {
        std::mem::take(&mut self.vault.named_keys.warnings)
    }

    /// Loads the versions an age use gets into the cache; returns their
    /// numbers, newest first.
    fn age_versions(&mut self, name: &SecretName, purpose: AgeUse) -> Result<Vec<u32>> {
        self.prepare()?;
        let state = self.cached(name)?;
        if state.key_type != KeyType::AgeX25519 {
            return Err(Error::WrongKeyType {
                name: name.to_string(),
                key_type: state.key_type.to_string(),
                purpose: "do not encrypt or decrypt files: that needs an age key",
            });
        }
        let (owner, latest, min) = (state.owner, state.latest, state.min_decrypt);
        let wanted = match purpose {
            AgeUse::Recipient | AgeUse::Encrypt => latest..=latest,
            AgeUse::Decrypt => min..=latest,
        };
        let mut versions = Vec::new();
        for version in wanted.rev() {
            if self.vault.named_keys.keys[name.as_str()]
                .material
                .contains_key(&version)
            {
                versions.push(version);
            } else if let Some(key) = load_material(self.vault, owner, name, version)? {
                if let Some(state) = self.vault.named_keys.keys.get_mut(name.as_str()) {
                    state.material.insert(version, key);
                }
                versions.push(version);
            }
        }
        if versions.is_empty() {
            return Err(destroyed(name, latest));
        }
        Ok(versions)
    }

    /// Parses and opens an envelope. The outer error: no valid key name
    /// (nothing to name in the audit entry); the inner one: the named key
    /// refused it.
    fn open_envelope(&mut self, text: &str) -> Result<(SecretName, Result<Opened>)> {
        let envelope = Envelope::parse(text).map_err(envelope_error)?;
        let name = SecretName::new(envelope.name).map_err(|_| Error::Integrity {
            store: STORE.into(),
            detail: "the envelope's key name breaks the naming rule: it was altered".into(),
        })?;
        let result = self.open_with(&name, &envelope);
        Ok((name, result))
    }

    fn open_with(&mut self, name: &SecretName, envelope: &Envelope<'_>) -> Result<Opened> {
        self.prepare()?;
        let version = envelope.version;
        let state = self.cached(name)?;
        let (owner, latest, min) = (state.owner, state.latest, state.min_decrypt);
        if !state.key_type.seals_envelopes() {
            return Err(no_envelopes(name, state.key_type));
        }
        if version > latest {
            return Err(Error::NotFound {
                store: STORE.into(),
                what: format!("named key '{name}' version {version}"),
            });
        }
        if version < min {
            if load_material(self.vault, owner, name, version)?.is_none() {
                return Err(destroyed(name, version));
            }
            return Err(Error::Validation(format!(
                "the envelope uses version {version} of named key '{name}', below its minimum \
                 decryption version {min}; lowering the minimum to {version} would allow it \
                 again"
            )));
        }
        let (key_type, key) = self.material(name, version)?;
        let plain = envelope.open(key_type, key).map_err(|_| Error::Integrity {
            store: STORE.into(),
            detail: format!(
                "the envelope for named key '{name}' version {version} does not decrypt: it was \
                 altered, or made by another vault or an earlier key of that name"
            ),
        })?;
        Ok((plain, version))
    }

    /// The cached header of a live key, read from the vault on a miss.
    fn cached(&mut self, name: &SecretName) -> Result<&Cached> {
        if !self.vault.named_keys.keys.contains_key(name.as_str()) {
            let (owner, header, _) = live(self.vault, name)?;
            self.vault.named_keys.keys.insert(
                name.to_string(),
                Cached {
                    owner,
                    key_type: header.key_type,
                    latest: header.latest,
                    min_decrypt: header.min_decrypt,
                    material: HashMap::new(),
                },
            );
        }
        Ok(&self.vault.named_keys.keys[name.as_str()])
    }

    /// The material of one version, unwrapped on first use.
    fn material(&mut self, name: &SecretName, version: u32) -> Result<(KeyType, &Key)> {
        let state = self.cached(name)?;
        let (owner, loaded) = (state.owner, state.material.contains_key(&version));
        if !loaded {
            let key = load_material(self.vault, owner, name, version)?
                .ok_or_else(|| destroyed(name, version))?;
            if let Some(state) = self.vault.named_keys.keys.get_mut(name.as_str()) {
                state.material.insert(version, key);
            }
        }
        let state = &self.vault.named_keys.keys[name.as_str()];
        Ok((state.key_type, &state.material[&version]))
    }

    /// Counts one use into its group; writes the groups once the interval
    /// has passed.
    fn record(
        &mut self,
        op: Operation,
        name: Option<&SecretName>,
        versions: &[u64],
        result: &'static str,
    ) -> Result<()> {
        // Successful uses are read-like and follow `audit_reads`; every
        // failure (an altered or foreign envelope, a version below the
        // minimum, an unknown key, a wrong age identity) is always recorded.
        if !self.vault.settings().audit_reads && result == "ok" {
            return Ok(());
        }
        let group = self.uses.iter_mut().find(|u| {
            u.op == op && u.result == result && u.versions == versions && u.name.as_ref() == name
        });
        match group {
            Some(u) => u.calls += 1,
            None => self.uses.push(Use {
                op,
                name: name.cloned(),
                versions: versions.to_vec(),
                result,
                calls: 1,
            }),
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        if self.uses.len() >= MAX_GROUPS || since.elapsed() >= AUDIT_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }
}

impl Drop for Keys<'_> {
    fn drop(&mut self) {
        // Best effort: a caller that must know calls flush() first.
        let _ = self.flush();
    }
}

impl fmt::Debug for Keys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("pending_audit_groups", &self.uses.len())
            .finish_non_exhaustive()
    }
}

/// The key name and version an envelope names, without opening it: which
/// key a caller needs.
///
/// ```
/// let (name, version) = tresor_vault::envelope_key("tresor:v1:app/orders:3:AAAA")?;
/// assert_eq!((name.as_str(), version), ("app/orders", 3));
/// # Ok::<(), tresor_core::Error>(())
/// ```
pub fn envelope_key(envelope: &str) -> Result<(SecretName, u32)> {
    let parsed = Envelope::parse(envelope).map_err(envelope_error)?;
    let name = SecretName::new(parsed.name)?;
    Ok((name, parsed.version))
}

// ------------------------------------------------------------------ the cache

/// What an unlocked vault keeps in memory about named keys.
#[derive(Default)]
pub(crate) struct Cache {
    /// The tables exist (checked once).
    ready: bool,
    /// SQLite's `data_version` when the cache was last known fresh.
    data_version: Option<i64>,
    /// When `data_version` was last read.
    checked_at: Option<Instant>,
    /// Live keys by name.
    keys: HashMap<String, Cached>,
    /// Encryptions reserved by this process per AES-256-GCM key version,
    /// by record id and version; kept when `keys` is emptied, so another
    /// process's commit does not forfeit a block.
    reserved: HashMap<([u8; tresor_crypto::RECORD_UID_LEN], u32), Block>,
    /// Near-budget warnings not yet taken ([`Keys::take_budget_warnings`]).
    warnings: Vec<BudgetWarning>,
    /// The AES-256-GCM budget (lowered only by tests).
    budget: Budget,
}

/// The AES-256-GCM budget per key version and how it is counted.
#[derive(Clone, Copy, Debug)]
struct Budget {
    limit: u64,
    warn_at: u64,
    block: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            limit: GCM_BUDGET,
            warn_at: GCM_WARN_AT,
            block: GCM_RESERVE_BLOCK,
        }
    }
}

/// A block of encryption numbers this process reserved for the version of
/// the key in row `id`: `next..end` are still unused.
#[derive(Clone, Copy, Debug)]
struct Block {
    id: i64,
    next: u64,
    end: u64,
}

struct Cached {
    /// The key's row id and record id.
    owner: Owner,
    key_type: KeyType,
    latest: u32,
    min_decrypt: u32,
    /// Unwrapped material by version; each [`Key`] wipes itself on drop.
    material: HashMap<u32, Key>,
}

// ------------------------------------------------------------------ records

/// A named key's header (record kind 4). Authoritative: the plaintext
/// columns of `named_keys` mirror `latest`, `min_decrypt` and `deleted_at`
/// and are checked against it on every read.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct KeyHeader {
    name: String,
    key_type: KeyType,
    created_at: i64,
    min_decrypt: u32,
    latest: u32,
    deleted_at: Option<i64>,
}

/// One version of a named key (record kind 5), borrowed from the zeroizing
/// plaintext.
#[derive(Serialize, Deserialize)]
struct KeyVersionBody<'a> {
    #[serde(with = "serde_bytes", borrow)]
    material: &'a [u8],
    created_at: i64,
}

/// The blind index of a named key: HMAC-SHA256(index key, "key:" ‖ name).
fn blind_index(keys: &VaultKeys, name: &str) -> [u8; 32] {
    keys.index.mac(&[NAMED_KEY_INDEX_PREFIX, name.as_bytes()])
}

fn new_header(name: &SecretName, key_type: KeyType, now: i64, first: u32) -> KeyHeader {
    KeyHeader {
        name: name.to_string(),
        key_type,
        created_at: now,
        min_decrypt: first,
        latest: first,
        deleted_at: None,
    }
}

fn info_of(v: &Vault, owner: Owner, name: &SecretName, header: &KeyHeader) -> Result<KeyInfo> {
    let encryptions = if header.key_type == KeyType::Aes256Gcm {
        v.conn()
            .prepare_cached(
                "SELECT sealed FROM named_key_versions WHERE key_id_ref = ?1 AND version = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![owner.id, header.latest], |r| r.get::<_, u64>(0))
                    .optional()
            })
            .map_err(|e| v.db(e))?
    } else {
        None
    };
    Ok(KeyInfo {
        name: name.clone(),
        key_type: header.key_type,
        latest: header.latest,
        min_decryption_version: header.min_decrypt,
        created_at: header.created_at,
        encryptions,
        encryption_budget: encryptions.map(|_| GCM_BUDGET),
    })
}

fn next_version(name: &SecretName, latest: u32) -> Result<u32> {
    latest.checked_add(1).ok_or_else(|| {
        Error::Validation(format!(
            "named key '{name}' has used every version number; create a key under a new name"
        ))
    })
}

fn next_id(v: &Vault) -> Result<i64> {
    v.conn()
        .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM named_keys")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(|e| v.db(e))
}

fn not_found(name: &SecretName) -> Error {
    Error::NotFound {
        store: STORE.into(),
        what: format!("named key '{name}'"),
    }
}

fn destroyed(name: &SecretName, version: u32) -> Error {
    Error::NotFound {
        store: STORE.into(),
        what: format!("named key '{name}' version {version} (destroyed)"),
    }
}

fn over_budget(name: &SecretName, version: u32, limit: u64) -> Error {
    Error::KeyBudgetSpent {
        name: name.to_string(),
        version,
        limit,
    }
}

fn no_envelopes(name: &SecretName, key_type: KeyType) -> Error {
    Error::WrongKeyType {
        name: name.to_string(),
        key_type: key_type.to_string(),
        purpose: "encrypt files, not envelopes",
    }
}

fn envelope_error(e: EnvelopeError) -> Error {
    match e {
        EnvelopeError::Malformed(_) => Error::Integrity {
            store: STORE.into(),
            detail: format!("{e}: it was altered or cut short"),
        },
        EnvelopeError::UnsupportedFormat(found) => Error::UnsupportedFormat {
            what: "the envelope".into(),
            found,
            supported: "v1".into(),
        },
        EnvelopeError::NoEnvelopes(_) => Error::Validation(e.to_string()),
        _ => Error::Malformed {
            what: "the envelope".into(),
            problem: e.to_string(),
        },
    }
}

/// A key that exists and is not deleted: its owner, header and blind index.
fn live(v: &Vault, name: &SecretName) -> Result<(Owner, KeyHeader, [u8; 32])> {
    let bidx = blind_index(v.vault_keys(), name.as_str());
    match find(v, name, &bidx)? {
        Some((owner, header)) if header.deleted_at.is_none() => Ok((owner, header, bidx)),
        _ => Err(not_found(name)),
    }
}

/// The row under `bidx`, checked: its header must name `name` and agree
/// with the plaintext columns.
fn find(v: &Vault, name: &SecretName, bidx: &[u8; 32]) -> Result<Option<(Owner, KeyHeader)>> {
    type Row = (i64, u32, Vec<u8>, u32, u32, Option<i64>, Vec<u8>);
    let row: Option<Row> = v
        .conn()
        .prepare_cached(
            "SELECT id, header_key, header, latest, min_decrypt, deleted_at, uid
             FROM named_keys WHERE bidx = ?1",
        )
        .and_then(|mut s| {
            s.query_row([&bidx[..]], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .optional()
        })
        .map_err(|e| v.db(e))?;
    let Some((id, key_id, blob, latest, min_decrypt, deleted_at, uid)) = row else {
        return Ok(None);
    };
    let owner = Owner::from_row(id, &uid, "named key")?;
    let header = open_header(v, owner, key_id, &blob)?;
    if header.name != name.as_str() {
        return Err(v.integrity(format!(
            "the record found for named key '{name}' belongs to another key"
        )));
    }
    check_columns(v, &header, latest, min_decrypt, deleted_at)?;
    Ok(Some((owner, header)))
}

fn check_columns(
    v: &Vault,
    header: &KeyHeader,
    latest: u32,
    min_decrypt: u32,
    deleted_at: Option<i64>,
) -> Result<()> {
    if (header.latest, header.min_decrypt, header.deleted_at) != (latest, min_decrypt, deleted_at)
        || header.min_decrypt == 0
        || header.min_decrypt > header.latest
    {
        return Err(v.integrity(format!(
            "versions or state of named key '{}' do not match its header",
            header.name
        )));
    }
    Ok(())
}

/// The associated data of a named key's header (record kind 4).
fn header_aad(v: &Vault, owner: Owner, key_id: u32) -> [u8; BOUND_AAD_LEN] {
    owner.aad(RecordKind::NamedKeyHeader, &v.id(), 0, key_id)
}

/// The associated data of a named key's version (record kind 5).
fn version_aad(v: &Vault, owner: Owner, version: u32, key_id: u32) -> [u8; BOUND_AAD_LEN] {
    owner.aad(
        RecordKind::NamedKeyVersion,
        &v.id(),
        u64::from(version),
        key_id,
    )
}

fn open_header(v: &Vault, owner: Owner, key_id: u32, blob: &[u8]) -> Result<KeyHeader> {
    let plain = open(v.dek(key_id)?, &header_aad(v, owner, key_id), blob).map_err(|_| {
        v.integrity(format!(
            "the header of named key {} does not decrypt",
            owner.id
        ))
    })?;
    decode_owned(&plain, "a named-key header")
}

fn store_header(v: &Vault, owner: Owner, header: &KeyHeader, bidx: &[u8; 32]) -> Result<()> {
    let plain = encode(header, 64 + header.name.len());
    let sealed = seal(v.write_dek(), &header_aad(v, owner, v.write_key()), &plain);
    v.conn()
        .prepare_cached(
            "INSERT INTO named_keys(id, bidx, header, header_key, latest, min_decrypt, deleted_at, uid)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(id) DO UPDATE SET bidx = excluded.bidx, header = excluded.header,
               header_key = excluded.header_key, latest = excluded.latest,
               min_decrypt = excluded.min_decrypt, deleted_at = excluded.deleted_at,
               uid = excluded.uid",
        )
        .and_then(|mut s| {
            s.execute(params![
                owner.id,
                &bidx[..],
                sealed,
                v.write_key(),
                header.latest,
                header.min_decrypt,
                header.deleted_at,
                &owner.uid[..]
            ])
        })
        .map_err(|e| v.db(e))?;
    Ok(())
}

fn store_version(
    v: &Vault,
    owner: Owner,
    version: u32,
    material: &Key,
    created_at: i64,
) -> Result<()> {
    let body = KeyVersionBody {
        material: material.expose_secret(),
        created_at,
    };
    let plain = encode(&body, 48);
    let sealed = seal(
        v.write_dek(),
        &version_aad(v, owner, version, v.write_key()),
        &plain,
    );
    v.conn()
        .prepare_cached(
            "INSERT INTO named_key_versions(key_id_ref, version, data_key, body)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![owner.id, version, v.write_key(), sealed]))
        .map_err(|e| v.db(e))?;
    Ok(())
}

/// Unwraps one version's material; `None` when the version has no row.
fn load_material(v: &Vault, owner: Owner, name: &SecretName, version: u32) -> Result<Option<Key>> {
    let row: Option<(u32, Vec<u8>)> = v
        .conn()
        .prepare_cached(
            "SELECT data_key, body FROM named_key_versions WHERE key_id_ref = ?1 AND version = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![owner.id, version], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(|e| v.db(e))?;
    let Some((key_id, blob)) = row else {
        return Ok(None);
    };
    open_material(v, owner, version, key_id, &blob)
        .map(Some)
        .map_err(|_| {
            v.integrity(format!(
                "named key '{name}' version {version} does not decrypt"
            ))
        })
}

fn open_material(v: &Vault, owner: Owner, version: u32, key_id: u32, blob: &[u8]) -> Result<Key> {
    let bad = || {
        v.integrity(format!(
            "named key {} version {version} does not decrypt",
            owner.id
        ))
    };
    let plain = open(
        v.dek(key_id)?,
        &version_aad(v, owner, version, key_id),
        blob,
    )
    .map_err(|_| bad())?;
    let body: KeyVersionBody = decode(&plain, "a named-key version")?;
    Key::from_slice(body.material).ok_or_else(bad)
}

/// Gives back the unused rest of this process's reserved blocks when the
/// vault is dropped, so a short run (one `tresor key encrypt`) counts what it
/// used, not a whole block: `sealed` drops back to the next unused number,
/// only where no other process reserved after this one (its block ends
/// where the column stands). One `synchronous=NORMAL` transaction: a lost
/// give-back leaves the higher count, the safe side. Best effort.
pub(crate) fn release_reservations(v: &mut Vault) {
    let blocks: Vec<(u32, Block)> = v
        .named_keys
        .reserved
        .drain()
        .filter(|(_, b)| b.next < b.end)
        .map(|((_, version), b)| (version, b))
        .collect();
    if blocks.is_empty() {
        return;
    }
    if v.exec_cached("PRAGMA synchronous=NORMAL").is_err() {
        return;
    }
    let _ = v.transaction(|v| {
        for (version, b) in &blocks {
            v.conn()
                .prepare_cached(
                    "UPDATE named_key_versions SET sealed = ?3
                     WHERE key_id_ref = ?1 AND version = ?2 AND sealed = ?4",
                )
                .and_then(|mut s| s.execute(params![b.id, version, b.next, b.end]))
                .map_err(|e| v.db(e))?;
        }
        Ok(())
    });
    let _ = v.exec_cached("PRAGMA synchronous=FULL");
}

/// Whether the named-key tables exist (a vault made before them may lack
/// them until its first use of named keys).
fn tables_exist(v: &Vault) -> Result<bool> {
    v.conn()
        .query_row(
            "SELECT count(*) = 2 FROM sqlite_master WHERE type = 'table'
             AND name IN ('named_keys', 'named_key_versions')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| v.db(e))
}

// ------------------------------------------------------- verify and rekey

/// Checks every named key for `Vault::verify`: headers decrypt, sit under
/// their own blind index and agree with their columns; every version's
/// material decrypts and lies in range; a live key has its newest version,
/// a deleted key none. Returns (keys, versions).
pub(crate) fn verify(v: &mut Vault) -> Result<(u64, u64)> {
    if !tables_exist(v)? {
        return Ok((0, 0));
    }
    type Row = (i64, Vec<u8>, u32, Vec<u8>, u32, u32, Option<i64>, Vec<u8>);
    let rows: Vec<Row> = v
        .conn()
        .prepare(
            "SELECT id, bidx, header_key, header, latest, min_decrypt, deleted_at, uid
             FROM named_keys",
        )
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })?
            .collect()
        })
        .map_err(|e| v.db(e))?;
    // Every version must belong to a key (this also reads the table's pages
    // when there is no key at all).
    let orphans: i64 = v
        .conn()
        .query_row(
            "SELECT count(*) FROM named_key_versions
             WHERE key_id_ref NOT IN (SELECT id FROM named_keys)",
            [],
            |r| r.get(0),
        )
        .map_err(|e| v.db(e))?;
    if orphans != 0 {
        return Err(v.integrity(format!(
            "{orphans} named-key versions belong to no named key"
        )));
    }
    let (mut keys, mut versions) = (0, 0);
    for (id, bidx, key_id, blob, latest, min_decrypt, deleted_at, uid) in rows {
        let owner = Owner::from_row(id, &uid, "named key")?;
        let header = open_header(v, owner, key_id, &blob)?;
        let name = &header.name;
        if SecretName::new(name.clone()).is_err() {
            return Err(v.integrity(format!("named key {id} has an invalid name")));
        }
        if blind_index(v.vault_keys(), name)[..] != bidx[..] {
            return Err(v.integrity(format!(
                "named key '{name}' sits under another name's index"
            )));
        }
        check_columns(v, &header, latest, min_decrypt, deleted_at)?;
        let rows: Vec<(u32, u32, Vec<u8>)> = v
            .conn()
            .prepare_cached(
                "SELECT version, data_key, body FROM named_key_versions WHERE key_id_ref = ?1",
            )
            .and_then(|mut s| {
                s.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(|e| v.db(e))?;
        if header.deleted_at.is_some() && !rows.is_empty() {
            return Err(v.integrity(format!("deleted named key '{name}' still has key material")));
        }
        if header.deleted_at.is_none() && !rows.iter().any(|(n, _, _)| *n == header.latest) {
            return Err(v.integrity(format!(
                "named key '{name}' lacks its newest version {}",
                header.latest
            )));
        }
        for (version, key_id, blob) in rows {
            if version == 0 || version > header.latest {
                return Err(v.integrity(format!(
                    "named key '{name}' has an out-of-range version {version}"
                )));
            }
            open_material(v, owner, version, key_id, &blob)?;
            versions += 1;
        }
        keys += 1;
    }
    Ok((keys, versions))
}

/// Re-seals every named-key record under the vault's current write key,
/// inside the caller's transaction; with `new_keys` (a master-key rotation)
/// the blind indexes are recomputed under the new index key. Returns the
/// number of records rewritten. For `rekey --reencrypt` and `rekey
/// --master`, before the old data keys are destroyed.
pub(crate) fn reseal(v: &Vault, new_keys: Option<&VaultKeys>) -> Result<u64> {
    if !tables_exist(v)? {
        return Ok(0);
    }
    let rows: Vec<(i64, u32, Vec<u8>, Vec<u8>)> = v
        .conn()
        .prepare("SELECT id, header_key, header, uid FROM named_keys ORDER BY id")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
        .map_err(|e| v.db(e))?;
    let mut records = 0;
    for (id, key_id, blob, uid) in rows {
        let owner = Owner::from_row(id, &uid, "named key")?;
        let header = open_header(v, owner, key_id, &blob)?;
        let bidx = blind_index(new_keys.unwrap_or(v.vault_keys()), &header.name);
        store_header(v, owner, &header, &bidx)?;
        records += 1;
        let versions: Vec<(u32, u32, Vec<u8>)> = v
            .conn()
            .prepare_cached(
                "SELECT version, data_key, body FROM named_key_versions WHERE key_id_ref = ?1",
            )
            .and_then(|mut s| {
                s.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(|e| v.db(e))?;
        for (version, key_id, blob) in versions {
            let plain = open(
                v.dek(key_id)?,
                &version_aad(v, owner, version, key_id),
                &blob,
            )
            .map_err(|_| {
                v.integrity(format!("named key {id} version {version} does not decrypt"))
            })?;
            let sealed = seal(
                v.write_dek(),
                &version_aad(v, owner, version, v.write_key()),
                &plain,
            );
            v.conn()
                .prepare_cached(
                    "UPDATE named_key_versions SET data_key = ?3, body = ?4
                     WHERE key_id_ref = ?1 AND version = ?2",
                )
                .and_then(|mut s| s.execute(params![id, version, v.write_key(), sealed]))
                .map_err(|e| v.db(e))?;
            records += 1;
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;
    use tresor_crypto::slot::{Credential, new_key_file_text};

    use super::*;
    use crate::CreateOptions;

    fn vault(dir: &std::path::Path) -> Vault {
        let credential = Credential::key_material(new_key_file_text().as_bytes()).unwrap();
        let options = CreateOptions {
            recovery: false,
            ..CreateOptions::default()
        };
        Vault::create(&dir.join("vault.db"), &credential, &options)
            .unwrap()
            .vault
    }

    fn name(s: &str) -> SecretName {
        SecretName::new(s).unwrap()
    }

    #[test]
    fn payload_layouts_are_pinned() {
        let header = KeyHeader {
            name: "k".into(),
            key_type: KeyType::XChaCha20Poly1305,
            created_at: 1,
            min_decrypt: 2,
            latest: 3,
            deleted_at: None,
        };
        // version byte, len 1 + 'k', variant 1, zigzag(1) = 2, 2, 3, None
        assert_eq!(&encode(&header, 8)[..], &[1, 1, b'k', 1, 2, 2, 3, 0]);
        let material = [7u8; 32];
        let body = KeyVersionBody {
            material: &material,
            created_at: -1,
        };
        let mut expected = vec![1u8, 32];
        expected.extend([7u8; 32]);
        expected.push(1); // zigzag(-1)
        assert_eq!(&encode(&body, 8)[..], &expected[..]);
    }

    #[test]
    fn age_keys_store_type_2_and_lend_versions_by_use() {
        // The header of an age key: variant index 2, the rest unchanged.
        let header = KeyHeader {
            name: "k".into(),
            key_type: KeyType::AgeX25519,
            created_at: 1,
            min_decrypt: 1,
            latest: 1,
            deleted_at: None,
        };
        assert_eq!(&encode(&header, 8)[..], &[1, 1, b'k', 2, 2, 1, 1, 0]);

        let dir = tempfile::tempdir().unwrap();
        let mut v = vault(dir.path());
        let n = name("app/age");
        let mut keys = v.keys();
        keys.create(&n, KeyType::AgeX25519).unwrap();
        keys.rotate(&n).unwrap();
        keys.rotate(&n).unwrap();
        keys.config(&n, 2).unwrap();
        let lent = |keys: &mut Keys<'_>, purpose| {
            keys.age_use(&n, purpose, |lent| {
                let versions: Vec<u32> = lent.iter().map(|(v, _)| *v).collect();
                let distinct = lent
                    .iter()
                    .map(|(_, k)| *k.expose_secret())
                    .collect::<std::collections::HashSet<_>>()
                    .len();
                Ok(((versions, distinct), lent.first().map(|(v, _)| *v)))
            })
            .unwrap()
        };
        assert_eq!(lent(&mut keys, AgeUse::Decrypt), (vec![3, 2], 2));
        assert_eq!(lent(&mut keys, AgeUse::Encrypt), (vec![3], 1));
        assert_eq!(lent(&mut keys, AgeUse::Recipient), (vec![3], 1));
        // Envelopes are refused both ways, and other keys are refused for files.
        assert!(matches!(
            keys.encrypt(&n, b"x"),
            Err(Error::WrongKeyType { .. })
        ));
        assert!(matches!(
            keys.decrypt("tresor:v1:app/age:3:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            Err(Error::WrongKeyType { .. })
        ));
        let aes = name("app/aes");
        keys.create(&aes, KeyType::Aes256Gcm).unwrap();
        let r = keys.age_use(&aes, AgeUse::Encrypt, |_| Ok(((), None)));
        assert!(matches!(r, Err(Error::WrongKeyType { .. })));
        // A failure inside the use is returned and audited as such.
        let r: Result<()> = keys.age_use(&n, AgeUse::Decrypt, |_| {
            Err(Error::Auth {
                store: "f".into(),
                reason: "no match".into(),
            })
        });
        assert!(matches!(r, Err(Error::Auth { .. })));
        drop(keys);
        let log = v.audit_log(&crate::AuditFilter::default()).unwrap();
        let ops: Vec<(&str, &[u64], &str)> = log
            .iter()
            .filter(|e| e.operation.as_str().contains("file") || e.operation == "key recipient")
            .map(|e| (e.operation.as_str(), &e.versions[..], e.result.as_str()))
            .collect();
        assert_eq!(
            ops,
            [
                ("key decrypt file", &[3u64][..], "ok"),
                ("key encrypt file", &[3][..], "ok"),
                ("key recipient", &[3][..], "ok"),
                ("key encrypt file", &[][..], "wrong_key_type"),
                ("key decrypt file", &[][..], "auth"),
            ]
        );
    }

    #[test]
    fn blind_index_differs_from_a_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        let keys = v.vault_keys();
        assert_ne!(blind_index(keys, "a/b"), keys.blind_index("a/b"));
        assert_eq!(
            blind_index(keys, "a/b"),
            keys.index.mac(&[b"key:a/b".as_slice()])
        );
    }

    #[test]
    fn new_vaults_have_the_tables_and_both_ddls_agree() {
        let fresh = Connection::open_in_memory().unwrap();
        fresh.execute_batch(schema::CREATE).unwrap();
        let later = Connection::open_in_memory().unwrap();
        later
            .execute_batch(
                "CREATE TABLE data_keys(id INTEGER PRIMARY KEY, wrapped BLOB NOT NULL,
                 created_at INTEGER NOT NULL, retired_at INTEGER);",
            )
            .unwrap();
        later.execute_batch(schema::CREATE_NAMED_KEYS).unwrap();
        later.execute_batch(schema::CREATE_NAMED_KEYS).unwrap();
        let sql = |c: &Connection| -> Vec<String> {
            c.prepare("SELECT sql FROM sqlite_master WHERE name LIKE 'named_key%' ORDER BY name")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let normalize = |v: Vec<String>| -> Vec<String> {
            v.into_iter()
                .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        };
        assert_eq!(normalize(sql(&fresh)).len(), 2);
        assert_eq!(normalize(sql(&fresh)), normalize(sql(&later)));
    }

    #[test]
    fn material_is_cached_after_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = vault(dir.path());
        let n = name("app/k");
        let mut keys = v.keys();
        keys.create(&n, KeyType::Aes256Gcm).unwrap();
        let env = keys.encrypt(&n, b"x").unwrap();
        assert_eq!(keys.vault.named_keys.keys[n.as_str()].material.len(), 1);
        keys.rotate(&n).unwrap();
        assert!(!keys.vault.named_keys.keys.contains_key(n.as_str()));
        keys.decrypt(&env).unwrap();
        keys.encrypt(&n, b"y").unwrap();
        let cached = &keys.vault.named_keys.keys[n.as_str()];
        assert_eq!((cached.latest, cached.material.len()), (2, 2));
    }

    #[test]
    fn uses_are_audited_in_groups() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = vault(dir.path());
        let n = name("app/k");
        {
            let mut keys = v.keys();
            keys.create(&n, KeyType::default()).unwrap();
            for _ in 0..5 {
                let env = keys.encrypt(&n, b"x").unwrap();
                keys.decrypt(&env).unwrap();
            }
            assert!(keys.decrypt("tresor:v1:app/k:9:AAAA").is_err());
            assert_eq!(keys.uses.len(), 3);
        }
        let log = v.audit_log(&crate::AuditFilter::default()).unwrap();
        let ops: Vec<(String, Vec<u64>, String, Option<String>)> = log
            .iter()
            .filter(|e| e.operation.as_str().starts_with("key "))
            .map(|e| {
                (
                    e.operation.to_string(),
                    e.versions.clone(),
                    e.result.clone(),
                    e.reason.clone(),
                )
            })
            .collect();
        assert_eq!(
            ops,
            vec![
                (
                    "key create".into(),
                    vec![1],
                    "ok".into(),
                    Some("type aes256-gcm".into())
                ),
                (
                    "key encrypt".into(),
                    vec![1],
                    "ok".into(),
                    Some("5 calls".into())
                ),
                (
                    "key decrypt".into(),
                    vec![1],
                    "ok".into(),
                    Some("5 calls".into())
                ),
                (
                    "key decrypt".into(),
                    vec![],
                    "not_found".into(),
                    Some("1 call".into())
                ),
            ]
        );
        assert_eq!(v.audit_verify().unwrap(), log.len() as u64);
    }

    /// The `sealed` column of a version of the vault's first named key,
    /// read by another connection.
    fn sealed(path: &std::path::Path, version: u32) -> u64 {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT sealed FROM named_key_versions
                 WHERE key_id_ref = (SELECT min(id) FROM named_keys) AND version = ?1",
                [version],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn low_budget() -> Budget {
        Budget {
            limit: 10,
            warn_at: 6,
            block: 4,
        }
    }

    #[test]
    fn gcm_encryptions_are_counted_in_durable_blocks_warned_and_refused_past_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        let mut v = vault(dir.path());
        v.named_keys.budget = low_budget();
        let n = name("app/k");
        let mut keys = v.keys();
        let info = keys.create(&n, KeyType::Aes256Gcm).unwrap();
        assert_eq!(
            (info.encryptions, info.encryption_budget),
            (Some(0), Some(GCM_BUDGET))
        );
        let first = keys.encrypt(&n, b"x").unwrap();
        // The block is committed before the envelope is handed out.
        assert_eq!(sealed(&path, 1), 4);
        for _ in 0..3 {
            keys.encrypt(&n, b"x").unwrap();
        }
        assert_eq!(sealed(&path, 1), 4, "no write within a block");
        assert!(keys.take_budget_warnings().is_empty());
        // The next block reaches past the warning mark (6).
        keys.rewrap(&first).unwrap();
        assert_eq!(sealed(&path, 1), 8);
        let warnings = keys.take_budget_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let w = &warnings[0];
        assert_eq!((w.name.as_str(), w.version, w.sealed), ("app/k", 1, 8));
        let text = w.to_string();
        assert!(text.contains("rotate it soon"), "{text}");
        assert!(text.contains("xchacha20-poly1305"), "{text}");
        // The remedy command is the caller's to name.
        assert!(!text.contains("tresor ") && !text.contains("--"), "{text}");
        assert!(keys.take_budget_warnings().is_empty(), "taken once");
        for _ in 6..=10 {
            keys.encrypt(&n, b"x").unwrap();
        }
        assert_eq!(sealed(&path, 1), 10, "the last block is cut at the limit");
        // The 11th encryption is refused, and says what to do.
        let e = keys.encrypt(&n, b"x").unwrap_err();
        assert!(
            matches!(&e, Error::KeyBudgetSpent { name, version: 1, limit: 10 } if name == "app/k"),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains("xchacha20-poly1305"), "{msg}");
        assert!(!msg.contains("tresor ") && !msg.contains("--"), "{msg}");
        assert!(keys.rewrap(&first).is_err());
        assert_eq!(sealed(&path, 1), 10);
        assert_eq!(keys.info(&n).unwrap().encryptions, Some(10));
        // Decryption is not counted; a rotation starts a fresh count.
        assert_eq!(keys.decrypt(&first).unwrap().expose_secret(), b"x");
        assert_eq!(keys.rotate(&n).unwrap(), 2);
        let newer = keys.encrypt(&n, b"y").unwrap();
        assert!(newer.starts_with("tresor:v1:app/k:2:"));
        assert_eq!(sealed(&path, 2), 4);
        assert_eq!(keys.info(&n).unwrap().encryptions, Some(4));
        drop(keys);
        // Refusals are audited like any failed use.
        let log = v.audit_log(&crate::AuditFilter::default()).unwrap();
        assert!(
            log.iter()
                .any(|e| e.operation == "key encrypt" && e.result == "key_budget_spent")
        );
        // XChaCha20-Poly1305 keys are not counted.
        let x = name("app/x");
        let mut keys = v.keys();
        let info = keys.create(&x, KeyType::XChaCha20Poly1305).unwrap();
        assert_eq!(info.encryptions, None);
        for _ in 0..20 {
            keys.encrypt(&x, b"x").unwrap();
        }
    }

    #[test]
    fn reservations_survive_a_crash_and_are_never_handed_out_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        let text = new_key_file_text();
        let credential = || Credential::key_material(text.as_bytes()).unwrap();
        let options = CreateOptions {
            recovery: false,
            ..CreateOptions::default()
        };
        let budget = Budget {
            warn_at: 100,
            ..low_budget()
        };
        let mut first = Vault::create(&path, &credential(), &options).unwrap().vault;
        first.named_keys.budget = budget;
        let n = name("app/k");
        first.keys().create(&n, KeyType::Aes256Gcm).unwrap();
        first.keys().encrypt(&n, b"x").unwrap();
        assert_eq!(sealed(&path, 1), 4);
        // The process dies: no drop, no flush. Its reserved block is in the file.
        std::mem::forget(first);

        let mut second = crate::LockedVault::open(&path, &crate::OpenOptions::default())
            .unwrap()
            .unlock(&credential())
            .unwrap();
        second.named_keys.budget = budget;
        let mut keys = second.keys();
        // Counts 5 on (the crashed process's 2 to 4 are forfeited).
        keys.encrypt(&n, b"x").unwrap();
        assert_eq!(sealed(&path, 1), 8);
        drop(keys);
        // A clean end gives back the unused rest: 5 numbers are used.
        drop(second);
        assert_eq!(sealed(&path, 1), 5);
        let mut third = crate::LockedVault::open(&path, &crate::OpenOptions::default())
            .unwrap()
            .unlock(&credential())
            .unwrap();
        third.named_keys.budget = budget;
        // Not while another process has reserved after it.
        let mut fourth = crate::LockedVault::open(&path, &crate::OpenOptions::default())
            .unwrap()
            .unlock(&credential())
            .unwrap();
        fourth.named_keys.budget = budget;
        third.keys().encrypt(&n, b"x").unwrap(); // reserves 5..9, uses 5
        fourth.keys().encrypt(&n, b"x").unwrap(); // reserves 9..10 (the limit), uses 9
        assert_eq!(sealed(&path, 1), 10);
        drop(third);
        assert_eq!(sealed(&path, 1), 10, "fourth's block follows third's");
        assert!(fourth.keys().encrypt(&n, b"x").is_err());
        drop(fourth);
        assert_eq!(sealed(&path, 1), 10);
    }

    #[test]
    fn reseal_keeps_every_envelope_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = vault(dir.path());
        let n = name("app/k");
        let env = {
            let mut keys = v.keys();
            keys.create(&n, KeyType::XChaCha20Poly1305).unwrap();
            keys.rotate(&n).unwrap();
            keys.encrypt(&n, b"kept").unwrap()
        };
        let other = VaultKeys::derive(&Key::random(), &v.id());
        let records = v.transaction(|v| reseal(v, None)).unwrap();
        assert_eq!(records, 3);
        v.named_keys = Cache::default();
        assert_eq!(v.keys().decrypt(&env).unwrap().expose_secret(), b"kept");
        // Under another index key the key is no longer found by this vault's.
        v.transaction(|v| reseal(v, Some(&other))).unwrap();
        v.named_keys = Cache::default();
        assert!(matches!(
            v.keys().decrypt(&env).unwrap_err(),
            Error::NotFound { .. }
        ));
    }
}
