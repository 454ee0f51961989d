//! Unlock cost per key-slot kind (release build), side by side in one run:
//!
//! ```text
//! scripts/services exec -- cargo run --release -p tresor-vault \
//!     --features keychain,pkcs11 --example bench_unlock -- measure [RUNS] [--json]
//! cargo run --release -p tresor-vault --example bench_unlock -- setup DIR
//! ```
//!
//! `measure`: one vault per kind, each with a single slot of that kind;
//! every run times `LockedVault::open`, getting the credential the way the
//! CLI does (reading the key file, parsing the recovery key, reading the
//! keychain entry, asking the PKCS#11 token), and `unlock`. Prints median and
//! p95 per kind (the first run of each kind is a warm-up and not counted).
//! Password slots use the default Argon2id costs (64 MiB, t = 3, p = 4) and
//! fewer runs. Keychain and PKCS#11 rows need `scripts/services exec` (its
//! D-Bus, session keyring and SoftHSM2 token); without them the row says
//! why it is missing. In process the PKCS#11 module stays loaded between
//! runs: the whole-process figures of `scripts/bench --unlock` include its
//! loading.
//!
//! `setup DIR`: the same vaults in DIR for whole-process timing, with
//! `DIR/<kind>.env` holding the variables that unlock each (read by
//! `scripts/bench --unlock`).
//!
//! Unlock sessions (`tresor unlock`) are timed whole-process only, by
//! `scripts/bench-unlock`: in process, a session unlock is
//! `LockedVault::unlock_with_master`, no dearer than the key file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tresor_core::{PutOptions, SecretName, SecretValue};
use tresor_crypto::slot::{
    Credential, KeychainBackend, PasswordParams, RecoveryKey, new_key_file_text, new_keychain_key,
};
use tresor_vault::{CreateOptions, LockedVault, OpenOptions, Vault, keychain, pkcs11};
use zeroize::Zeroizing;

/// The password of the bench's password vault.
const PASSWORD: &str = "correct horse battery staple";
/// The secret each vault holds (so `tresor get` has something to read).
const SECRET: &str = "bench/unlock";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("setup") => {
            let dir = PathBuf::from(args.get(1).expect("setup DIR"));
            std::fs::create_dir_all(&dir).unwrap();
            for kind in Kind::ALL {
                let sub = dir.join(kind.name());
                std::fs::create_dir_all(&sub).unwrap();
                match kind.make(&sub) {
                    Ok(v) => {
                        let env: String = v
                            .env
                            .iter()
                            .map(|(k, val)| format!("{k}='{val}'\n"))
                            .collect();
                        write_private(&dir.join(format!("{}.env", kind.name())), &env);
                        println!("{}", kind.name());
                    }
                    Err(why) => eprintln!("bench_unlock: no {} vault: {why}", kind.name()),
                }
            }
        }
        Some("measure") | None => {
            let json = args.iter().any(|a| a == "--json");
            let runs = args
                .iter()
                .skip(1)
                .find_map(|a| a.parse::<usize>().ok())
                .unwrap_or(200);
            measure(runs, json);
        }
        Some(other) => panic!("unknown mode {other}: measure [RUNS] [--json] | setup DIR"),
    }
}

