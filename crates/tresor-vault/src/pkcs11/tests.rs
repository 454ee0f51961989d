//! Unit tests of the module policy and slot parameters.

use super::*;

fn params() -> Pkcs11Params {
    Pkcs11Params {
        module: "/nonexistent/libpkcs11-missing.so".into(),
        token_label: "tok".into(),
        token_serial: "1".into(),
        key_label: "k".into(),
        key_id: vec![],
        mechanism: Pkcs11Mechanism::AesGcm,
        wrapped: vec![0; GCM_IV_LEN + 32 + GCM_TAG_LEN],
    }
}

/// A module that cannot be loaded is Unavailable, naming module and token.
#[test]
fn missing_module_names_module_and_token() {
    let err = load(&[1; 16], 3, &params(), "123456", &ModulePolicy::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(text.contains("/nonexistent/libpkcs11-missing.so"), "{text}");
    assert!(text.contains("'tok'"), "{text}");
    assert!(!text.contains("123456"), "{text}");
}

/// A wrapped blob of the wrong length is an integrity error, before any
/// module is touched.
#[test]
fn wrapped_bytes_of_the_wrong_length_are_refused() {
    let mut p = params();
    p.wrapped.pop();
    let err = load(&[1; 16], 3, &p, "x", &ModulePolicy::default()).unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err:?}");
}

#[test]
fn key_wrap_pad_is_reported_unsupported() {
    let mut p = params();
    p.mechanism = Pkcs11Mechanism::AesKeyWrapPad;
    let err = load(&[1; 16], 3, &p, "x", &ModulePolicy::default()).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
}

#[test]
fn module_path_must_exist() {
    let err = absolute_module_path("/nonexistent/module.so").unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.so");
    std::fs::write(&file, b"").unwrap();
    assert_eq!(
        absolute_module_path(file.to_str().unwrap()).unwrap(),
        file.display().to_string()
    );
}

/// A root-owned file in root-owned folders no one else may write (the
/// system shell stands in for /usr/lib/softhsm/libsofthsm2.so).
fn system_file() -> std::path::PathBuf {
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    system_library(&sh).unwrap_or_else(|e| panic!("{} should qualify: {e}", sh.display()));
    sh
}

/// A root-owned system library qualifies, by itself or through a
/// symlink (the resolved path is what would be loaded); a file in a
/// temporary folder does not, and the refusal names the path and both
/// ways to allow it.
#[test]
fn only_system_libraries_pass_the_default_policy() {
    let sh = system_file();
    let policy = ModulePolicy::default();
    assert_eq!(
        policy.check(sh.to_str().unwrap()).unwrap(),
        (sh.clone(), ModuleTrust::SystemLibrary)
    );
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link.so");
    std::os::unix::fs::symlink(&sh, &link).unwrap();
    assert_eq!(
        policy.check(link.to_str().unwrap()).unwrap(),
        (sh.clone(), ModuleTrust::SystemLibrary)
    );

    let evil = dir.path().join("evil.so");
    std::fs::copy(&sh, &evil).unwrap();
    let module = evil.to_str().unwrap();
    let err = policy.check(module).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let text = err.to_string();
    for needle in [
        module,
        "[pkcs11] modules",
        "config.toml",
        "not a root-owned system library",
    ] {
        assert!(text.contains(needle), "{needle:?} missing: {text}");
    }
    // The CLI adds its command as a hint; the library names none.
    assert!(!text.contains("tresor keyslot"), "{text}");
    // The reason names the component that fails (the temporary folder,
    // or the copy itself when not running as root).
    assert!(
        text.contains("not root") || text.contains("writable by group or others"),
        "{text}"
    );

    // A relative path is refused whatever it names.
    let err = policy.check("bin/sh").unwrap_err();
    assert!(err.to_string().contains("relative path"), "{err}");
    // So is a path that does not exist.
    let err = policy.check("/nonexistent/p11.so").unwrap_err();
    assert!(err.to_string().contains("cannot be found"), "{err}");
}

/// A path the user listed is allowed (compared after resolving
/// symlinks), but not when others may write the file.
#[test]
fn listed_modules_are_allowed_while_only_their_owner_can_write_them() {
    use std::os::unix::fs::PermissionsExt;
    let sh = system_file();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("p11.so");
    std::fs::copy(&sh, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let module = copy.to_str().unwrap();
    let config = dir.path().join("config.toml");

    let unlisted = ModulePolicy::new(vec![dir.path().join("other.so")], Some(config.clone()));
    let err = unlisted.check(module).unwrap_err().to_string();
    assert!(err.contains(&config.display().to_string()), "{err}");

    // Listed through a symlink to it: the same file.
    let link = dir.path().join("via-link.so");
    std::os::unix::fs::symlink(&copy, &link).unwrap();
    let listed = ModulePolicy::new(vec![link], Some(config.clone()));
    let resolved = std::fs::canonicalize(&copy).unwrap();
    assert_eq!(
        listed.check(module).unwrap(),
        (resolved.clone(), ModuleTrust::Listed)
    );
    assert_eq!(
        ModulePolicy::default()
            .allowing(&copy)
            .check(module)
            .unwrap(),
        (resolved, ModuleTrust::Listed)
    );

    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o775)).unwrap();
    let err = listed.check(module).unwrap_err().to_string();
    assert!(
        err.contains("writable by group or others") && err.contains(module),
        "{err}"
    );
}

/// A refusal says when the user's list could not be read.
#[test]
fn refusals_mention_an_unreadable_list() {
    let dir = tempfile::tempdir().unwrap();
    let evil = dir.path().join("evil.so");
    std::fs::write(&evil, b"").unwrap();
    let policy = ModulePolicy::default().with_problem("config.toml is writable by others");
    let err = policy
        .check(evil.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("was not read: config.toml is writable by others"),
        "{err}"
    );
}
