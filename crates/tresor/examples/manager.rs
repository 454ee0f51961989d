//! The manager from a program.
//!
//! ```text
//! cargo run -p tresor --example manager              # a self-contained tour
//! cargo run -p tresor --example manager -- NAME      # look NAME up through your
//!                                                    # tresor.toml (Tresor::open)
//! ```
//!
//! With a NAME, the stores come from the config tresor finds (`TRESOR_CONFIG`,
//! `./tresor.toml` once approved with `tresor config trust`,
//! `~/.config/tresor/config.toml`; without one, the user vault) and vaults unlock from `TRESOR_KEY_FILE`, `TRESOR_KEY`,
//! `TRESOR_PASSWORD` or a keychain slot. The value itself is never printed:
//! only where it was found and its length.

use tresor::stores::env::Env;
use tresor::{
    CreateOptions, Credential, PutOptions, SecretName, SecretValue, Selector, Tresor, Vault,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(name) = std::env::args().nth(1) {
        let mut tresor = Tresor::open()?;
        println!(
            "stores, in the order reads ask them: {:?}",
            tresor.store_names()
        );
        let found = tresor.get(&SecretName::new(name)?, Selector::default())?;
        println!(
            "{} v{}: {} bytes from store '{}'{}",
            found.secret.name,
            found.secret.version,
            found.secret.value.len(),
            found.store,
            if found.cached.is_some() {
                " (offline copy)"
            } else {
                ""
            }
        );
        return Ok(());
    }

    // A throwaway vault and a stand-in for the environment.
    let dir = tempfile::tempdir()?;
    let key = Credential::key_material(tresor::new_key_file_text().as_bytes())
        .map_err(|e| format!("key: {e}"))?;
    let vault = Vault::create(
        &dir.path().join("vault.db"),
        &key,
        &CreateOptions::default(),
    )?
    .vault;
    let env = Env::from_map_with_prefix(
        [(
            "DEMO_OPENAI_API_KEY".to_string(),
            b"sk-from-the-environment".to_vec(),
        )]
        .into(),
        "DEMO_",
    )?;

    // The environment first (priority 10), then the vault (50).
    let mut tresor = Tresor::builder()
        .store("env", env, 10)
        .vault("local", vault, 50)
        .build()?;

    let api_key = SecretName::new("openai/api_key")?;
    let db = SecretName::new("db/password")?;
    // Writes go to the first writable store: env is read-only, so the vault.
    for (name, value) in [
        (&api_key, "sk-from-the-vault-0123456789"),
        (&db, "correct horse"),
    ] {
        let w = tresor.set(
            name,
            &SecretValue::copy_from(value.as_bytes()),
            &PutOptions::default(),
        )?;
        println!("set {name}: version {} in store '{}'", w.version, w.store);
    }
    // Reads ask in priority order: the environment shadows the vault.
    for name in [&api_key, &db] {
        let found = tresor.get(name, Selector::default())?;
        println!(
            "get {name}: {} bytes from store '{}'",
            found.secret.value.len(),
            found.store
        );
    }
    // One store only, like `tresor get --store local`.
    let found = tresor.get_from("local", &api_key, Selector::default())?;
    println!(
        "get --store local {api_key}: {} bytes",
        found.secret.value.len()
    );
    // ls merges the stores and says what each name shadows.
    for entry in tresor.list("")?.entries {
        println!(
            "ls: {:<16} in '{}'{}",
            entry.info.name,
            entry.store,
            if entry.shadowed.is_empty() {
                String::new()
            } else {
                format!(", shadows {:?}", entry.shadowed)
            }
        );
    }
    // doctor: each store probed.
    for c in tresor.doctor() {
        println!(
            "doctor: {:<6} healthy={} probe={} ({:.1} ms)",
            c.name, c.healthy, c.probe, c.latency_ms
        );
    }
    Ok(())
}
