//! What an audit entry records as its operation.
//!
//! An entry stores its operation as text (docs/VAULT-FORMAT.md, "Audit
//! chain"); [`Operation`] is that text parsed. The spellings are part of the
//! vault format, not of any command line: they are written exactly as
//! [`Operation::as_str`] gives them, by every version of tresor that writes
//! format 2, and an older tresor (same format) reads a vault written by a
//! newer one, so a spelling is never changed once written. Text that names
//! no known operation (an entry from a newer tresor) is kept as
//! [`Operation::Other`] and shown as it is.

use std::fmt;

use serde::{Serialize, Serializer};

/// An audited operation.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// The vault was created (its first entry).
    Init,
    /// An unlock failed (folded in from the failure sidecar).
    UnlockFailed,
    /// Lines of the failure sidecar did not check, or it overflowed.
    UnlockFailuresGarbled,
    /// The vault's settings changed.
    Settings,
    /// A secret was read.
    Get,
    /// Secrets were listed.
    List,
    /// A secret's versions were listed.
    History,
    /// A secret version was written.
    Set,
    /// A secret version was written by an import.
    Import,
    /// A secret was soft-deleted.
    Delete,
    /// A secret was destroyed with all its versions.
    Purge,
    /// A soft-deleted secret was restored.
    Undelete,
    /// A secret's current version was set back to an earlier one.
    Rollback,
    /// A secret's pending version became current.
    Promote,
    /// A secret's metadata changed.
    Meta,
    /// A key slot was added.
    KeyslotAdd,
    /// A key slot was removed.
    KeyslotRemove,
    /// A password slot's password changed.
    Passwd,
    /// A new data key for new writes.
    Rekey,
    /// A new data key, everything re-sealed under it.
    RekeyReencrypt,
    /// A new master key, every slot and the audit chain redone under it.
    RekeyMaster,
    /// The vault was migrated from an older format.
    Migrate,
    /// A named key was created.
    KeyCreate,
    /// Named keys were listed.
    KeyList,
    /// A named key got a new version.
    KeyRotate,
    /// A named key's minimum decryption version changed.
    KeyConfig,
    /// A named key was deleted.
    KeyDelete,
    /// Data was sealed under a named key.
    KeyEncrypt,
    /// An envelope was opened with a named key.
    KeyDecrypt,
    /// An envelope was re-sealed under a named key's newest version.
    KeyRewrap,
    /// An age key's recipient was shown.
    KeyRecipient,
    /// A file was encrypted to an age key.
    KeyEncryptFile,
    /// A file was decrypted with an age key.
    KeyDecryptFile,
    /// A spelling this version does not know (written by a newer one).
    Other(String),
}

/// Every known operation with its stored spelling, in one place.
const SPELLINGS: &[(Operation, &str)] = &[
    (Operation::Init, "init"),
    (Operation::UnlockFailed, "unlock_failed"),
    (Operation::UnlockFailuresGarbled, "unlock_failures_garbled"),
    (Operation::Settings, "settings"),
    (Operation::Get, "get"),
    (Operation::List, "list"),
    (Operation::History, "history"),
    (Operation::Set, "set"),
    (Operation::Import, "import"),
    (Operation::Delete, "delete"),
    (Operation::Purge, "purge"),
    (Operation::Undelete, "undelete"),
    (Operation::Rollback, "rollback"),
    (Operation::Promote, "promote"),
    (Operation::Meta, "meta"),
    (Operation::KeyslotAdd, "keyslot add"),
    (Operation::KeyslotRemove, "keyslot remove"),
    (Operation::Passwd, "passwd"),
    (Operation::Rekey, "rekey"),
    // Spelled like the flags of the command that wrote them when they were
    // first written; kept so that older versions still recognise them (their
    // `verify` counts the data keys these entries record).
    (Operation::RekeyReencrypt, "rekey --reencrypt"),
    (Operation::RekeyMaster, "rekey --master"),
    (Operation::Migrate, "migrate"),
    (Operation::KeyCreate, "key create"),
    (Operation::KeyList, "key list"),
    (Operation::KeyRotate, "key rotate"),
    (Operation::KeyConfig, "key config"),
    (Operation::KeyDelete, "key delete"),
    (Operation::KeyEncrypt, "key encrypt"),
    (Operation::KeyDecrypt, "key decrypt"),
    (Operation::KeyRewrap, "key rewrap"),
    (Operation::KeyRecipient, "key recipient"),
    (Operation::KeyEncryptFile, "key encrypt file"),
    (Operation::KeyDecryptFile, "key decrypt file"),
];

