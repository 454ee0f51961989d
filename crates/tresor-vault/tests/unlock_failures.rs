//! Failed unlocks: recorded without key material in the sidecar
//! `vault.db.failures` (never in the vault file, which stays byte for byte
//! the same), folded into the MAC-chained audit log as `unlock_failed`
//! entries by the next unlock, which removes the sidecar. Session keys that
//! do not open the vault are refused and recorded the same way.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use tresor_core::{Error, PutOptions};
use tresor_crypto::Key;
use tresor_crypto::slot::{Credential, RecoveryKey, new_key_file_text};
use tresor_vault::{AuditEntry, AuditFilter, LockedVault, OpenOptions, Vault, failures};
use zeroize::Zeroizing;

fn open(path: &Path) -> LockedVault {
    LockedVault::open(path, &OpenOptions::default()).unwrap()
}

fn files(path: &Path) -> (Vec<u8>, Option<Vec<u8>>) {
    (
        fs::read(path).unwrap(),
        fs::read(format!("{}-wal", path.display())).ok(),
    )
}

fn failed(vault: &mut Vault) -> Vec<AuditEntry> {
    vault
        .audit_log(&AuditFilter::default())
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.operation.as_str().starts_with("unlock_failure") || e.operation == "unlock_failed"
        })
        .collect()
}

fn setup(dir: &Path) -> (PathBuf, RecoveryKey) {
    let path = dir.join("vault.db");
    let created = Vault::create(&path, &key(), &create_options()).unwrap();
    let mut vault = created.vault;
    vault
        .add_slot(
            &Credential::password(Zeroizing::new("right".into())),
            &fast_password_params(),
            Some("pw"),
        )
        .unwrap();
    vault
        .put(&name("a/b"), &value(b"v"), &PutOptions::default())
        .unwrap();
    (path, created.recovery.unwrap())
}

#[test]
fn failures_go_to_the_sidecar_and_into_the_chain_at_the_next_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = setup(dir.path());
    let before = files(&path);
    let wrong_pw = Credential::password(Zeroizing::new("wrong".into()));
    let wrong_key = Credential::key_material(new_key_file_text().as_bytes()).unwrap();
    assert!(matches!(
        open(&path).unlock_as(&wrong_pw, "TRESOR_PASSWORD"),
        Err(Error::Auth { .. })
    ));
    assert!(matches!(
        open(&path).unlock(&wrong_key),
        Err(Error::Auth { .. })
    ));
    assert!(matches!(
        open(&path).unlock(&RecoveryKey::generate().credential()),
        Err(Error::Auth { .. })
    ));
    assert!(
        files(&path) == before,
        "a failed unlock changed the vault file"
    );
    let sidecar = failures::path_for(&path);
    let text = fs::read_to_string(&sidecar).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(!text.contains("wrong"), "the sidecar holds a credential");

    let mut vault = open(&path).unlock(&key()).unwrap();
    assert!(!sidecar.exists());
    let entries = failed(&mut vault);
    let reasons: Vec<&str> = entries
        .iter()
        .map(|e| e.reason.as_deref().unwrap())
        .collect();
    assert_eq!(entries.len(), 3, "{reasons:?}");
    assert!(reasons[0].starts_with("password slot; credential from TRESOR_PASSWORD; uid "));
    assert!(reasons[1].starts_with("key-file slot; credential from key-file; uid "));
    assert!(reasons[2].starts_with("recovery slot; credential from recovery; uid "));
    assert!(
        entries
            .iter()
            .all(|e| e.result == "auth" && e.name.is_none())
    );
    assert!(reasons[0].contains(&format!("pid {}", std::process::id())));
    assert!(vault.audit_verify().unwrap() >= 3);
    vault.verify().unwrap();
    // Folded once: the next unlock adds nothing.
    drop(vault);
    let mut vault = open(&path).unlock(&key()).unwrap();
    assert_eq!(failed(&mut vault).len(), 3);
}

#[test]
fn a_tampered_sidecar_is_reported_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = setup(dir.path());
    let wrong = Credential::password(Zeroizing::new("wrong".into()));
    assert!(open(&path).unlock(&wrong).is_err());
    assert!(open(&path).unlock(&wrong).is_err());
    let sidecar = failures::path_for(&path);
    let text = fs::read_to_string(&sidecar).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[0] = lines[0].replacen("password", "recovery", 1);
    fs::write(
        &sidecar,
        format!("{}\n{}\n\u{0}\u{1}binary junk", lines[0], lines[1]),
    )
    .unwrap();
    let mut vault = open(&path).unlock(&key()).unwrap();
    let entries = failed(&mut vault);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0].operation, "unlock_failed");
    assert!(
        entries[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("password slot")
    );
    assert_eq!(entries[1].operation, "unlock_failures_garbled");
    assert_eq!(entries[1].result, "integrity");
    assert!(
        entries[1]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("2 garbled")
    );
    vault.audit_verify().unwrap();
    assert!(!sidecar.exists());
}

#[test]
fn a_session_key_must_open_the_vault() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = setup(dir.path());
    let master = {
        let vault = open(&path).unlock(&key()).unwrap();
        Key::from_slice(vault.master_key().expose_secret()).unwrap()
    };
    let before = files(&path);
    let err = open(&path)
        .unlock_with_master(Key::random(), "unlock session (agent)")
        .unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    assert!(files(&path) == before);
    let mut vault = open(&path)
        .unlock_with_master(master, "unlock session (agent)")
        .unwrap();
    assert_eq!(
        vault
            .get(&name("a/b"), Default::default())
            .unwrap()
            .value
            .expose_secret(),
        b"v"
    );
    let entries = failed(&mut vault);
    assert_eq!(entries.len(), 1);
    assert!(
        entries[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("session slot; credential from unlock session (agent)")
    );
    vault.verify().unwrap();
}
