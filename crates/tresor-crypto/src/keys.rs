//! Keys and their derivations.

use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

use tresor_core::memory;

/// Length of every symmetric key, in bytes.
pub const KEY_LEN: usize = 32;

/// HKDF info of the index key (blind index of names).
pub const INDEX_INFO: &[u8] = b"tresor v1 index";
/// HKDF info of the audit key (MAC chain).
pub const AUDIT_INFO: &[u8] = b"tresor v1 audit";
/// HKDF info of the wrap key (data keys).
pub const WRAP_INFO: &[u8] = b"tresor v1 data-key wrap";
/// HKDF info of the fingerprint key (keyed fingerprints of values).
pub const FINGERPRINT_INFO: &[u8] = b"tresor v1 fingerprint";
/// Label of the audit chain head's tag.
pub const AUDIT_HEAD_LABEL: &[u8] = b"tresor v1 audit head";
/// Prefix of the associated data of a wrapped data key.
pub const DATA_KEY_AAD: &[u8] = b"tresor v1 data key";

type HmacSha256 = Hmac<Sha256>;

/// A 256-bit symmetric key: boxed so it never moves, locked in RAM where the
/// OS allows, wiped on drop, printed as `Key([redacted])`.
pub struct Key {
    bytes: Box<[u8; KEY_LEN]>,
    locked: bool,
}

impl Key {
    /// A fresh key from the OS's random source.
    pub fn random() -> Self {
        let mut key = Self::zeroed();
        random_bytes(&mut key.bytes[..]);
        key
    }

    /// A key copied from `bytes`, which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != KEY_LEN {
            return None;
        }
        let mut key = Self::zeroed();
        key.bytes.copy_from_slice(bytes);
        Some(key)
    }

    /// The key bytes.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    fn zeroed() -> Self {
        let bytes = Box::new([0u8; KEY_LEN]);
        let locked = memory::lock(&bytes[..]);
        Self { bytes, locked }
    }

    /// HKDF-SHA256 of this key with `salt` and `info`.
    pub fn derive(&self, salt: &[u8], info: &[u8]) -> Key {
        hkdf(&self.bytes[..], salt, info)
    }

    /// HMAC-SHA256 of `parts` (concatenated) under this key.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.bytes[..])
            .expect("HMAC accepts keys of any length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// HKDF-SHA256(ikm, salt, info) → 32 bytes.
pub(crate) fn hkdf(ikm: &[u8], salt: &[u8], info: &[u8]) -> Key {
    let mut out = Key::zeroed();
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut out.bytes[..])
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

impl Drop for Key {
    fn drop(&mut self) {
        self.bytes.zeroize();
        if self.locked {
            memory::unlock(&self.bytes[..]);
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key([redacted])")
    }
}

/// Fills `out` from the OS's random source (through this thread's
/// [`RandomBatch`] while one is open).
pub fn random_bytes(out: &mut [u8]) {
    let drawn = BATCH.with(|pool| match pool.borrow_mut().as_mut() {
        Some(pool) => {
            pool.fill(out);
            true
        }
        None => false,
    });
    if !drawn {
        os_random(out);
    }
}

fn os_random(out: &mut [u8]) {
    // Without a working OS random source no key can be made safely; stopping
    // is the only correct answer.
    getrandom::fill(out).expect("the OS random source failed");
}

/// The bytes a [`RandomBatch`] draws from the OS at a time.
const BATCH_BYTES: usize = 4096;

thread_local! {
    static BATCH: std::cell::RefCell<Option<Pool>> = const { std::cell::RefCell::new(None) };
}

/// OS random bytes drawn a block at a time; each byte is handed out once
/// and wiped from the block as it is.
struct Pool {
    block: zeroize::Zeroizing<[u8; BATCH_BYTES]>,
    next: usize,
}

impl Pool {
    fn fill(&mut self, mut out: &mut [u8]) {
        while !out.is_empty() {
            if self.next == BATCH_BYTES {
                os_random(&mut self.block[..]);
                self.next = 0;
            }
            let n = out.len().min(BATCH_BYTES - self.next);
            let (now, rest) = out.split_at_mut(n);
            let from = &mut self.block[self.next..self.next + n];
            now.copy_from_slice(from);
            zeroize::Zeroize::zeroize(from);
            self.next += n;
            out = rest;
        }
    }
}

/// While alive, [`random_bytes`] on this thread draws from the OS a block
/// of 4 KiB at a time instead of one system call per request: a bulk write
/// (an import of 100k secrets asks for 400k nonces and record ids) spent a
/// twentieth of its time in `getrandom`. The bytes are the OS's all the
/// same, each handed out once and wiped from the block as it is, and the
/// rest wiped when the batch ends.
///
/// The block lives in this thread's storage and only for the batch: a
/// process that forks gives its child only the forking thread, which is
/// not inside a batch unless the bulk write itself forks (none does), so
/// no two processes can hand out the same bytes. Batches do not nest: an
/// inner one leaves the outer block in use.
#[must_use = "the batch ends when this is dropped"]
pub struct RandomBatch {
    outer: bool,
    // Tied to the thread whose storage holds the block.
    _thread: std::marker::PhantomData<*const ()>,
}

impl RandomBatch {
    /// Starts a batch on this thread.
    pub fn start() -> Self {
        let outer = BATCH.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.is_some() {
                return false;
            }
            *pool = Some(Pool {
                block: zeroize::Zeroizing::new([0; BATCH_BYTES]),
                next: BATCH_BYTES,
            });
            true
        });
        Self {
            outer,
            _thread: std::marker::PhantomData,
        }
    }
}