impl Operation {
    /// Every known operation (not [`Operation::Other`]).
    pub fn all() -> impl Iterator<Item = &'static Operation> {
        SPELLINGS.iter().map(|(op, _)| op)
    }

    /// Parses a stored spelling; text naming no known operation is
    /// [`Operation::Other`], never an error.
    pub fn parse(text: &str) -> Self {
        SPELLINGS
            .iter()
            .find(|(_, s)| *s == text)
            .map_or_else(|| Operation::Other(text.to_string()), |(op, _)| op.clone())
    }

    /// The stored spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Operation::Other(text) => text,
            known => SPELLINGS
                .iter()
                .find(|(op, _)| op == known)
                .map(|(_, s)| *s)
                .expect("every known operation has a spelling"),
        }
    }

    /// Whether the operation changed the vault: its secrets, named keys,
    /// slots, keys, settings or format. Reads (`get`, `list`, `history`)
    /// and uses of named keys (`key list`, `key encrypt`, `key decrypt`,
    /// `key rewrap`, `key recipient`, `key encrypt file`, `key decrypt file`)
    /// are not; neither are [unlock failures](Operation::is_unlock_failure).
    /// An unknown operation counts as a write, so that a filter on writes
    /// never hides what it cannot classify.
    pub fn is_write(&self) -> bool {
        !(self.is_read() || self.is_unlock_failure())
    }

    /// Whether the operation read the vault without changing it (a read of
    /// secrets or a use of a named key).
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Operation::Get
                | Operation::List
                | Operation::History
                | Operation::KeyList
                | Operation::KeyEncrypt
                | Operation::KeyDecrypt
                | Operation::KeyRewrap
                | Operation::KeyRecipient
                | Operation::KeyEncryptFile
                | Operation::KeyDecryptFile
        )
    }

    /// Whether the entry records failed unlocks: no change, but an event an
    /// audit of changes keeps.
    pub fn is_unlock_failure(&self) -> bool {
        matches!(
            self,
            Operation::UnlockFailed | Operation::UnlockFailuresGarbled
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` so that widths and alignment apply (`{:<14}`).
        f.pad(self.as_str())
    }
}

/// Debug shows the stored spelling, as the entry holds it.
impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Operation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialEq<str> for Operation {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Operation {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for op in Operation::all() {
            let s = op.as_str();
            assert!(seen.insert(s), "{s} spelled twice");
            assert_eq!(&Operation::parse(s), op);
        }
        assert_eq!(seen.len(), SPELLINGS.len());
        let later = Operation::parse("key frobnicate");
        assert_eq!(later, Operation::Other("key frobnicate".into()));
        assert_eq!(later.as_str(), "key frobnicate");
        assert!(later.is_write());
    }

    #[test]
    fn stored_spellings_are_those_existing_vaults_hold() {
        // Written by every tresor since format 1; changing one breaks
        // reading (and `verify` of) existing vaults.
        for (op, s) in [
            (Operation::Init, "init"),
            (Operation::RekeyReencrypt, "rekey --reencrypt"),
            (Operation::RekeyMaster, "rekey --master"),
            (Operation::KeyslotAdd, "keyslot add"),
            (Operation::KeyDecryptFile, "key decrypt file"),
            (Operation::UnlockFailed, "unlock_failed"),
        ] {
            assert_eq!(op.as_str(), s);
            assert_eq!(Operation::parse(s), op);
        }
    }

    #[test]
    fn uses_of_keys_and_reads_are_not_writes() {
        for op in Operation::all() {
            let kind = (op.is_write(), op.is_read(), op.is_unlock_failure());
            assert_eq!(
                [kind.0, kind.1, kind.2].iter().filter(|b| **b).count(),
                1,
                "{op}"
            );
        }
        for read in [
            "get",
            "list",
            "history",
            "key list",
            "key encrypt",
            "key decrypt",
            "key rewrap",
            "key recipient",
            "key encrypt file",
            "key decrypt file",
        ] {
            assert!(!Operation::parse(read).is_write(), "{read}");
        }
        for write in [
            "set",
            "rekey --master",
            "key rotate",
            "key create",
            "key delete",
        ] {
            assert!(Operation::parse(write).is_write(), "{write}");
        }
        assert_eq!(format!("[{:<6}]", Operation::Get), "[get   ]");
    }
}
