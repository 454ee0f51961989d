//! Configuration text: `tresor.toml`, and the `SEC/`/`ENV/` references in
//! the documents tresor renders.
//!
//! First byte, mode:
//! - 0, 1: the text as `tresor.toml` (lenient parse, then every question
//!   the CLI asks of a config: profiles, stores, credentials, declared
//!   secrets, generated values, validation rules applied to a value);
//! - 2: the text as one string value (`refs::classify`);
//! - 3: the text as a template for `tresor inject` (`{{ SEC/… }}`);
//! - 4, 5, 6: the text as a YAML, TOML or JSON document for `tresor render`;
//! - 7: the text as YAML for `Resolver::load_yaml`.
//!
//! References resolve against a working copy of the fixture vault (secrets
//! `app/db/password`, `app/api/token`, …) and a fixed environment
//! (`HOST`, `PORT`).

#![no_main]

use std::cell::RefCell;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tresor::config::Config;
use tresor::refs::{self, Format, Resolver};
use tresor::{SecretName, SecretValue, Tresor};
use zeroize::Zeroizing;

#[path = "common.rs"]
mod common;

struct Working {
    _dir: tempfile::TempDir,
    tresor: Tresor,
}

thread_local! {
    static WORKING: RefCell<Working> = RefCell::new({
        let dir = common::workdir();
        let vault = common::fixture_vault(&dir.path().join("vault.db"));
        let tresor = Tresor::builder().vault("local", vault, 50).build().expect("a tresor");
        Working { _dir: dir, tresor }
    });
}

fn env(var: &str) -> Option<Zeroizing<String>> {
    match var {
        "HOST" => Some(Zeroizing::new("db1.example".into())),
        "PORT" => Some(Zeroizing::new("5432".into())),
        _ => None,
    }
}

fn config(text: &str) {
    let path = Path::new("/fuzz/tresor.toml");
    let (config, problems) = Config::parse_lenient(text, Some(path));
    for p in &problems {
        assert!(
            p.line >= 1 && p.column >= 1,
            "a problem at line 0 or column 0"
        );
        let _ = p.to_string();
    }
    let _ = Config::parse(text, Some(path));
    let mut profiles: Vec<Option<&str>> = vec![None];
    profiles.extend(config.profiles.keys().map(|p| Some(p.as_str())));
    for profile in profiles {
        let _ = config.profile_name(profile);
        let _ = config.stores_for(profile);
        if let Ok(declared) = config.declared(profile) {
            for d in declared {
                if let Some(g) = &d.generate {
                    let _ = tresor::generate::generate(g.length, g.charset);
                }
            }
        }
    }
    for store in &config.stores {
        let _ = store.credentials();
        let _ = store.destination();
        for (key, value) in &store.options {
            let _ = config.option_position(&store.name, key);
            let _ = value.describe();
        }
    }
    let value = SecretValue::copy_from(b"sk-proj-demo-000000000000001");
    for name in ["openai/api_key", "app/db/password", "github/token"] {
        let name = SecretName::new(name).expect("a valid name");
        let _ = config.rules.check(&name, &value);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match mode % 8 {
        0 | 1 => config(text),
        2 => {
            if let Ok(refs::Classified::Escaped(literal)) = refs::classify(text) {
                assert_eq!(&text[1..], literal);
            }
        }
        m => WORKING.with_borrow_mut(|w| {
            let mut resolver = Resolver::new(&mut w.tresor).with_env(env);
            let file = Some(Path::new("/fuzz/doc"));
            match m {
                3 => drop(resolver.inject(text, file)),
                4 => drop(resolver.render(text, Format::Yaml, file)),
                5 => drop(resolver.render(text, Format::Toml, file)),
                6 => drop(resolver.render(text, Format::Json, file)),
                _ => drop(resolver.load_yaml::<serde_json::Value>(text, file)),
            }
        }),
    }
});