impl Drop for RandomBatch {
    fn drop(&mut self) {
        if self.outer {
            // Zeroizing wipes what is left of the block.
            BATCH.with(|pool| pool.borrow_mut().take());
        }
    }
}

impl fmt::Debug for RandomBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RandomBatch")
    }
}

/// The vault's master key: made at `init`, kept only inside key slots.
pub type MasterKey = Key;

/// The keys the master key derives for one vault.
#[derive(Debug)]
pub struct VaultKeys {
    /// Blind index of names.
    pub index: Key,
    /// The audit MAC chain.
    pub audit: Key,
    /// Wraps data keys.
    pub wrap: Key,
    /// Keyed fingerprints of values.
    pub fingerprint: Key,
}

impl VaultKeys {
    /// Derives every key of the vault `vault_id` from `master`.
    pub fn derive(master: &MasterKey, vault_id: &[u8; 16]) -> Self {
        Self {
            index: master.derive(vault_id, INDEX_INFO),
            audit: master.derive(vault_id, AUDIT_INFO),
            wrap: master.derive(vault_id, WRAP_INFO),
            fingerprint: master.derive(vault_id, FINGERPRINT_INFO),
        }
    }

    /// The blind index of a name: HMAC-SHA256(index key, name bytes).
    pub fn blind_index(&self, name: &str) -> [u8; 32] {
        self.index.mac(&[name.as_bytes()])
    }

    /// The keyed fingerprint of a value: HMAC-SHA256(fingerprint key, value).
    pub fn fingerprint(&self, value: &[u8]) -> [u8; 32] {
        self.fingerprint.mac(&[value])
    }

    /// One link of the audit chain:
    /// HMAC-SHA256(audit key, prev ‖ be64(seq) ‖ be64(at) ‖ body).
    pub fn audit_mac(&self, prev: &[u8; 32], seq: u64, at: i64, body: &[u8]) -> [u8; 32] {
        self.audit
            .mac(&[prev, &seq.to_be_bytes(), &at.to_be_bytes(), body])
    }

    /// The tag of the audit chain head naming entry `seq` with MAC `mac`:
    /// HMAC-SHA256(audit key, "tresor v1 audit head" ‖ be64(seq) ‖ mac).
    pub fn audit_head_tag(&self, seq: u64, mac: &[u8; 32]) -> [u8; 32] {
        self.audit.mac(&[AUDIT_HEAD_LABEL, &seq.to_be_bytes(), mac])
    }

