//! Every import format, as `tresor import` reads a file it was given:
//! dotenv, flat JSON, the legacy JSON config, `name=VAR` maps,
//! `secrets.yaml`, Fernet files and dtPyAppFramework keystores.
//!
//! First byte: bits 0..=3 the mode, bits 4..=6 the read options (prefix,
//! rename invalid names, allow empty values).
//! - 0 dotenv, 1 json, 2 legacy-config, 3 env-map, 4 secrets-yaml: the bytes
//!   as the file;
//! - 5: the bytes as a Fernet file, opened with the fixture key;
//! - 6: the bytes as the JSON inside a Fernet file: sealed with the fixture
//!   key first, so the reader gets past the token's MAC;
//! - 7: the bytes as a Fernet token for `fernet_decrypt`;
//! - 8: the bytes as a dtpy keystore's JSON (what an attacker who knows the
//!   machine password, which is derived from public facts, can write):
//!   entries, the INDEX, each value;
//! - 9: the bytes as a whole `.v3keystore` file (password `fuzz`);
//! - others: the bytes as the Fernet key text, with a fixed token.

#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use tresor::import::{self, Format, ReadOptions};
use tresor_stores::dtpy::{self, Entries, format as keystore};
use zeroize::Zeroizing;

#[path = "common.rs"]
mod common;

struct Working {
    _dir: tempfile::TempDir,
    file: PathBuf,
    key_file: PathBuf,
    key: String,
}

thread_local! {
    static WORKING: RefCell<Working> = RefCell::new({
        let dir = common::workdir();
        let file = dir.path().join("input");
        let key_file = dir.path().join("fernet.key");
        let key = String::from_utf8(common::fixture("fernet.key")).expect("UTF-8");
        std::fs::write(&key_file, &key).expect("writing the key file");
        Working { _dir: dir, file, key_file, key: key.trim().to_string() }
    });
}

fn options(flags: u8, w: &Working) -> ReadOptions {
    let mut environment = HashMap::new();
    environment.insert(
        "DB_PASSWORD".to_string(),
        Zeroizing::new("pa55".to_string()),
    );
    environment.insert("EMPTY".to_string(), Zeroizing::new(String::new()));
    ReadOptions {
        prefix: (flags & 1 != 0).then(|| "app".to_string()),
        rename_invalid: flags & 2 != 0,
        allow_empty: flags & 4 != 0,
        key_file: Some(w.key_file.clone()),
        password: Some(Zeroizing::new("fuzz".to_string())),
        all: flags & 1 != 0,
        environment: Some(environment),
    }
}

fn read(format: Format, bytes: &[u8], flags: u8, w: &Working) {
    std::fs::write(&w.file, bytes).expect("writing the input");
    if let Ok(plan) = import::read(format, &w.file, &options(flags, w)) {
        let _ = plan.counts();
        let _ = plan.items();
    }
}

fn keystore_json(bytes: &[u8]) {
    if let Ok(entries) = Entries::parse(bytes, "fuzz") {
        let index = entries.index(tresor_stores::dtpy::DEFAULT_INDEX_STORE);
        for name in &index {
            let _ = entries.value(name);
        }
        for v in entries.0.values() {
            if let Some(value) = dtpy::value_bytes(v) {
                // What the store writes back reads back the same.
                let again = dtpy::value_bytes(&dtpy::json_value(value.expose_secret()));
                assert_eq!(
                    again.as_ref().map(|a| a.expose_secret()),
                    Some(value.expose_secret())
                );
            }
        }
        let _ = Entries::parse(&entries.to_json(), "fuzz").expect("written JSON parses");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let flags = first >> 4;
    WORKING.with_borrow(|w| match first & 0x0f {
        0 => read(Format::Dotenv, rest, flags, w),
        1 => read(Format::Json, rest, flags, w),
        2 => read(Format::LegacyConfig, rest, flags, w),
        3 => read(Format::EnvMap, rest, flags, w),
        4 => read(Format::SecretsYaml, rest, flags, w),
        5 => read(Format::Fernet, rest, flags, w),
        6 => {
            let fernet = fernet::Fernet::new(&w.key).expect("the fixture Fernet key");
            read(Format::Fernet, fernet.encrypt(rest).as_bytes(), flags, w);
        }
        7 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                let _ = keystore::fernet_decrypt(&w.key, token);
            }
        }
        8 => keystore_json(rest),
        9 => {
            let _ = keystore::open(rest, b"fuzz");
        }
        _ => {
            if let Ok(key) = std::str::from_utf8(rest) {
                let fernet = fernet::Fernet::new(&w.key).expect("the fixture Fernet key");
                let _ = keystore::fernet_decrypt(key, &fernet.encrypt(b"{}"));
            }
        }
    });
});
