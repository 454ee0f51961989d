//! The unlock chain: which credential to try, from flags and environment.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use tresor_core::{Error, Result};
use tresor_crypto::slot::{Credential, RecoveryKey};
use tresor_vault::{LockedVault, keychain, pkcs11};

/// Environment variable naming a key file.
pub const KEY_FILE_ENV: &str = "TRESOR_KEY_FILE";
/// Environment variable holding a key file's text (base64 of ≥ 32 bytes).
pub const KEY_ENV: &str = "TRESOR_KEY";
/// Environment variables holding a password, in the order they are read.
/// The last two are the names users of the seeds' framework already set.
pub const PASSWORD_ENVS: [&str; 3] = [
    "TRESOR_PASSWORD",
    "KEYSTORE_PASSWORD",
    "SECRETS_STORE_PASSWORD",
];
/// Environment variable holding a recovery key.
pub const RECOVERY_KEY_ENV: &str = "TRESOR_RECOVERY_KEY";
/// Environment variable holding the user PIN of the PKCS#11 tokens of the
/// vault's PKCS#11 slots (and of `keyslot add --pkcs11`).
pub const PKCS11_PIN_ENV: &str = "TRESOR_PKCS11_PIN";

/// Where the credential came from, for messages (never the credential).
#[derive(Debug)]
pub struct Unlock {
    /// The credential.
    pub credential: Credential,
    /// A description such as `key file /path` or `TRESOR_PASSWORD`.
    pub source: String,
}

impl Unlock {
    /// The first credential found, in the documented order: `key_file`
    /// (`--key-file`), `TRESOR_KEY_FILE`, `TRESOR_KEY`, `TRESOR_PASSWORD`
    /// (then `KEYSTORE_PASSWORD`, `SECRETS_STORE_PASSWORD`),
    /// `TRESOR_RECOVERY_KEY`. `None` when none is set: the caller prompts on a
    /// terminal or reports [`Unlock::missing`].
    pub fn from_environment(key_file: Option<&Path>) -> Result<Option<Self>> {
        let key_file = key_file.map(Path::to_path_buf).or_else(|| {
            std::env::var_os(KEY_FILE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        if let Some(path) = key_file {
            return Self::key_file(&path).map(Some);
        }
        if let Some(text) = env_secret(KEY_ENV) {
            let credential = Credential::key_material(text.as_bytes())
                .map_err(|e| Error::Validation(format!("{KEY_ENV}: {e}")))?;
            return Ok(Some(Self {
                credential,
                source: KEY_ENV.into(),
            }));
        }
        for var in PASSWORD_ENVS {
            if let Some(pw) = env_secret(var) {
                return Ok(Some(Self {
                    credential: Credential::Password(pw),
                    source: var.into(),
                }));
            }
        }
        if let Some(text) = env_secret(RECOVERY_KEY_ENV) {
            let key = RecoveryKey::parse(&text)
                .map_err(|e| Error::Validation(format!("{RECOVERY_KEY_ENV}: {e}")))?;
            return Ok(Some(Self {
                credential: key.credential(),
                source: RECOVERY_KEY_ENV.into(),
            }));
        }
        Ok(None)
    }

    /// Reads a key file.
    pub fn key_file(path: &Path) -> Result<Self> {
        let text = Zeroizing::new(std::fs::read(path).map_err(|source| Error::Io {
            store: "key file".into(),
            path: path.to_path_buf(),
            source,
        })?);
        let credential = Credential::key_material(&text)
            .map_err(|e| Error::Validation(format!("key file {}: {e}", path.display())))?;
        Ok(Self {
            credential,
            source: format!("key file {}", path.display()),
        })
    }

    /// The error when no credential is available and no terminal can prompt.
    pub fn missing() -> Error {
        Error::Locked {
            store: "vault".into(),
            hint: format!(
                "no terminal to ask for a password; set {KEY_FILE_ENV} (or --key-file), {KEY_ENV}, \
                 or TRESOR_PASSWORD ({PKCS11_PIN_ENV} for a PKCS#11 slot), add a keychain slot \
                 (tresor keyslot add --keychain), or start an unlock session (tresor unlock)"
            ),
        }
    }
}

/// The keychain step of the unlock chain, after the environment and before
/// the prompt: the credential of each of the vault's keychain slots whose
/// entry could be read, and the errors of those that could not (each names
/// its backend). A slot whose keychain is unreachable is simply unavailable;
/// the caller reports the errors only when nothing else can unlock.
pub fn keychain_credentials(locked: &LockedVault) -> Result<(Vec<Credential>, Vec<Error>)> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (slot_id, backend) in locked.keychain_slots()? {
        match keychain::load(&locked.id(), slot_id, backend) {
            Ok(credential) => found.push(credential),
            Err(e) => errors.push(e),
        }
    }
    Ok((found, errors))
}

/// The PKCS#11 PIN from [`PKCS11_PIN_ENV`], if set and not empty.
pub fn pkcs11_pin_from_env() -> Option<Zeroizing<String>> {
    env_secret(PKCS11_PIN_ENV)
}

/// The PKCS#11 step of the unlock chain, after the keychain step and before
/// the password prompt: each of the vault's PKCS#11 slots opened inside its
/// token. `pin` is asked once per token (module and label) for its PIN;
/// `None` skips that token's slots. Returns the credentials of the slots
/// that opened and the errors of those that did not (each names module and
/// token; a wrong PIN is an [`Error::Auth`]). A token whose PIN was wrong
/// is not asked again.
pub fn pkcs11_credentials(
    locked: &LockedVault,
    mut pin: impl FnMut(&str, &str) -> Result<Option<Zeroizing<String>>>,
) -> Result<(Vec<Credential>, Vec<Error>)> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    // PINs by (module, token), None when skipped or refused.
    type Token = (String, String);
    let mut pins: Vec<(Token, Option<Zeroizing<String>>)> = Vec::new();
    for (slot_id, params) in locked.pkcs11_slots()? {
        let token = (params.module.clone(), params.token_label.clone());
        let index = match pins.iter().position(|(t, _)| *t == token) {
            Some(i) => i,
            None => {
                let given = pin(&params.module, &params.token_label)?;
                pins.push((token, given));
                pins.len() - 1
            }
        };
        let Some(p) = pins[index].1.as_ref() else {
            continue;
        };
        match pkcs11::load(&locked.id(), slot_id, &params, p) {
            Ok(credential) => found.push(credential),
            Err(e) => {
                if matches!(e, Error::Auth { .. } | Error::Locked { .. }) {
                    pins[index].1 = None;
                }
                // A refused PIN is an unlock failure: audited like a wrong
                // password (the next successful unlock folds it in).
                locked.record_unlock_failure(
                    &e,
                    tresor_crypto::slot::SlotKind::Pkcs11,
                    &format!("PKCS#11 token '{}'", params.token_label),
                );
                errors.push(e);
            }
        }
    }
    Ok((found, errors))
}

fn env_secret(var: &str) -> Option<Zeroizing<String>> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use tresor_crypto::slot::{Pkcs11Mechanism, Pkcs11Params};
    use tresor_vault::{CreateOptions, OpenOptions, Vault};

