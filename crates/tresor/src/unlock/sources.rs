//! The unlock chain's sources: credentials given by the caller or the
//! environment, keychain slots, PKCS#11 tokens; and new key files.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use tresor_core::{Error, Result};
use tresor_crypto::slot::{Credential, RecoveryKey};
use tresor_vault::pkcs11::{ModulePolicy, TokenKey};
use tresor_vault::{LockedVault, keychain, pkcs11};

use super::Opened;

/// Environment variable naming a key file.
pub const KEY_FILE_ENV: &str = "TRESOR_KEY_FILE";
/// Environment variable holding a key file's text (base64 of 32 bytes).
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

/// A credential the caller or the environment gave, and where it came from.
#[derive(Debug)]
pub struct Given {
    credential: Credential,
    /// Where it came from (a key file, an environment variable).
    pub opened: Opened,
}

impl Given {
    /// The first credential found, in the documented order: `key_file`
    /// (the caller's), `TRESOR_KEY_FILE`, `TRESOR_KEY`, `TRESOR_PASSWORD`
    /// (then `KEYSTORE_PASSWORD`, `SECRETS_STORE_PASSWORD`),
    /// `TRESOR_RECOVERY_KEY`. `None` when none is set.
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
            let credential =
                Credential::key_material(text.as_bytes()).map_err(|e| Error::Malformed {
                    what: KEY_ENV.into(),
                    problem: e.to_string(),
                })?;
            return Ok(Some(Self {
                credential,
                opened: Opened::Environment(KEY_ENV),
            }));
        }
        for var in PASSWORD_ENVS {
            if let Some(pw) = env_secret(var) {
                return Ok(Some(Self {
                    credential: Credential::password(pw),
                    opened: Opened::Environment(var),
                }));
            }
        }
        if let Some(text) = env_secret(RECOVERY_KEY_ENV) {
            let key = RecoveryKey::parse(&text).map_err(|e| Error::Malformed {
                what: RECOVERY_KEY_ENV.into(),
                problem: e.to_string(),
            })?;
            return Ok(Some(Self {
                credential: key.credential(),
                opened: Opened::Environment(RECOVERY_KEY_ENV),
            }));
        }
        Ok(None)
    }

    /// Reads a key file: a regular file owned by the user that neither
    /// group nor others may read or write (checked on the opened file, so
    /// a path swapped after a check cannot slip through), holding the base64
    /// of 32 random bytes ([`Credential::key_material`]). Anything else is an
    /// error naming the file and the reason ([`Error::UnsafePath`] for the
    /// file, [`Error::Malformed`] for its text).
    pub fn key_file(path: &Path) -> Result<Self> {
        let text = read_key_file(path)?;
        let credential = Credential::key_material(&text).map_err(|e| Error::Malformed {
            what: format!("key file {}", path.display()),
            problem: e.to_string(),
        })?;
        Ok(Self {
            credential,
            opened: Opened::KeyFile(path.to_path_buf()),
        })
    }

    /// The credential.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The credential, taken out.
    pub fn into_credential(self) -> Credential {
        self.credential
    }

    /// Where it came from, as the audit log and messages say it.
    pub fn source_text(&self) -> String {
        self.opened.to_string()
    }
}

