//! The library's unlock chain (`tresor::Unlock`), as the CLI, the manager
//! and `Tresor::open()` use it. One test function: the steps read the
//! process environment, which parallel tests would race on.

use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use tresor::{
    CreateOptions, Credential, Error, Opened, PasswordParams, SecretName, SecretValue, Selector,
    Tresor, Unlock, Vault,
};

fn clear_environment() {
    // SAFETY: this test binary has one test; nothing else reads the
    // environment meanwhile.
    unsafe {
        for var in [
            "TRESOR_KEY_FILE",
            "TRESOR_KEY",
            "TRESOR_PASSWORD",
            "KEYSTORE_PASSWORD",
            "SECRETS_STORE_PASSWORD",
            "TRESOR_RECOVERY_KEY",
            "TRESOR_PKCS11_PIN",
            "TRESOR_LOCK_TIMEOUT",
            "TRESOR_CONFIG",
            "TRESOR_VAULT",
        ] {
            std::env::remove_var(var);
        }
    }
}

fn set_env(var: &str, value: &std::path::Path) {
    // SAFETY: as in clear_environment.
    unsafe { std::env::set_var(var, value) }
}

#[test]
fn one_chain_for_every_caller() {
    clear_environment();
    let dir = tempfile::tempdir().unwrap();
    // Keep the user's own config, trust list, keychain and sessions out.
    set_env("HOME", dir.path());
    set_env("XDG_CONFIG_HOME", &dir.path().join("config"));
    set_env("XDG_DATA_HOME", &dir.path().join("data"));
    set_env("XDG_RUNTIME_DIR", &dir.path().join("run"));
    std::env::set_current_dir(dir.path()).unwrap();

    let password = "correct horse battery staple";
    let path = dir.path().join("vault.db");
    let options = CreateOptions {
        password_params: PasswordParams::new(8 * 1024, 1, 1).unwrap(),
        recovery: false,
        ..CreateOptions::default()
    };
    let pw = Credential::password(Zeroizing::new(password.to_string()));
    let mut vault = Vault::create(&path, &pw, &options).unwrap().vault;
    let key_file = dir.path().join("key");
    assert!(tresor::unlock::create_key_file(&key_file).unwrap());
    assert!(
        !tresor::unlock::create_key_file(&key_file).unwrap(),
        "never over a file"
    );
    let key = tresor::Given::key_file(&key_file).unwrap();
    vault
        .add_slot(key.credential(), &options.password_params, None)
        .unwrap();
    let name = SecretName::new("app/token").unwrap();
    vault
        .put(&name, &SecretValue::copy_from(b"v1"), &Default::default())
        .unwrap();
    drop(vault);

    // Nothing given, nobody to ask: locked, and the error knows a password
    // slot exists (the CLI's hint then lists what to set).
    let err = Unlock::new().sessions(false).open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NoCredential {
                password_slot: true,
                ..
            }
        ),
        "{err:?}"
    );

    // The prompt callback is the last step: asked once, with the vault's path.
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&asked);
    let mut chain = Unlock::new().sessions(false).on_prompt(move |p| {
        seen.lock().unwrap().push(p.to_path_buf());
        Ok(Some(Zeroizing::new(password.to_string())))
    });
    let opened = chain.open(&path).unwrap();
    assert_eq!(opened.how, Opened::Prompt);
    assert_eq!(opened.how.to_string(), "password prompt");
    assert_eq!(
        asked.lock().unwrap().as_slice(),
        std::slice::from_ref(&path)
    );
    drop(opened);

    // A key file comes first: the prompt is not asked.
    let seen = Arc::clone(&asked);
    let opened = Unlock::new()
        .key_file(Some(key_file.clone()))
        .on_prompt(move |p| {
            seen.lock().unwrap().push(p.to_path_buf());
            Ok(None)
        })
        .open(&path)
        .unwrap();
    assert_eq!(opened.how, Opened::KeyFile(key_file.clone()));
    assert_eq!(asked.lock().unwrap().len(), 1);
    drop(opened);

    // The environment comes before the prompt too.
    set_env("TRESOR_KEY_FILE", &key_file);
    let opened = chain.open(&path).unwrap();
    assert_eq!(opened.how, Opened::KeyFile(key_file.clone()));
    assert_eq!(asked.lock().unwrap().len(), 1);
    drop(opened);

    // Tresor::open() goes through the same chain.
    set_env("TRESOR_VAULT", &path);
    let mut t = Tresor::open().unwrap();
    let found = t.get(&name, Selector::default()).unwrap();
    assert_eq!(found.secret.value.expose_secret(), b"v1");
    drop(t);

    // A bad TRESOR_LOCK_TIMEOUT is an error for library callers as for the
    // CLI (it used to mean 30 s in the library, silently).
    set_env("TRESOR_LOCK_TIMEOUT", std::path::Path::new("soon"));
    let err = Unlock::new().open(&path).unwrap_err();
    assert!(err.to_string().contains("TRESOR_LOCK_TIMEOUT"), "{err}");
    let mut t = Tresor::open().unwrap();
    let err = t.get(&name, Selector::default()).unwrap_err();
    assert!(err.to_string().contains("TRESOR_LOCK_TIMEOUT"), "{err}");
    clear_environment();
}
