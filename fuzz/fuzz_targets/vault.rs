//! The vault as read from a file someone else could write: record payloads
//! and audit entries, the unlock-failure sidecar, audit anchors, and the
//! whole SQLite file tampered with.
//!
//! First byte, mode:
//! - 0: the bytes as an opened record's plaintext, decoded as each payload
//!   kind (secret header and version, audit entry, settings, named-key
//!   header and version);
//! - 1: the bytes as the `<vault>.failures` sidecar;
//! - 2: the same, each line given its valid checksum first, so the fields
//!   behind the checksum are reached;
//! - 3: the bytes as an audit anchor (`tresor audit anchor` output);
//! - 4..=7: patches to the fixture vault's file (offset, length, bytes,
//!   repeated), which is then opened and read every way: list, get by
//!   version and label, history, metadata, named keys, audit log and its
//!   verification, `verify`. Any answer is fine but a panic; the file
//!   with a valid sidecar of the mode-2 kind is folded into the audit
//!   log as well.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use tresor::{AuditAnchor, AuditFilter, Label, Selector, Vault};
use tresor_vault::fuzzing;

#[path = "common.rs"]
mod common;

struct Working {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    original: Vec<u8>,
}

thread_local! {
    static WORKING: RefCell<Working> = RefCell::new({
        let dir = common::workdir();
        let path = dir.path().join("vault.db");
        Working { _dir: dir, path, original: common::fixture("vault.db") }
    });
}

/// Each line with its checksum appended, as the sidecar writes them.
fn checksummed(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        out.push_str(body);
        out.push('\t');
        out.push_str(&fuzzing::failure_checksum(body));
        out.push_str(nl);
    }
    out
}

/// Reads everything the vault holds, every way the CLI does.
fn read_all(vault: &mut Vault) {
    let _ = vault.fold_failures();
    if let Ok(list) = vault.list("", true) {
        for info in list {
            let name = info.name.clone();
            let _ = vault.get(&name, Selector::default());
            for label in [Label::Current, Label::Previous, Label::Pending] {
                let _ = vault.get(&name, Selector::Label(label));
            }
            if let Ok(history) = vault.history_of(&name, true) {
                for v in history.iter().take(8) {
                    let _ = vault.get(&name, Selector::Version(v.version));
                }
            }
            let _ = vault.metadata(&name);
        }
    }
    let mut keys = vault.keys();
    if let Ok(list) = keys.list() {
        for k in list {
            let _ = keys.info(&k.name);
            let _ = keys.encrypt(&k.name, b"fuzz");
        }
    }
    drop(keys);
    let _ = vault.audit_log(&AuditFilter::default());
    let _ = vault.audit_verify();
    let _ = vault.verify();
}

/// Applies `(offset: u24 LE, len: u8, bytes)` patches from `data`.
fn patched(original: &[u8], mut data: &[u8]) -> Vec<u8> {
    let mut file = original.to_vec();
    while data.len() >= 4 {
        let at = u32::from_le_bytes([data[0], data[1], data[2], 0]) as usize % file.len();
        let len = usize::from(data[3]).min(data.len() - 4);
        let bytes = &data[4..4 + len];
        let end = (at + len).min(file.len());
        file[at..end].copy_from_slice(&bytes[..end - at]);
        data = &data[4 + len..];
    }
    file
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 8 {
        0 => fuzzing::decode_records(rest),
        1 => {
            let folded = fuzzing::fold_failures(rest);
            assert!(folded.failures.len() + folded.garbled <= rest.len() + 1);
        }
        2 => {
            let text = String::from_utf8_lossy(rest);
            let _ = fuzzing::fold_failures(checksummed(&text).as_bytes());
        }
        3 => {
            if let Ok(text) = std::str::from_utf8(rest)
                && let Ok(anchor) = AuditAnchor::parse(text)
            {
                // What parses prints back to text that parses the same.
                let again = AuditAnchor::parse(&anchor.to_string()).expect("printed anchor");
                assert_eq!(again, anchor);
            }
        }
        m => WORKING.with_borrow_mut(|w| {
            let (file, sidecar) = if m == 7 {
                (
                    w.original.clone(),
                    Some(checksummed(&String::from_utf8_lossy(rest))),
                )
            } else {
                (patched(&w.original, rest), None)
            };
            let path = w.path.clone();
            let mut failures = path.as_os_str().to_os_string();
            failures.push(".failures");
            let opened = if let Some(text) = sidecar {
                // Written after the vault so the open below finds it.
                common::open_vault_bytes(&path, &file).map(drop).ok();
                std::fs::write(&failures, text).expect("writing the sidecar");
                tresor::LockedVault::open(&path, &Default::default())
                    .and_then(|l| l.unlock(&common::vault_key()))
            } else {
                common::open_vault_bytes(&path, &file)
            };
            if let Ok(mut vault) = opened {
                read_all(&mut vault);
            }
        }),
    }
});