    use super::*;

    fn pkcs11_credential(module: &str, token: &str) -> Credential {
        let params = Pkcs11Params {
            module: module.into(),
            token_label: token.into(),
            token_serial: "0".into(),
            key_label: "k".into(),
            key_id: vec![],
            mechanism: Pkcs11Mechanism::AesGcm,
            wrapped: vec![0; 60],
        };
        Credential::Pkcs11(Box::new(params), Zeroizing::new(vec![7; 32]))
    }

    /// The PKCS#11 step asks once per token, skips a token without a PIN,
    /// and reports a missing module naming module and token, never the PIN.
    #[test]
    fn pkcs11_step_asks_once_per_token_and_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let key = Credential::key_material(crate::new_key_file_text().as_bytes()).unwrap();
        let options = CreateOptions {
            password_params: crate::PasswordParams::new(8 * 1024, 1, 1).unwrap(),
            recovery: false,
            ..CreateOptions::default()
        };
        let mut vault = Vault::create(&path, &key, &options).unwrap().vault;
        let params = options.password_params;
        for token in ["a", "a", "b"] {
            vault
                .add_slot(
                    &pkcs11_credential("/nonexistent/p11.so", token),
                    &params,
                    None,
                )
                .unwrap();
        }
        drop(vault);
        let locked = LockedVault::open(&path, &OpenOptions::default()).unwrap();
        assert_eq!(locked.pkcs11_slots().unwrap().len(), 3);

        let mut asked = Vec::new();
        let (found, errors) = pkcs11_credentials(&locked, |module, token| {
            asked.push((module.to_string(), token.to_string()));
            Ok(Some(Zeroizing::new("pin-5150".to_string())))
        })
        .unwrap();
        assert!(found.is_empty());
        assert_eq!(
            asked,
            [
                ("/nonexistent/p11.so".to_string(), "a".to_string()),
                ("/nonexistent/p11.so".to_string(), "b".to_string())
            ]
        );
        assert_eq!(errors.len(), 3);
        for e in &errors {
            assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
            let text = e.to_string();
            assert!(text.contains("/nonexistent/p11.so"), "{text}");
            assert!(!text.contains("pin-5150"), "{text}");
        }
        assert!(errors[2].to_string().contains("'b'"));

        // No PIN: the token's slots are skipped without an error here (the
        // CLI reports that the PIN is missing when nothing else unlocks).
        let (found, errors) = pkcs11_credentials(&locked, |_, _| Ok(None)).unwrap();
        assert!(found.is_empty() && errors.is_empty());

        // The key file still unlocks.
        assert!(locked.unlock(&key).is_ok());
    }

    #[test]
    fn missing_hint_names_the_pin_variable() {
        assert!(Unlock::missing().to_string().contains(PKCS11_PIN_ENV));
    }
}