    /// Associated data of data key `id` wrapped under the wrap key.
    pub fn data_key_aad(vault_id: &[u8; 16], id: u32) -> Vec<u8> {
        [DATA_KEY_AAD, vault_id, &id.to_be_bytes()].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_active() -> bool {
        BATCH.with(|pool| pool.borrow().is_some())
    }

    /// Inside a batch, requests of every size (across block boundaries)
    /// get fresh bytes: no 16-byte window repeats over 64 KiB, and the
    /// block keeps no byte it handed out.
    #[test]
    fn a_batch_hands_out_each_random_byte_once() {
        let batch = RandomBatch::start();
        assert!(batch_active());
        let mut drawn = Vec::new();
        for size in [1usize, 24, 16, 4095, 7, 5000, 32].iter().cycle().take(60) {
            let mut out = vec![0u8; *size];
            random_bytes(&mut out);
            drawn.extend_from_slice(&out);
        }
        assert!(drawn.len() > 60_000);
        let mut seen = std::collections::HashSet::new();
        for w in drawn.chunks_exact(16) {
            assert!(seen.insert(w.to_vec()), "a 16-byte block came out twice");
        }
        BATCH.with(|pool| {
            let pool = pool.borrow();
            let pool = pool.as_ref().unwrap();
            assert!(pool.block[..pool.next].iter().all(|b| *b == 0));
        });
        drop(batch);
        assert!(!batch_active());
    }

    /// An inner batch leaves the outer one in place; the outer's end ends
    /// it; other threads never see a batch of this one's.
    #[test]
    fn batches_nest_and_stay_on_their_thread() {
        let outer = RandomBatch::start();
        let inner = RandomBatch::start();
        drop(inner);
        assert!(batch_active());
        assert!(!std::thread::spawn(batch_active).join().unwrap());
        drop(outer);
        assert!(!batch_active());
        let mut out = [0u8; 32];
        random_bytes(&mut out);
        assert_ne!(out, [0u8; 32]);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Known answers pin the derivations of VAULT-FORMAT.md: master key
    /// 00 01 … 1f, vault id a0 a1 … af.
    #[test]
    fn derivations_match_known_answers() {
        let mk = Key::from_slice(&(0u8..32).collect::<Vec<_>>()).unwrap();
        let vault_id: [u8; 16] = std::array::from_fn(|i| 0xa0 + i as u8);
        let keys = VaultKeys::derive(&mk, &vault_id);
        assert_eq!(hex(keys.index.expose_secret()), KAT_INDEX);
        assert_eq!(hex(keys.audit.expose_secret()), KAT_AUDIT);
        assert_eq!(hex(keys.wrap.expose_secret()), KAT_WRAP);
        assert_eq!(hex(keys.fingerprint.expose_secret()), KAT_FINGERPRINT);
        assert_eq!(hex(&keys.blind_index("openai/api_key")), KAT_BIDX);
        assert_eq!(
            hex(&keys.audit_mac(&[0; 32], 1, 1_700_000_000_000, b"body")),
            KAT_AUDIT_MAC
        );
        assert_eq!(hex(&keys.audit_head_tag(7, &[0x5a; 32])), KAT_AUDIT_HEAD);
    }

    const KAT_INDEX: &str = "ed3305aab9f4fe8bcc20769dc4f56a955dbf72283ff26c863d04a2ade085d2bb";
    const KAT_AUDIT: &str = "d1397ac9102e6ce219d1db29c08d2af43bcf7e76bc465e67a7359cdfba15de62";
    const KAT_WRAP: &str = "82b583cf20168f518ec89ecade10469a4efd4acc36357fe5814a19aa06716976";
    const KAT_FINGERPRINT: &str =
        "325001a90b65ea1b979807d772d5aa11eb4dcbb1e9f607e362f2431ec1a943db";
    const KAT_BIDX: &str = "2c379020a95ebb0ef7a2fcef57ea09466c3c74d4bbacb70f0bc013361ddc28d2";
    const KAT_AUDIT_HEAD: &str = "79b124afa039db0dff582c64011c98e230f3ac48f942c5a67e67ce5431dc3419";
    const KAT_AUDIT_MAC: &str = "46b6c595926012a02e36b586bcdeb6138747d037946ce67c2eb1b9a69338a040";

    #[test]
    fn keys_are_distinct_and_redacted() {
        let mk = Key::random();
        let keys = VaultKeys::derive(&mk, &[1; 16]);
        assert_ne!(keys.index.expose_secret(), keys.audit.expose_secret());
        assert_ne!(keys.wrap.expose_secret(), keys.fingerprint.expose_secret());
        assert_eq!(format!("{mk:?}"), "Key([redacted])");
        let other = VaultKeys::derive(&mk, &[2; 16]);
        assert_ne!(keys.index.expose_secret(), other.index.expose_secret());
    }
}