/// Creates a key file with fresh random key material at `path` if nothing
/// is there (its folder made 0700 if missing); returns whether it did. The
/// file is made 0600 and never over a file that appeared meanwhile, and
/// its folder is synced, so the key survives a power loss as the vault does.
pub fn create_key_file(path: &Path) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| Error::Io {
                store: "key file".into(),
                path: dir.to_path_buf(),
                source,
            })?;
    }
    let text = tresor_crypto::slot::new_key_file_text();
    crate::fs::create_private(path, text.as_bytes())?;
    Ok(true)
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
/// the password prompt: the vault's PKCS#11 slots opened inside their
/// tokens, in slot order. A slot whose module `policy` does not allow is
/// unavailable: its module is never loaded and no PIN is asked for it (the
/// error names the path and how to allow it; see
/// [`crate::user_module_policy`]). `pin` is asked once per token (module and
/// label) for its PIN; `None` skips that token's slots. With `first_only`
/// the step stops at the first slot that opens (the unlock chain); without,
/// it opens every slot it can (a master rekey rewraps them all). Returns the
/// credentials of the slots that opened and the errors of those that did
/// not (each names module and token; a wrong PIN is an [`Error::Auth`]). A
/// token whose PIN was wrong is not asked again.
pub fn pkcs11_credentials(
    locked: &LockedVault,
    policy: &ModulePolicy,
    first_only: bool,
    mut pin: impl FnMut(&str, &str) -> Result<Option<Zeroizing<String>>>,
) -> Result<(Vec<Credential>, Vec<Error>)> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    // PINs by (module, token), None when skipped or refused.
    type Token = (String, String);
    let mut pins: Vec<(Token, Option<Zeroizing<String>>)> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for (slot_id, params) in locked.pkcs11_slots()? {
        // The module first: one the user did not allow is never loaded,
        // and nobody is asked for a PIN to hand to it.
        if let Err(e) = policy.check(&params.module) {
            if !refused.contains(&params.module) {
                refused.push(params.module.clone());
                let key = TokenKey {
                    module: &params.module,
                    token: &params.token_label,
                    key_label: &params.key_label,
                };
                errors.push(match e {
                    Error::Unavailable { reason, .. } => Error::Unavailable {
                        store: key.store_name(),
                        reason,
                    },
                    other => other,
                });
            }
            continue;
        }
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
        match pkcs11::load(&locked.id(), slot_id, &params, p, policy) {
            Ok(credential) => {
                found.push(credential);
                if first_only {
                    break;
                }
            }
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

/// The most a key file may hold: its text is 44 characters and a newline.
const KEY_FILE_READ_LIMIT: usize = 64;

/// Reads the key file at `path` into a wiped buffer, refusing anything but
/// a regular file of the user's that group and others cannot access.
/// Opened without blocking (a FIFO is refused, not waited on) and checked
/// with fstat on the opened descriptor.
fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| Error::Io {
        store: "key file".into(),
        path: path.to_path_buf(),
        source,
    };
    let refuse = |why: String| Error::UnsafePath {
        path: path.to_path_buf(),
        problem: format!("key file: {why}"),
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(refuse(
            "not a regular file (a key file is a file of its own, made with the vault or its \
             key-file slot)"
                .into(),
        ));
    }
    use tresor_core::perm::{Closed, Distrust, Owners, check};
    match check(&meta, Owners::Me, Closed::ToAll) {
        Ok(()) => {}
        Err(why @ Distrust::Owner { .. }) => {
            return Err(refuse(format!(
                "{why}: whoever owns it chose its key; use a key file of your own"
            )));
        }
        Err(why) => {
            return Err(refuse(format!("{why}; run chmod 600 {}", path.display())));
        }
    }
    // A fixed buffer, never grown: nothing is left behind by a reallocation.
    let mut text = Zeroizing::new(vec![0u8; KEY_FILE_READ_LIMIT + 1]);
    let mut len = 0;
    loop {
        match file.read(&mut text[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len > KEY_FILE_READ_LIMIT {
                    return Err(Error::Malformed {
                        what: format!("key file {}", path.display()),
                        problem: tresor_crypto::slot::KEY_FORMAT_ERROR.to_string(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    text.truncate(len);
    Ok(text)
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
        Credential::pkcs11(params, Zeroizing::new(vec![7; 32]))
    }

    /// The PKCS#11 step checks each slot's module first: a module the
    /// policy does not allow is neither loaded nor asked a PIN for (one
    /// error per module, naming it and how to allow it). It asks once per
    /// token, skips a token without a PIN, and reports a module that will
    /// not load naming module and token, never the PIN.
    #[test]
    fn pkcs11_step_checks_the_module_then_asks_once_per_token() {
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
        // A root-owned file that is no module: it passes the policy and
        // fails to load (the loader refuses it before running anything).
        let not_a_module = std::fs::canonicalize("/etc/passwd").unwrap();
        let not_a_module = not_a_module.to_str().unwrap();
        let untrusted = dir.path().join("untrusted.so");
        std::fs::write(&untrusted, b"").unwrap();
        let untrusted = untrusted.to_str().unwrap();
        for (module, token) in [
            (not_a_module, "a"),
            (untrusted, "u"),
            (not_a_module, "a"),
            ("/nonexistent/p11.so", "n"),
            (not_a_module, "b"),
            (untrusted, "u2"),
        ] {
            vault
                .add_slot(&pkcs11_credential(module, token), &params, None)
                .unwrap();
        }
        drop(vault);
        let locked = LockedVault::open(&path, &OpenOptions::default()).unwrap();
        assert_eq!(locked.pkcs11_slots().unwrap().len(), 6);

        let mut asked = Vec::new();
        let policy = ModulePolicy::default();
        let (found, errors) = pkcs11_credentials(&locked, &policy, true, |module, token| {
            asked.push((module.to_string(), token.to_string()));
            Ok(Some(Zeroizing::new("pin-5150".to_string())))
        })
        .unwrap();
        assert!(found.is_empty());
        assert_eq!(
            asked,
            [
                (not_a_module.to_string(), "a".to_string()),
                (not_a_module.to_string(), "b".to_string())
            ]
        );
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 5, "{texts:#?}");
        for e in &errors {
            assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
            assert!(!e.to_string().contains("pin-5150"), "{e}");
        }
        // In slot order: a (load fails), untrusted (refused once), a, the
        // missing module, b.
        assert!(texts[0].contains(not_a_module) && texts[0].contains("'a'"));
        assert!(
            texts[1].contains(untrusted)
                && texts[1].contains("[pkcs11] modules")
                && texts[1].contains(tresor_vault::pkcs11::MODULE_NOT_ALLOWED)
                && !texts[1].contains("tresor keyslot"),
            "{}",
            texts[1]
        );
        assert!(texts[3].contains("/nonexistent/p11.so") && texts[3].contains("cannot be found"));
        assert!(texts[4].contains("'b'"));

        // No PIN: the token's slots are skipped without an error here (the
        // CLI reports that the PIN is missing when nothing else unlocks);
        // the refused modules are still reported.
        let (found, errors) = pkcs11_credentials(&locked, &policy, true, |_, _| Ok(None)).unwrap();
        assert!(found.is_empty());
        assert_eq!(errors.len(), 2);

        // The key file still unlocks.
        assert!(locked.unlock(&key).is_ok());
    }

    /// A key file must be a regular file of the user's that group and
    /// others cannot read; then its text must be the documented format.
    #[test]
    fn key_files_are_checked_before_they_are_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        std::fs::write(&file, crate::new_key_file_text().as_bytes()).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Given::key_file(&file).is_ok());

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Given::key_file(&file).unwrap_err();
        assert!(matches!(err, Error::UnsafePath { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("mode 0644") && text.contains("chmod 600"),
            "{text}"
        );

        // A FIFO is refused at once, not waited on.
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo has no other preconditions.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = Given::key_file(&fifo).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");

        // A passphrase, and a file too long to be a key: refused.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        for text in [
            "correct horse battery staple, 40 chars!!\n",
            &"A".repeat(4096),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = Given::key_file(&file).unwrap_err().to_string();
            assert!(err.contains("TRESOR_PASSWORD"), "{err}");
            assert!(!err.contains("horse"), "{err}");
        }
    }
}
