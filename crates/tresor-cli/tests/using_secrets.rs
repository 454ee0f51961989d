//! Using secrets in programs: `render` (YAML, TOML, JSON), `inject`,
//! `check` (missing, invalid, generated) and `env` (quoting checked by real
//! shells).

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Tresor, clean_command};

/// A value that breaks naive quoting in every format.
const HOSTILE: &str = "it's \"q\" $HOME `id` $(echo pwned) \\ ; x=1 # ä\n  line2 '\"\\n";

fn project(config: &str) -> Tresor {
    let t = Tresor::with_key();
    t.write("tresor.toml", config.as_bytes());
    t.run(&["config", "trust"]).ok();
    t
}

fn set(t: &Tresor, name: &str, value: &str) {
    t.run_in(&["set", name, "--keep-newline"], value.as_bytes())
        .ok();
}

fn seeded() -> Tresor {
    let t = Tresor::with_key();
    set(&t, "db/password", HOSTILE);
    set(&t, "api.key", "k-1");
    set(&t, "api.key", "k-2");
    set(&t, "num", "0123");
    t
}

#[test]
fn render_yaml_keeps_order_and_types_and_resolves_every_form() {
    let t = seeded();
    let yaml = "\
zeta: 1
database:
  host: db.internal
  password: SEC/db/password
  port: 5432
api:
  key: \"SEC/api.key\"
  old: SEC/api.key#1
  previous: SEC/vault:api.key@previous
  region: ENV/REGION
  literal: \\SEC/api.key
hosts: [SEC/num, plain, 7]
alpha: true
";
    t.write("app.yaml", yaml.as_bytes());
    let out = t
        .cmd(&["render", "app.yaml"])
        .env("REGION", "eu-west-1")
        .run();
    out.ok();
    let text = out.out();
    let top: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with([' ', '-']))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(top, ["zeta", "database", "api", "hosts", "alpha"]);
    let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(v["database"]["password"], HOSTILE);
    assert_eq!(v["database"]["port"], 5432);
    assert_eq!(v["api"]["key"], "k-2");
    assert_eq!(v["api"]["old"], "k-1");
    assert_eq!(v["api"]["previous"], "k-1");
    assert_eq!(v["api"]["region"], "eu-west-1");
    assert_eq!(v["api"]["literal"], "SEC/api.key");
    assert_eq!(v["hosts"][0], "0123");
    assert_eq!(v["hosts"][2], 7);
    assert_eq!(v["alpha"], true);
    // Read in one batch, still one audit entry per secret read.
    let gets: Vec<String> = t
        .audit()
        .iter()
        .filter(|e| e["operation"] == "get")
        .map(|e| e["name"].as_str().unwrap_or("-").to_string())
        .collect();
    for name in ["db/password", "api.key", "num"] {
        assert!(
            gets.iter().any(|g| g == name),
            "{name} not audited: {gets:?}"
        );
    }
}

#[test]
fn render_toml_and_json_round_trip_to_a_private_file() {
    let t = seeded();
    let toml_text = "# app settings\ntitle = \"x\"\n\n[db]\npassword = \"SEC/db/password\" # kept\nhosts = [\"a\", \"SEC/num\"]\n\n[[workers]]\ntoken = \"SEC/api.key\"\n";
    t.write("app.toml", toml_text.as_bytes());
    t.run(&["render", "app.toml", "-o", "out.toml"]).ok();
    let out_path = t.path("out.toml");
    let mode = std::fs::metadata(&out_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        text.starts_with("# app settings\ntitle = \"x\"\n\n[db]\n"),
        "{text}"
    );
    assert!(text.contains("# kept"));
    let v: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(v["db"]["password"].as_str(), Some(HOSTILE));
    assert_eq!(v["db"]["hosts"][1].as_str(), Some("0123"));
    assert_eq!(v["workers"][0]["token"].as_str(), Some("k-2"));

    let json = r#"{"z": {"password": "SEC/db/password"}, "list": ["SEC/num", 1.5, null], "a": "\\ENV/HOME"}"#;
    t.write("app.json", json.as_bytes());
    let out = t.run(&["render", "app.json"]);
    out.ok();
    let text = out.out();
    assert!(text.find("\"z\"").unwrap() < text.find("\"a\"").unwrap());
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["z"]["password"], HOSTILE);
    assert_eq!(v["list"], serde_json::json!(["0123", 1.5, null]));
    assert_eq!(v["a"], "ENV/HOME");

    // stdin needs --format; the format flag also reads files without an extension.
    let out = t
        .cmd(&["render", "-", "--format", "json"])
        .stdin(json.as_bytes())
        .run();
    out.ok();
    t.run_in(&["render", "-"], json.as_bytes())
        .code(2)
        .err_has(&["--format"]);
}

