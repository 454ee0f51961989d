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

mod budget;
mod cache;
mod manage;
mod records;
#[cfg(test)]
mod tests;
mod uses;
mod verify;

pub(crate) use budget::release_reservations;
pub(crate) use records::fuzz_decode;
use records::*;
pub(crate) use verify::{reseal, verify};

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
