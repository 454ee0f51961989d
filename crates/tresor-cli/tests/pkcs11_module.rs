//! A PKCS#11 key slot names its module in the vault file, unauthenticated:
//! whoever can write the file (or hand the user a vault) chooses the path.
//! Loading a module runs its code, so the unlock chain loads only a module
//! the user listed in their own config (`[pkcs11] modules`) or a root-owned
//! system library.
//!
//! The attack, reproduced: a shared library whose constructor writes a
//! marker file, a vault whose PKCS#11 slot's module path is rewritten to it
//! with plain SQL, and a `tresor get`. No token is needed (the constructor
//! runs when the library is loaded), so this runs in the ordinary suite; it
//! needs a C compiler (`cc`) and fails when there is none.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use common::Tresor;
use zeroize::Zeroizing;

/// The module path the slot is made with: SoftHSM2's usual place.
const HONEST_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Compiles a shared library whose constructor creates `marker`.
fn marker_library(dir: &Path, marker: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let source = dir.join("marker.c");
    let marker = marker.to_str().unwrap();
    assert!(!marker.contains('"') && !marker.contains('\\'));
    std::fs::write(
        &source,
        format!(
            "#include <fcntl.h>\n#include <unistd.h>\n\
             __attribute__((constructor)) static void tresor_test_marker(void) {{\n\
             \x20   int fd = open(\"{marker}\", O_WRONLY | O_CREAT | O_TRUNC, 0600);\n\
             \x20   if (fd >= 0) {{ (void)write(fd, \"ran\\n\", 4); close(fd); }}\n\
             }}\n"
        ),
    )
    .unwrap();
    let lib = dir.join("libmarker.so");
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&source)
        .output()
        .expect("a C compiler (cc) is needed to build the test's shared library");
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

/// Adds a PKCS#11 slot naming [`HONEST_MODULE`] through the library (no
/// token is touched: the slot's stored parameters are all that matter
/// here), unlocking with the test's key file.
fn add_pkcs11_slot(t: &Tresor) {
    let text = Zeroizing::new(std::fs::read(&t.key).unwrap());
    let key = tresor::Credential::key_material(&text).unwrap();
    let locked = tresor::LockedVault::open(&t.vault, &tresor::OpenOptions::default()).unwrap();
    let mut vault = locked.unlock(&key).unwrap();
    let params = tresor::Pkcs11Params {
        module: HONEST_MODULE.into(),
        token_label: "tresor-token".into(),
        token_serial: "0".into(),
        key_label: "tresor-key".into(),
        key_id: vec![1, 2],
        mechanism: tresor::Pkcs11Mechanism::AesGcm,
        wrapped: vec![0; 60],
    };
    let credential = tresor::Credential::pkcs11(params, Zeroizing::new(vec![7; 32]));
    let kdf = tresor::PasswordParams::new(8 * 1024, 1, 1).unwrap();
    vault.add_slot(&credential, &kdf, Some("hsm")).unwrap();
}