#[test]
fn render_fails_naming_file_key_and_reference_and_writes_nothing() {
    let t = seeded();
    t.write(
        "conf.yaml",
        b"db:\n  password: SEC/db/password\n  replicas:\n    - host: a\n      password: SEC/db/missing\n",
    );
    let out = t.run(&["render", "conf.yaml", "-o", "out.yaml"]);
    out.code(1)
        .err_has(&["conf.yaml", "db.replicas[0].password", "SEC/db/missing"]);
    assert!(out.stdout.is_empty());
    assert!(
        !out.err().contains("line2"),
        "a value leaked: {}",
        out.err()
    );
    assert!(!t.path("out.yaml").exists());

    t.write("env.json", br#"{"region": "ENV/TRESOR_TEST_UNSET"}"#);
    t.run(&["render", "env.json"]).code(1).err_has(&[
        "env.json",
        "region",
        "ENV/TRESOR_TEST_UNSET",
        "not set",
    ]);

    // Malformed references are usage errors.
    for (bad, part) in [
        ("SEC/a#0", "version"),
        ("SEC/a@latest", "label"),
        ("SEC/../x", "segment"),
        ("SEC/", "empty"),
    ] {
        t.write("bad.yaml", format!("k: \"{bad}\"\n").as_bytes());
        t.run(&["render", "bad.yaml"])
            .code(2)
            .err_has(&["bad.yaml", "key k", part]);
    }
    // A document that does not parse.
    t.write("broken.yaml", b"a: [unclosed\n");
    t.run(&["render", "broken.yaml"])
        .code(2)
        .err_has(&["broken.yaml"]);
    // --json errors carry the kind.
    let e = t.run(&["--json", "render", "conf.yaml"]).code(1).err_json();
    assert_eq!(e["error"]["kind"], "not_found");
}

#[test]
fn render_refuses_hostile_output_paths_and_its_own_input() {
    let t = seeded();
    t.write("c.yaml", b"p: SEC/num\n");
    std::os::unix::fs::symlink(t.path("target"), t.path("link")).unwrap();
    t.run(&["render", "c.yaml", "-o", "link"]).code(2);
    assert!(!t.path("target").exists());
    t.run(&["render", "c.yaml", "-o", "c.yaml"])
        .code(2)
        .err_has(&["both the input and the output"]);
    assert_eq!(std::fs::read(t.path("c.yaml")).unwrap(), b"p: SEC/num\n");
}

#[test]
fn a_seed_004_style_config_renders_unchanged_in_meaning() {
    // As dtPyAppFramework configs are written: SEC/ and ENV/ whole values,
    // names with dots, nested maps and lists, spaces around a name.
    let t = Tresor::with_key();
    set(&t, "database_password", "pässwörd-ü");
    set(&t, "external_api.key", "ext-key");
    set(&t, "email.smtp_password", "smtp-pw");
    set(&t, "smtp/user", "user@example.com");
    let yaml = "\
app:
  name: myapp
  timeout: 30
database:
  host: localhost
  password: \"SEC/database_password\"  # Retrieved from secrets manager
api:
  key: \"SEC/external_api.key\"
  spaced: \"SEC/ database_password \"
  prefixed: \"prefix SEC/database_password\"
email:
  smtp_password: \"SEC/email.smtp_password\"
  recipients: [SEC/smtp/user, literal]
cloud:
  subscription_id: \"ENV/AZURE_SUBSCRIPTION_ID\"
";
    t.write("config/config.yaml", yaml.as_bytes());
    let out = t
        .cmd(&["render", "config/config.yaml"])
        .env("AZURE_SUBSCRIPTION_ID", "sub-123")
        .run();
    out.ok();
    let v: serde_json::Value = serde_saphyr::from_str(&out.out()).unwrap();
    let expected = serde_json::json!({
        "app": {"name": "myapp", "timeout": 30},
        "database": {"host": "localhost", "password": "pässwörd-ü"},
        "api": {"key": "ext-key", "spaced": "pässwörd-ü", "prefixed": "prefix SEC/database_password"},
        "email": {"smtp_password": "smtp-pw", "recipients": ["user@example.com", "literal"]},
        "cloud": {"subscription_id": "sub-123"},
    });
    assert_eq!(v, expected);
    // Where the framework handed on the literal for an unset variable, tresor fails.
    t.run(&["render", "config/config.yaml"]).code(1).err_has(&[
        "config/config.yaml",
        "cloud.subscription_id",
        "ENV/AZURE_SUBSCRIPTION_ID",
    ]);
}

#[test]
fn inject_fills_placeholders_from_stdin_and_files() {
    let t = seeded();
    let template = "[client]\npassword = {{ SEC/db/password }}\nkey={{SEC/api.key}}\nhelm = {{ .Values.x }}\nraw = {{ \\SEC/num }}\n";
    let out = t.run_in(&["inject"], template.as_bytes());
    out.ok();
    assert_eq!(
        out.out(),
        format!(
            "[client]\npassword = {HOSTILE}\nkey=k-2\nhelm = {{{{ .Values.x }}}}\nraw = {{{{ SEC/num }}}}\n"
        )
    );
    t.write("app.ini.tmpl", b"a={{ SEC/num }}\n");
    t.run(&["inject", "-i", "app.ini.tmpl", "-o", "app.ini"])
        .ok();
    assert_eq!(std::fs::read(t.path("app.ini")).unwrap(), b"a=0123\n");
    let mode = std::fs::metadata(t.path("app.ini"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    t.write("bad.tmpl", b"one\ntwo {{ SEC/nope }}\n");
    let out = t.run(&["inject", "-i", "bad.tmpl", "-o", "bad.out"]);
    out.code(1).err_has(&["bad.tmpl:2:5", "SEC/nope"]);
    assert!(!t.path("bad.out").exists());
    t.run_in(&["inject"], b"{{ SEC/x#0 }}")
        .code(2)
        .err_has(&["line 1, column 1"]);
}

const CHECK_CONFIG: &str = r#"
[secrets]
OPENAI_API_KEY = { name = "app/llm_key", rule = "openai", description = "model calls" }
DATABASE_URL = "app/database_url"
SESSION_KEY = { name = "app/session", generate = { length = 40, charset = "hex" } }
LOG_LEVEL = { name = "app/log_level", required = false, default = "info" }
OPTIONAL = { name = "app/optional", required = false }

[[stores]]
name = "local"
kind = "vault"

[profiles.ci]
stores = ["local"]

[profiles.ci.secrets]
DATABASE_URL = { name = "ci/database_url", required = false }
"#;

#[test]
fn check_reports_missing_invalid_and_fixes_by_generating() {
    let t = project(CHECK_CONFIG);
    set(&t, "app/llm_key", "not-an-openai-key");
    set(&t, "app/database_url", "postgres://u:p@h/db");

    let out = t.run(&["check"]);
    out.code(1);
    let table = out.out();
    for part in [
        "OPENAI_API_KEY",
        "invalid",
        "SESSION_KEY",
        "missing",
        "LOG_LEVEL",
        "default",
        "DATABASE_URL",
    ] {
        assert!(table.contains(part), "{part} not in {table}");
    }
    assert!(!table.contains("not-an-openai-key") && !table.contains("postgres://"));
    assert!(
        out.err()
            .contains("2 required secrets are missing or invalid")
    );

    let j = t.run(&["--json", "check"]).code(1).json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["failing"], 2);
    let state = |var: &str| {
        j["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["var"] == var)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("OPENAI_API_KEY"), "invalid");
    assert_eq!(state("DATABASE_URL"), "ok");
    assert_eq!(state("SESSION_KEY"), "missing");
    assert_eq!(state("LOG_LEVEL"), "default");
    assert_eq!(state("OPTIONAL"), "missing");

    // --fix without a terminal generates what it can; the invalid key stays.
    let out = t.run(&["check", "--fix"]);
    out.code(1).err_has(&["SESSION_KEY: generated"]);
    let generated = t.run(&["get", "app/session"]).ok().out();
    assert_eq!(generated.trim_end().len(), 40);
    assert!(generated.trim_end().bytes().all(|b| b.is_ascii_hexdigit()));

    set(
        &t,
        "app/llm_key",
        "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789",
    );
    let j = t.run(&["--json", "check"]).ok().json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["secrets"][2]["state"], "ok");
}

#[test]
fn check_fix_without_a_terminal_names_what_it_cannot_fix() {
    let t = project(CHECK_CONFIG);
    let out = t.run(&["check", "--fix"]);
    out.code(2).err_has(&[
        "OPENAI_API_KEY ('app/llm_key')",
        "DATABASE_URL",
        "no terminal",
    ]);
    // What could be generated was.
    t.run(&["get", "app/session"]).ok();
    // A profile's overrides apply: DATABASE_URL is optional in ci.
    let j = t
        .run(&["--json", "--profile", "ci", "check"])
        .code(1)
        .json();
    let db = j["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["var"] == "DATABASE_URL")
        .unwrap()
        .clone();
    assert_eq!(
        (db["name"].clone(), db["required"].clone()),
        ("ci/database_url".into(), false.into())
    );
    assert_eq!(j["failing"], 1, "{j}");
    // Without a config there is nothing to check.
    let bare = Tresor::with_key();
    bare.run(&["check"]).code(2).err_has(&["[secrets]"]);
}

const ENV_CONFIG: &str = r#"
[secrets]
HOSTILE = "app/hostile"
PLAIN = "app/plain"
LOG_LEVEL = { name = "app/log_level", default = "info" }
OPTIONAL = { name = "app/optional", required = false }
TLS_KEY = { name = "app/tls", as_file = true }
"#;

fn env_project() -> Tresor {
    let t = project(ENV_CONFIG);
    set(&t, "app/hostile", HOSTILE);
    set(&t, "app/plain", "simple");
    set(&t, "app/tls", "-----BEGIN KEY-----");
    t
}

/// `shell -c 'eval "$1"; printf …'` with the output of `tresor env`.
fn eval_in(shell: &str, script: &str, reader: &str) -> String {
    let out = clean_command(shell)
        .args(["-c", reader, "sh", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn env_output_reads_back_exactly_in_real_shells() {
    let t = env_project();
    let out = t.run(&["env"]);
    out.ok();
    let script = out.out();
    assert!(!script.contains("TLS_KEY"));
    assert!(!script.contains("OPTIONAL"));
    out.err_has(&["TLS_KEY", "as_file"]);
    let reader = r#"eval "$1"; printf '%s|%s|%s' "$HOSTILE" "$PLAIN" "$LOG_LEVEL""#;
    for shell in ["sh", "dash", "bash"] {
        if shell != "sh" && which(shell).is_none() {
            continue;
        }
        assert_eq!(
            eval_in(shell, &script, reader),
            format!("{HOSTILE}|simple|info"),
            "{shell}"
        );
    }
    // Exported, so a child sees it.
    let child = r#"eval "$1"; sh -c 'printf %s "$HOSTILE"'"#;
    assert_eq!(eval_in("sh", &script, child), HOSTILE);

    let j = t.run(&["env", "--format", "json"]).ok().json();
    assert_eq!(j["HOSTILE"], HOSTILE);
    assert_eq!(j["LOG_LEVEL"], "info");

    let dotenv = t.run(&["env", "--format", "dotenv"]).ok().out();
    assert!(dotenv.contains("PLAIN=\"simple\"\n"));
    assert_eq!(dotenv.lines().count(), 3, "one line per variable: {dotenv}");
}

#[test]
fn env_for_fish_reads_back_exactly() {
    let Some(fish) = which("fish") else {
        panic!("fish is not installed: scripts/test installs it (apt-get install fish)");
    };
    let t = env_project();
    let script = t.run(&["env", "--format", "fish"]).ok().out();
    let out = clean_command(&fish)
        .args([
            "-c",
            "printf '%s' $argv[1] | source; printf '%s|%s' \"$HOSTILE\" \"$PLAIN\"",
            &script,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{HOSTILE}|simple")
    );
}

#[test]
fn env_fails_before_printing_when_a_required_secret_is_missing() {
    let t = project(ENV_CONFIG);
    set(&t, "app/plain", "simple");
    let out = t.run(&["env"]);
    out.code(1).err_has(&["HOSTILE", "app/hostile"]);
    assert!(out.stdout.is_empty());
}

#[test]
fn env_warns_on_a_terminal_only() {
    let t = env_project();
    let piped = t.run(&["env"]);
    piped.ok();
    assert!(!piped.err().contains("plaintext"), "{}", piped.err());
    // `script` (util-linux) runs the command on a pseudo-terminal.
    which("script").expect("script (util-linux) is installed");
    let out = t
        .cmd_via(
            &["sh", "-c", r#"exec script -q -e -c "$0 env" /dev/null"#],
            &[] as &[&str],
        )
        .into_command()
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("holds secrets in plaintext"), "{text}");
    assert!(text.contains("export PLAIN='simple'"), "{text}");
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}
