//! What the targets share: the committed fixtures (a test vault and its key
//! file, an age identity, a Fernet key; all made for the fuzzers and
//! protecting nothing) and fresh working copies of the vault.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tresor::{Credential, LockedVault, OpenOptions, Vault};

/// `fuzz/fixtures`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The fixture's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The key file credential of `fixtures/vault.db`.
pub fn vault_key() -> Credential {
    Credential::key_material(&fixture("vault.key")).expect("fixtures/vault.key is a key file")
}

/// A folder for the working files of one process: under
/// `TRESOR_FUZZ_WORKDIR` when set (scripts/fuzz removes it after the run:
/// libFuzzer exits without running destructors), else in memory where
/// possible (/dev/shm).
pub fn workdir() -> tempfile::TempDir {
    let base = std::env::var_os("TRESOR_FUZZ_WORKDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"));
    tempfile::Builder::new()
        .prefix("tresor-fuzz")
        .tempdir_in(&base)
        .or_else(|_| tempfile::Builder::new().prefix("tresor-fuzz").tempdir())
        .expect("a temporary folder")
}

/// Writes `bytes` as the vault at `path` (no WAL or sidecar left from
/// before), opens it and unlocks it with the fixture key.
pub fn open_vault_bytes(path: &Path, bytes: &[u8]) -> tresor::Result<Vault> {
    for ext in ["-wal", "-shm", ".failures"] {
        let mut p = path.as_os_str().to_os_string();
        p.push(ext);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    std::fs::write(path, bytes).expect("writing the working vault");
    let options = OpenOptions {
        lock_timeout: std::time::Duration::from_millis(10),
        no_checkpoint_on_close: true,
    };
    LockedVault::open(path, &options)?.unlock(&vault_key())
}

/// A working copy of the fixture vault, reads not audited (so a long run
/// does not grow it without end).
pub fn fixture_vault(path: &Path) -> Vault {
    let mut vault = open_vault_bytes(path, &fixture("vault.db")).expect("the fixture vault opens");
    let mut settings = vault.settings().clone();
    settings.audit_reads = false;
    vault.set_settings(settings).expect("settings");
    vault
}
