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

#[test]
fn a_framework_keystore_migrates_into_the_vault_verified_and_the_source_emptied() {
    let mut t = Tresor::with_key();
    let data = t.path("app/data");
    framework(
        "make",
        &data,
        Some("mig-pw"),
        &json!({
            "secrets": {"db_password": "pw-mig-Ü-1", "smtp/user": "u@example.com"},
            "settings": {"app.timeout": 30},
        })
        .to_string(),
    );
    t.write(
        "tresor.toml",
        format!(
            "[[stores]]\nname = \"app\"\nkind = \"dtpy\"\npath = \"{}\"\npassword = \"ENV/KEYSTORE_PASSWORD\"\n\n\
             [[stores]]\nname = \"local\"\nkind = \"vault\"\n",
            data.join("myapp.v3keystore").display()
        )
        .as_bytes(),
    );
    t.run(&["config", "trust"]).ok();
    t.set_default("KEYSTORE_PASSWORD", "mig-pw");

    let report = t
        .run(&[
            "--json",
            "migrate",
            "--from",
            "app",
            "--to",
            "local",
            "--delete-source",
        ])
        .ok()
        .json();
    assert_eq!(report["copied"], 2, "{report}");
    assert_eq!(report["source_deleted"], 2, "{report}");
    // The keystore holds no versions: one value each, read back and compared.
    assert_eq!(
        get(&t, &["get", "--store", "local", "db_password"]),
        "pw-mig-Ü-1"
    );
    assert_eq!(
        get(&t, &["get", "--store", "local", "smtp/user"]),
        "u@example.com"
    );
    let out = t.run(&["--json", "migrate", "--from", "app", "--to", "local"]);
    assert!(!out.out().contains("pw-mig") && !out.err().contains("pw-mig"));
    // The framework sees its secrets gone (INDEX kept right) and its
    // settings untouched.
    let (code, read) = framework("read", &data, Some("mig-pw"), "");
    assert_eq!(code, 0);
    assert_eq!(read["secrets"], json!({}));
    assert_eq!(read["index"], json!([]));
    assert_eq!(read["all"]["app.timeout"], json!(30));
}

/// Seed 001's app reading its credentials as its EnvVarStorage does
/// (`MODEL_FORGE_<PROVIDER>_<KEY>`): it prints whether each one is there
/// and a hash of it, never the value.
const SEED_001_APP: &str = r#"
import hashlib, json, os
def retrieve(provider, key):
    return os.environ.get(f"MODEL_FORGE_{provider.upper()}_{key.upper()}")
out = {}
for provider, key in [("openai", "api_key"), ("acme", "api_key"), ("ollama", "token")]:
    v = retrieve(provider, key)
    out[f"{provider}.{key}"] = None if v is None else hashlib.sha256(v.encode()).hexdigest()
print(json.dumps(out))
"#;

#[test]
fn seed_001_whole_story_plaintext_json_and_fernet_file_into_tresor_then_the_app_reads_through_it() {
    let t = Tresor::with_key();
    let home = t.path("home/.model-forge");
    std::fs::create_dir_all(&home).unwrap();
    // The plaintext config the app wrote before (providers.*.credentials).
    let config = t.write(
        "home/.model-forge/config.json",
        json!({
            "providers": {
                "openai": {"credentials": {"api_key": "sk-proj-demo-000000000000001"}, "model": "gpt"},
                "ollama": {"credentials": {"token": "ollama-tok-1"}},
            }
        })
        .to_string()
        .as_bytes(),
    );
    // And the EncryptedFileStorage file, written by Python's cryptography.
    py(
        &[
            "-c",
            r#"
import json, sys, pathlib
from cryptography.fernet import Fernet
d = pathlib.Path(sys.argv[1])
key = Fernet.generate_key(); (d / ".encryption_key").write_bytes(key)
(d / "credentials.enc").write_bytes(Fernet(key).encrypt(json.dumps({"acme.api_key": "acme-key-🔑"}).encode()))
"#,
            home.to_str().unwrap(),
        ],
        None,
        "",
    );

    let r = t
        .run(&[
            "--json",
            "import",
            "legacy-config",
            config.to_str().unwrap(),
        ])
        .ok()
        .json();
    assert_eq!(r["counts"], json!({"ollama": 1, "openai": 1}));
    assert!(!config.exists());
    assert!(home.join("config.json.backup").is_file());
    t.run(&[
        "import",
        "fernet",
        home.join("credentials.enc").to_str().unwrap(),
    ])
    .ok();

    // The app, unchanged, gets its credentials through `tresor run`.
    let python = python();
    let out = t.run(&[
        "run",
        "--no-declared",
        "--env",
        "MODEL_FORGE_OPENAI_API_KEY=openai/api_key",
        "--env",
        "MODEL_FORGE_ACME_API_KEY=acme/api_key",
        "--env",
        "MODEL_FORGE_OLLAMA_TOKEN=ollama/token",
        "--",
        &python,
        "-c",
        SEED_001_APP,
    ]);
    out.ok();
    let seen: Value = serde_json::from_str(out.out().trim()).unwrap();
    let sha = |v: &str| {
        use sha2::Digest as _;
        sha2::Sha256::digest(v.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(
        seen,
        json!({
            "openai.api_key": sha("sk-proj-demo-000000000000001"),
            "acme.api_key": sha("acme-key-🔑"),
            "ollama.token": sha("ollama-tok-1"),
        })
    );
    // No value on tresor's own output.
    for v in ["sk-proj-demo", "acme-key", "ollama-tok"] {
        assert!(!out.err().contains(v));
    }
}