fn measure(runs: usize, json: bool) {
    let dir = tempfile::tempdir().unwrap();
    if !json {
        println!(
            "{:<26} {:>6} {:>12} {:>12}  note",
            "slot kind", "runs", "median", "p95"
        );
    }
    for kind in Kind::ALL {
        let sub = dir.path().join(kind.name());
        std::fs::create_dir_all(&sub).unwrap();
        let made = match kind.make(&sub) {
            Ok(m) => m,
            Err(why) => {
                if json {
                    println!(
                        "{{\"tool\":\"tresor\",\"size\":0,\"op\":\"unlock {}\",\"unit\":\"ms\",\"value\":null,\"note\":\"not measured: {}\"}}",
                        kind.name(),
                        why.replace('"', "'")
                    );
                } else {
                    println!(
                        "{:<26} {:>6} {:>12} {:>12}  not measured: {why}",
                        kind.name(),
                        0,
                        "-",
                        "-"
                    );
                }
                continue;
            }
        };
        let n = match kind {
            Kind::Password => runs.clamp(1, 20),
            _ => runs,
        };
        let mut times = Vec::with_capacity(n);
        for i in 0..=n {
            let start = Instant::now();
            let vault = kind.unlock(&made);
            let took = start.elapsed();
            drop(vault);
            if i > 0 {
                times.push(took);
            }
        }
        times.sort();
        let median = ms(times[times.len() / 2]);
        let p95 = ms(times[(times.len() * 95).div_ceil(100).saturating_sub(1)]);
        let note = kind.note();
        if json {
            for (stat, value) in [("median", median), ("p95", p95)] {
                println!(
                    "{{\"tool\":\"tresor\",\"size\":0,\"op\":\"unlock {} ({stat})\",\"unit\":\"ms\",\"value\":{value:.4},\"note\":\"{note}, {n} runs\"}}",
                    kind.name()
                );
            }
        } else {
            println!(
                "{:<26} {:>6} {:>9.3} ms {:>9.3} ms  {note}",
                kind.name(),
                n,
                median,
                p95
            );
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Clone, Copy)]
enum Kind {
    KeyFile,
    Recovery,
    Password,
    SecretService,
    Keyutils,
    Pkcs11,
}

/// A vault made for one kind and what opens it.
struct Made {
    path: PathBuf,
    key_file: PathBuf,
    recovery: Zeroizing<String>,
    token: Option<(String, String, Zeroizing<String>)>,
    /// Variables that unlock it in a `tresor` process.
    env: Vec<(String, String)>,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::KeyFile,
        Kind::Recovery,
        Kind::Password,
        Kind::SecretService,
        Kind::Keyutils,
        Kind::Pkcs11,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::KeyFile => "key-file",
            Kind::Recovery => "recovery",
            Kind::Password => "password",
            Kind::SecretService => "keychain-secret-service",
            Kind::Keyutils => "keychain-keyutils",
            Kind::Pkcs11 => "pkcs11",
        }
    }

    fn note(self) -> &'static str {
        match self {
            Kind::KeyFile => "read the key file, HKDF, unwrap",
            Kind::Recovery => "parse base32, HKDF, unwrap",
            Kind::Password => "Argon2id m=64 MiB t=3 p=4 (the default)",
            Kind::SecretService => "gnome-keyring over D-Bus",
            Kind::Keyutils => "kernel session keyring",
            Kind::Pkcs11 => "SoftHSM2: login, AES-GCM decrypt, logout (module loaded)",
        }
    }

    /// A vault at `dir/vault.db` whose only non-recovery slot is of this kind.
    fn make(self, dir: &Path) -> Result<Made, String> {
        let path = dir.join("vault.db");
        let key_file = dir.join("key");
        let key_text = new_key_file_text();
        write_private(&key_file, &key_text);
        let key = Credential::key_material(key_text.as_bytes()).unwrap();
        let options = CreateOptions {
            open: open_options(),
            password_params: PasswordParams::new_default(),
            recovery: true,
        };
        let created = Vault::create(&path, &key, &options).map_err(|e| e.to_string())?;
        let recovery = created.recovery.as_ref().unwrap().expose_display();
        let mut vault = created.vault;
        vault
            .put(
                &SecretName::new(SECRET).unwrap(),
                &SecretValue::copy_from(b"v"),
                &PutOptions::default(),
            )
            .unwrap();
        let params = PasswordParams::new_default();
        let vault_id = vault.id();
        let mut env = Vec::new();
        let mut token = None;
        let keychain_slot = |vault: &mut Vault, backend: KeychainBackend| {
            if keychain::answering_backend().is_none() {
                return Err("no keychain answers (run under scripts/services exec)".to_string());
            }
            let cred = new_keychain_key(backend);
            vault
                .add_slot_with(&cred, &params, None, |id| {
                    keychain::store(&vault_id, id, &cred)
                })
                .map_err(|e| e.to_string())
        };
        match self {
            Kind::KeyFile => env.push(("TRESOR_KEY_FILE".into(), key_file.display().to_string())),
            Kind::Recovery => env.push(("TRESOR_RECOVERY_KEY".into(), recovery.to_string())),
            Kind::Password => {
                vault
                    .add_slot(
                        &Credential::password(Zeroizing::new(PASSWORD.into())),
                        &params,
                        None,
                    )
                    .unwrap();
                env.push(("TRESOR_PASSWORD".into(), PASSWORD.into()));
            }
            Kind::SecretService => {
                if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
                    return Err("DBUS_SESSION_BUS_ADDRESS is not set".into());
                }
                keychain_slot(&mut vault, KeychainBackend::SecretService)?;
            }
            Kind::Keyutils => {
                keychain_slot(&mut vault, KeychainBackend::Keyutils)?;
            }
            Kind::Pkcs11 => {
                let var = |name: &str| {
                    std::env::var(name)
                        .map_err(|_| format!("{name} is not set (run under scripts/services exec)"))
                };
                let module = var("TRESOR_TEST_PKCS11_MODULE")?;
                let token_label = var("TRESOR_TEST_PKCS11_TOKEN")?;
                let pin = Zeroizing::new(var("TRESOR_TEST_PKCS11_PIN")?);
                let key = pkcs11::TokenKey {
                    module: &module,
                    token: &token_label,
                    key_label: "tresor-bench-unlock",
                };
                let made = pkcs11::new_slot(&vault_id, key, &pin, &pkcs11::ModulePolicy::default())
                    .map_err(|e| e.to_string())?;
                vault
                    .add_slot(&made.credential, &params, None)
                    .map_err(|e| e.to_string())?;
                env.push(("TRESOR_PKCS11_PIN".into(), pin.to_string()));
                token = Some((module, token_label, pin));
            }
        }
        // Leave only the kind's slot (and the recovery slot) for the
        // whole-process figures; in process, unlock goes by kind anyway.
        if !matches!(self, Kind::KeyFile | Kind::Recovery) {
            vault.remove_slot(1).map_err(|e| e.to_string())?;
        }
        Ok(Made {
            path,
            key_file,
            recovery: Zeroizing::new(recovery.to_string()),
            token,
            env,
        })
    }

    fn unlock(self, made: &Made) -> Vault {
        let locked = LockedVault::open(&made.path, &open_options()).unwrap();
        let credential = match self {
            Kind::KeyFile => {
                let text = Zeroizing::new(std::fs::read(&made.key_file).unwrap());
                Credential::key_material(&text).unwrap()
            }
            Kind::Recovery => RecoveryKey::parse(&made.recovery).unwrap().credential(),
            Kind::Password => Credential::password(Zeroizing::new(PASSWORD.into())),
            Kind::SecretService | Kind::Keyutils => {
                let (id, backend) = locked.keychain_slots().unwrap()[0];
                keychain::load(&locked.id(), id, backend).unwrap()
            }
            Kind::Pkcs11 => {
                let (_, _, pin) = made.token.as_ref().unwrap();
                let (id, params) = locked.pkcs11_slots().unwrap().remove(0);
                pkcs11::load(
                    &locked.id(),
                    id,
                    &params,
                    pin,
                    &pkcs11::ModulePolicy::default(),
                )
                .unwrap()
            }
        };
        locked.unlock(&credential).unwrap()
    }
}

fn open_options() -> OpenOptions {
    OpenOptions {
        no_checkpoint_on_close: true,
        ..OpenOptions::default()
    }
}

fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}
