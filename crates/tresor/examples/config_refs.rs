//! A program that loads its own YAML config with secrets in it: the config
//! says `password: SEC/db/password` and `region: ENV/APP_REGION`, and
//! [`tresor::refs::Resolver::load_yaml`] hands the program a typed struct
//! with the values in place.
//!
//! ```text
//! cargo run -p tresor --example config_refs              # a self-contained tour
//! cargo run -p tresor --example config_refs -- app.yaml  # your config, through your
//!                                                        # tresor.toml (Tresor::open)
//! ```
//!
//! With a file, the secrets come from the stores tresor finds (as `tresor
//! get` would) and vaults unlock from `TRESOR_KEY_FILE`, `TRESOR_KEY`,
//! `TRESOR_PASSWORD` or a keychain slot; the file must have the shape of
//! `AppConfig` below. Values are never printed: only their lengths.

use tresor::refs::Resolver;
use tresor::{CreateOptions, Credential, SecretName, SecretValue, Tresor, Vault};

#[derive(serde::Deserialize)]
struct AppConfig {
    database: Database,
    region: String,
    #[serde(default)]
    features: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Database {
    host: String,
    user: String,
    // Held as long as the program needs it; a real program would wrap it
    // in a zeroizing type (zeroize with its `serde` feature).
    password: String,
}

const TOUR_CONFIG: &str = "\
database:
  host: db.internal
  user: app
  password: SEC/db/password
region: ENV/APP_REGION
features: [fast, \\SEC/shown-as-written]
";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut tresor, text, path, _dir) = match std::env::args().nth(1) {
        Some(path) => {
            let text = std::fs::read_to_string(&path)?;
            (Tresor::open()?, text, Some(path), None)
        }
        None => {
            // A throwaway vault holding db/password, and the variable set.
            let dir = tempfile::tempdir()?;
            let key = Credential::key_material(tresor::new_key_file_text().as_bytes())
                .map_err(|_| "the new key does not read back")?;
            let vault =
                Vault::create(&dir.path().join("v.db"), &key, &CreateOptions::default())?.vault;
            let mut tresor = Tresor::builder().vault("local", vault, 50).build()?;
            tresor.set(
                &SecretName::new("db/password")?,
                &SecretValue::copy_from(b"correct horse battery staple"),
                &Default::default(),
            )?;
            // SAFETY: nothing else runs in this process yet.
            unsafe { std::env::set_var("APP_REGION", "eu-west-1") };
            (tresor, TOUR_CONFIG.to_string(), None, Some(dir))
        }
    };
    let file = path.as_deref().map(std::path::Path::new);
    let config: AppConfig = Resolver::new(&mut tresor).load_yaml(&text, file)?;
    println!(
        "database {}@{}: password of {} characters; region {}; features {:?}",
        config.database.user,
        config.database.host,
        config.database.password.chars().count(),
        config.region,
        config.features,
    );
    Ok(())
}
