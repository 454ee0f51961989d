//! Imports and the `dtpy` store against real Python: seed 001's Fernet file
//! made by Python's `cryptography`, and dtPyAppFramework 4.4.1 keystores.
//! Needs `TRESOR_TEST_PYTHON` (`eval "$(scripts/python-venv)"`); fails
//! without it.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use common::Tresor;
use serde_json::{Value, json};

const FRAMEWORK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tresor-stores/tests/dtpy/framework.py"
);

fn python() -> String {
    std::env::var("TRESOR_TEST_PYTHON")
        .expect("TRESOR_TEST_PYTHON is not set: run `eval \"$(scripts/python-venv)\"` first")
}

fn py(args: &[&str], password: Option<&str>, stdin: &str) -> (i32, Value) {
    let mut c = Command::new(python());
    c.args(args)
        .env_remove("KEYSTORE_PASSWORD")
        .env_remove("CONTAINER_MODE");
    if let Some(p) = password {
        c.env("KEYSTORE_PASSWORD", p);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    if code != 0 && code != 3 {
        panic!("python {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (
        code,
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
    )
}

fn framework(cmd: &str, dir: &Path, password: Option<&str>, stdin: &str) -> (i32, Value) {
    py(
        &[FRAMEWORK, cmd, dir.to_str().unwrap(), "myapp"],
        password,
        stdin,
    )
}

/// Seed 001's EncryptedFileStorage: a Fernet key file and the encrypted JSON.
const SEED_001_WRITER: &str = r#"
import json, sys, pathlib
from cryptography.fernet import Fernet
d = pathlib.Path(sys.argv[1]); d.mkdir(parents=True, exist_ok=True)
key = Fernet.generate_key(); (d / ".encryption_key").write_bytes(key)
creds = {"openai.api_key": "sk-fernet-000000000000000001", "acme.api_key": "key-🔑"}
(d / "credentials.enc").write_bytes(Fernet(key).encrypt(json.dumps(creds).encode()))
(d / "other.key").write_bytes(Fernet.generate_key())
"#;

fn get(t: &Tresor, args: &[&str]) -> String {
    t.run(args).ok().out()
}

#[test]
fn seed_001_fernet_file_from_python_cryptography_imports_and_a_wrong_key_is_exit_3() {
    let t = Tresor::with_key();
    let dir = t.path("home/.model-forge");
    py(&["-c", SEED_001_WRITER, dir.to_str().unwrap()], None, "");
    let file = dir.join("credentials.enc");
    let wrong = dir.join("other.key");
    let out = t.run(&[
        "import",
        "fernet",
        file.to_str().unwrap(),
        "--fernet-key",
        wrong.to_str().unwrap(),
    ]);
    out.code(3).err_has(&["credentials.enc", "does not open"]);
    assert!(!out.err().contains("sk-"), "{}", out.err());
    t.run(&["get", "openai/api_key"]).code(1);

    // The key file beside it (.encryption_key) by default.
    let r = t
        .run(&["--json", "import", "fernet", file.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(r["counts"], json!({"acme": 1, "openai": 1}));
    assert_eq!(
        get(&t, &["get", "openai/api_key"]),
        "sk-fernet-000000000000000001"
    );
    assert_eq!(get(&t, &["get", "acme/api_key"]), "key-🔑");
}

#[test]
fn a_framework_keystore_imports_index_entries_and_settings_with_all() {
    let t = Tresor::with_key();
    let data = t.path("app/data");
    framework(
        "make",
        &data,
        Some("kp-Ü"),
        &json!({"secrets": {"db_password": "pw-1", "api.key": "k"}, "settings": {"app.timeout": 30}})
            .to_string(),
    );
    // Wrong password: exit 3, nothing written, the keystore unchanged.
    let ks = data.join("myapp.v3keystore");
    let before = std::fs::read(&ks).unwrap();
    t.cmd(&[
        "import",
        "dtpy",
        data.to_str().unwrap(),
        "--password-env",
        "KP",
    ])
    .env("KP", "wrong")
    .run()
    .code(3);
    assert_eq!(std::fs::read(&ks).unwrap(), before);

    let r = t
        .cmd(&[
            "--json",
            "import",
            "dtpy",
            data.to_str().unwrap(),
            "--password-env",
            "KP",
            "--prefix",
            "myapp",
        ])
        .env("KP", "kp-Ü")
        .run()
        .ok()
        .json();
    assert_eq!(r["imported"], 2);
    assert_eq!(get(&t, &["get", "myapp/db_password"]), "pw-1");
    t.run(&["get", "myapp/app.timeout"]).code(1);
    t.cmd(&[
        "import",
        "dtpy",
        ks.to_str().unwrap(),
        "--password-env",
        "KP",
        "--all",
        "--prefix",
        "all",
    ])
    .env("KP", "kp-Ü")
    .run()
    .ok();
    assert_eq!(get(&t, &["get", "all/app.timeout"]), "30");
}

#[test]
fn a_dtpy_store_in_tresor_toml_shares_the_keystore_with_the_framework() {
    let mut t = Tresor::with_key();
    let data = t.path("app/data");
    framework(
        "make",
        &data,
        Some("shared-pw"),
        &json!({"secrets": {"db_password": "from-python"}}).to_string(),
    );
    t.write(
        "tresor.toml",
        format!(
            "[[stores]]\nname = \"app\"\nkind = \"dtpy\"\npath = \"{}\"\npassword = \"ENV/KEYSTORE_PASSWORD\"\npriority = 10\n\n\
             [[stores]]\nname = \"local\"\nkind = \"vault\"\npriority = 50\n",
            data.join("myapp.v3keystore").display()
        )
        .as_bytes(),
    );
    t.run(&["config", "trust"]).ok();
    t.set_default("KEYSTORE_PASSWORD", "shared-pw");
    assert_eq!(get(&t, &["get", "db_password"]), "from-python");
    t.run_in(&["set", "--store", "app", "api/token"], b"from-tresor")
        .ok();
    let ls = t.run(&["--json", "ls"]).ok().json();
    let listed: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["api/token", "db_password"]);
    let (_, read) = framework("read", &data, Some("shared-pw"), "");
    assert_eq!(
        read["secrets"],
        json!({"db_password": "from-python", "api/token": "from-tresor"})
    );
    // A wrong password is exit 3 (locked / wrong key).
    t.cmd(&["get", "--store", "app", "db_password"])
        .env("KEYSTORE_PASSWORD", "nope")
        .run()
        .code(3);
}