/// What an attacker with write access to the vault file does: rewrites the
/// PKCS#11 slot's stored module path (VAULT-FORMAT.md, "Key slots": payload
/// version 1, variant 4, then the module path, length-prefixed).
fn rewrite_module_path(vault: &Path, module: &str) {
    let db = rusqlite::Connection::open(vault).unwrap();
    let (id, params): (i64, Vec<u8>) = db
        .query_row(
            "SELECT id, params FROM keyslots WHERE kind = 'pkcs11'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(&params[..2], &[1, 4], "a pkcs11 slot's params");
    let old_len = usize::from(params[2]);
    assert!(old_len < 128 && module.len() < 128, "one-byte lengths");
    assert_eq!(&params[3..3 + old_len], HONEST_MODULE.as_bytes());
    let mut rewritten = vec![1, 4, module.len() as u8];
    rewritten.extend_from_slice(module.as_bytes());
    rewritten.extend_from_slice(&params[3 + old_len..]);
    db.execute(
        "UPDATE keyslots SET params = ?1 WHERE id = ?2",
        rusqlite::params![rewritten, id],
    )
    .unwrap();
}

/// Writes the user's config (0600) with `[pkcs11] modules = [module]`.
fn allow_in_user_config(t: &Tresor, module: &str) -> PathBuf {
    let config = t.path("xdg-config/tresor/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, format!("[pkcs11]\nmodules = [\"{module}\"]\n")).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    config
}

/// The vault names a module the user never chose: `tresor get` does not
/// load it (its constructor never runs), asks no PIN for it, and fails with
/// exit 6 naming the path and how to allow it. Neither does `rekey
/// --master`, which collects every slot's credential. Once the user lists
/// the path in their own config, it is loaded (and here fails, being no
/// PKCS#11 module): the list is what decides.
#[test]
fn a_module_path_rewritten_in_the_vault_is_never_loaded() {
    let mut t = Tresor::with_key();
    t.cmd(&["set", "app/token"])
        .stdin(b"s3cr3t-1871")
        .run()
        .ok();
    add_pkcs11_slot(&t);
    let marker = t.path("evil/marker");
    let evil = marker_library(&t.path("evil"), &marker);
    let evil_path = evil.to_str().unwrap();
    rewrite_module_path(&t.vault, evil_path);

    // The slot now names the attacker's library (listing does not load it).
    let slots = t.cmd(&["--json", "keyslot", "list"]).run().ok().json();
    let slot = slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "pkcs11")
        .unwrap();
    assert_eq!(slot["pkcs11"]["module"], evil_path);
    assert!(!marker.exists());

    // Unlock with only the token's PIN: the chain reaches the PKCS#11 step.
    t.clear_default("TRESOR_KEY_FILE");
    let got = t
        .cmd(&["get", "app/token"])
        .env("TRESOR_PKCS11_PIN", "pin-60914")
        .run();
    assert!(
        !marker.exists(),
        "tresor get loaded the module the vault file named (its code ran)"
    );
    got.code(6).err_has(&[
        evil_path,
        "[pkcs11] modules",
        "config.toml",
        "tresor keyslot add --pkcs11 --module",
    ]);
    assert!(!got.err().contains("pin-60914") && !got.out().contains("s3cr3t"));
    // Not asked for a PIN either (the note names every token it is used for).
    assert!(
        !got.err().contains("using TRESOR_PKCS11_PIN"),
        "{}",
        got.err()
    );

    // rekey --master gathers every slot's credential: not from this module.
    let key = t.key.clone();
    let rekey = t
        .cmd(&["rekey", "--master"])
        .env("TRESOR_KEY_FILE", &key)
        .env("TRESOR_PKCS11_PIN", "pin-60914")
        .run();
    assert!(rekey.err().contains(evil_path), "{}", rekey.err());
    assert!(!marker.exists(), "rekey --master loaded the module");

    // The user's own choice: listed in their config, the module is loaded.
    allow_in_user_config(&t, evil_path);
    let listed = t
        .cmd(&["get", "app/token"])
        .env("TRESOR_PKCS11_PIN", "pin-60914")
        .run();
    listed.code(6).err_has(&[evil_path, "could not be loaded"]);
    assert!(
        marker.exists(),
        "the module the user listed was not loaded (the test's library is broken?)"
    );
}

/// A config that others may write does not count: the list in it is not
/// read, and the refusal says so.
#[test]
fn a_config_others_may_write_allows_nothing() {
    let mut t = Tresor::with_key();
    t.cmd(&["set", "app/token"]).stdin(b"v").run().ok();
    add_pkcs11_slot(&t);
    let marker = t.path("evil/marker");
    let evil = marker_library(&t.path("evil"), &marker);
    let evil_path = evil.to_str().unwrap();
    rewrite_module_path(&t.vault, evil_path);
    let config = allow_in_user_config(&t, evil_path);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o666)).unwrap();

    // (A command that reads no tresor.toml: only the unlock chain reads
    // this file here.)
    t.clear_default("TRESOR_KEY_FILE");
    let o = t
        .cmd(&["keyslot", "list"])
        .env("TRESOR_PKCS11_PIN", "1234")
        .run();
    assert!(!marker.exists(), "a list others may write was trusted");
    o.code(6)
        .err_has(&[evil_path, "writable by group or others", "was not read"]);
}
