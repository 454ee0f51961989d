//! The CLI through the manager: tresor.toml discovery, `config check`,
//! priority order, --store, --profile, ls merge, an unavailable optional or
//! required store (OpenBao pointed at a closed port), `stores`, `doctor`.
//! The runs against a real OpenBao are in tests/manager_services.rs.

mod common;

use common::*;
use serde_json::Value;

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn config(t: &Tresor, required: bool) -> String {
    let text = format!(
        r#"[[stores]]
name = "env"
kind = "env"
prefix = "APP_"
priority = 10

[[stores]]
name = "local"
kind = "vault"
priority = 50

[[stores]]
name = "team"
kind = "openbao"
address = "http://127.0.0.1:{}"
token = "ENV/TEST_BAO_TOKEN"
required = {required}
connect_timeout = "500ms"
timeout = "1s"
priority = 100

[profiles.local-only]
stores = ["local"]
"#,
        closed_port()
    );
    t.write("tresor.toml", text.as_bytes());
    // A project config is used once the user approved it (tests/config_trust.rs).
    t.run(&["config", "trust"]).ok();
    text
}

fn managed() -> Tresor {
    let mut t = Tresor::with_key();
    t.set_default("TEST_BAO_TOKEN", "not-a-real-token");
    t
}

#[test]
fn without_a_config_the_vault_is_the_one_store_and_stores_shows_it() {
    let t = Tresor::with_key();
    t.run_in(&["set", "a"], b"v").ok();
    assert_eq!(
        t.run(&["get", "a", "--json"]).ok().json()["store"],
        Value::from("vault")
    );
    let stores = t.run(&["stores", "--json"]).ok().json();
    assert_eq!(stores[0]["name"], "vault");
    assert_eq!(stores[0]["available"], true);
    // What it can do, capability by capability.
    let caps = &stores[0]["capabilities"];
    for c in [
        "versions",
        "read_labels",
        "staging",
        "move_labels",
        "soft_delete",
    ] {
        assert_eq!(caps[c], true, "{c}: {caps}");
    }
    assert_eq!(caps["read_only"], false);
    t.run(&["doctor"]).ok();
    t.run(&["config", "check"]).ok();
    // --store without a config names the one store there is.
    t.run(&["get", "a", "--store", "vault"]).ok();
    t.run(&["get", "a", "--store", "other"]).code(2);
}

#[test]
fn reads_follow_priority_and_writes_go_to_the_first_writable_store() {
    let t = managed();
    config(&t, false);
    let set = t
        .run_in(
            &["set", "openai/api_key", "--json"],
            b"sk-from-the-vault-0123456789",
        )
        .ok()
        .json();
    assert_eq!(set["store"], "local");
    // env (priority 10) shadows the vault.
    let got = t
        .cmd(&["get", "openai/api_key", "--json"])
        .env("APP_OPENAI_API_KEY", "from-env")
        .run()
        .ok()
        .json();
    assert_eq!(
        (got["value"].as_str(), got["store"].as_str()),
        (Some("from-env"), Some("env"))
    );
    // --store asks one store.
    let got = t
        .cmd(&["get", "openai/api_key", "--store", "local"])
        .env("APP_OPENAI_API_KEY", "from-env")
        .run();
    assert_eq!(got.ok().out(), "sk-from-the-vault-0123456789");
    // A name no reachable store holds while the optional store is down:
    // the answer is unknown, so unavailable (exit 6), said once, as the
    // error (no warning beside it).
    let missing = t.run(&["get", "nothing/here"]);
    missing.code(6).err_has(&["team is unavailable"]);
    assert_eq!(
        missing.err().matches("team").count(),
        1,
        "{}",
        missing.err()
    );
    assert!(!missing.err().contains("warning"), "{}", missing.err());
    // (When another store answers, the skipped store is one warning:
    // crates/tresor/tests/manager.rs.)
    // ls shows where each name lives, and what it shadows.
    let ls = t
        .cmd(&["ls", "--json"])
        .env("APP_OPENAI_API_KEY", "x")
        .env("APP_ONLY_ENV", "y")
        .run()
        .ok()
        .json();
    let rows: Vec<(String, String, Value)> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                r["store"].as_str().unwrap().into(),
                r["shadowed"].clone(),
            )
        })
        .collect();
    assert!(
        rows.contains(&(
            "openai/api_key".into(),
            "env".into(),
            serde_json::json!(["local"])
        )),
        "{rows:?}"
    );
    assert!(
        rows.contains(&("only/env".into(), "env".into(), serde_json::json!([]))),
        "{rows:?}"
    );
    // Writes to a read-only kind are refused; --store picks the target.
    t.run_in(&["set", "x", "--store", "env"], b"v").code(2);
    // rm acts on the store that answers.
    let rm = t.run(&["rm", "openai/api_key", "--json"]).ok().json();
    assert_eq!(rm["store"], "local");
}

#[test]
fn profiles_swap_the_store_set() {
    let t = managed();
    config(&t, true);
    t.run_in(&["set", "a", "--store", "local"], b"v").ok();
    // Without the profile, the required store that is down fails the read of
    // a name the higher-priority stores lack.
    t.run(&["get", "nope"])
        .code(6)
        .err_has(&["team", "unavailable"]);
    // The profile leaves it out.
    t.run(&["get", "nope", "--profile", "local-only"]).code(1);
    t.cmd(&["get", "nope"])
        .env("TRESOR_PROFILE", "local-only")
        .run()
        .code(1);
    let stores = t
        .run(&["stores", "--json", "--profile", "local-only"])
        .ok()
        .json();
    assert_eq!(stores.as_array().unwrap().len(), 1);
    t.run(&["get", "a", "--profile", "ghost"])
        .code(2)
        .err_has(&["ghost", "local-only"]);
}

#[test]
fn stores_and_doctor_report_each_store() {
    let t = managed();
    config(&t, false);
    let stores = t.run(&["stores", "--json"]).ok().json();
    let names: Vec<&str> = stores
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["env", "local", "team"]);
    assert_eq!(stores[2]["available"], false);
    assert_eq!(stores[2]["kind"], "openbao");
    assert_eq!(stores[0]["read_only"], false);
    // Each store says what it can do: the environment only reads and
    // lists; OpenBao (built, though down) neither stages nor moves labels.
    let env = &stores[0]["capabilities"];
    assert_eq!(
        (env["read_only"].clone(), env["list"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(env["versions"], false, "{env}");
    let team = &stores[2]["capabilities"];
    assert_eq!(
        (team["versions"].clone(), team["staging"].clone()),
        (true.into(), false.into())
    );
    assert_eq!(team["move_labels"], false, "{team}");
    let text = t.run(&["stores"]).ok().out();
    assert!(text.contains("PRIORITY") && text.contains("team"), "{text}");

    // The optional store is down: doctor reports it but exits 0.
    let d = t.run(&["doctor", "--json"]).ok().json();
    let team = d["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "team")
        .unwrap()
        .clone();
    assert_eq!(team["reachable"], false);
    let local = d["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "local")
        .unwrap()
        .clone();
    assert_eq!(
        (local["probe"].as_str(), local["cleaned_up"].as_bool()),
        (Some("ok"), Some(true))
    );
    let env = d["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "env")
        .unwrap()
        .clone();
    assert_eq!(env["probe"], "skipped");
    // The probe left nothing behind in the vault.
    assert!(
        t.run(&["ls", "--store", "local", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        t.run(&["ls", "--json", "--deleted"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Required and down: exit 6.
    config(&t, true);
    let out = t.run(&["doctor"]);
    out.code(6).err_has(&["required store unhealthy: team"]);
}

#[test]
fn config_check_reports_every_problem_with_file_and_line() {
    let t = managed();
    let path = t.write(
        "broken.toml",
        br#"[[stores]]
name = "a"
kind = "floppy"

[[stores]]
name = "a"
kind = "env"
priority = "high"
prefx = "X_"

[[stores]]
name = "bao"
kind = "openbao"
address = "http://127.0.0.1:8200"
token = "ENV/SURELY_UNSET_TRESOR_TEST_VAR"

[profiles.prod]
stores = ["ghost"]
"#,
    );
    let p = path.display().to_string();
    let out = t.run(&["config", "check", "--config", &p]);
    let text = out.code(2).out();
    for want in [
        format!("{p}:3:8: store 'a': unknown kind"),
        format!("{p}:6:8: duplicate store name 'a'"),
        format!("{p}:8:12: store 'a': priority must be"),
        format!(
            "{p}:15:1: store 'bao': option 'token': ENV/SURELY_UNSET_TRESOR_TEST_VAR is not set"
        ),
        format!("{p}:18:11: profile 'prod' names store 'ghost'"),
    ] {
        assert!(text.contains(&want), "missing {want:?} in\n{text}");
    }
    out.err_has(&["problems in"]);
    let json = t
        .run(&["config", "check", "--config", &p, "--json"])
        .code(2)
        .json();
    assert_eq!(json["ok"], false);
    assert!(json["problems"].as_array().unwrap().len() >= 5);
    assert_eq!(json["problems"][0]["line"], 3);

    // A good file: exit 0. Found as ./tresor.toml, and named by TRESOR_CONFIG.
    config(&t, false);
    t.run(&["config", "check"])
        .ok()
        .err_has(&["ok (3 stores, 1 profile)"]);
    let other = t.write(
        "elsewhere/x.toml",
        b"[[stores]]\nname = \"only\"\nkind = \"vault\"\n",
    );
    let stores = t
        .cmd(&["stores", "--json"])
        .env("TRESOR_CONFIG", &other)
        .run()
        .ok()
        .json();
    assert_eq!(stores[0]["name"], "only");
    // The user config file is found too when there is no ./tresor.toml.
    std::fs::remove_file(t.path("tresor.toml")).unwrap();
    t.write(
        "xdg-config/tresor/config.toml",
        b"[[stores]]\nname = \"user\"\nkind = \"vault\"\n",
    );
    assert_eq!(t.run(&["stores", "--json"]).ok().json()[0]["name"], "user");
    // A broken config stops secret commands with the problems (exit 2),
    // but vault-only commands still work.
    t.write("xdg-config/tresor/config.toml", b"[[stores]]\nname = 1\n");
    t.run(&["get", "a"]).code(2).err_has(&["config.toml:2:8"]);
    t.run(&["verify"]).ok();
    t.run(&["keyslot", "list", "--store", "x"]).code(2);
}

#[test]
fn config_check_knows_every_store_kind_of_this_build() {
    let t = managed();
    let path = t.write(
        "all-kinds.toml",
        br#"[[stores]]
name = "login"
kind = "keychain"
backend = "secret-service"
service = "my-app"

[[stores]]
name = "cloud"
kind = "aws"
region = "eu-west-1"
endpoint = "http://127.0.0.1:9"
timeout = "2s"

[[stores]]
name = "kv"
kind = "azure"
vault_url = "https://example.vault.azure.net"
credential = "managed-identity"

[[stores]]
name = "typos"
kind = "aws"
regoin = "eu-west-1"
"#,
    );
    let p = path.display().to_string();
    let out = t.run(&["config", "check", "--config", &p]);
    let text = out.code(2).out();
    // Only the typo is a problem: the keychain, aws and azure stores are in
    // the CLI build and their options were read.
    assert!(!text.contains("has no"), "{text}");
    assert!(text.contains(&format!("{p}:23:1:")), "{text}");
    assert!(text.contains("'regoin'"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with(&p)).count(),
        1,
        "{text}"
    );
}

/// Two remote stores down and the name in neither the vault nor the
/// environment: every store that could answer is unavailable, so the
/// answer is exit 6, and each store is named once in the run, whichever
/// command asks (a read, a listing, history).
#[test]
fn every_store_down_is_said_once_per_store() {
    let t = managed();
    let text = format!(
        r#"[[stores]]
name = "local"
kind = "vault"
priority = 50

[[stores]]
name = "team-a"
kind = "openbao"
address = "http://127.0.0.1:{}"
token = "ENV/TEST_BAO_TOKEN"
connect_timeout = "500ms"
timeout = "1s"
priority = 100

[[stores]]
name = "team-b"
kind = "openbao"
address = "http://127.0.0.1:{}"
token = "ENV/TEST_BAO_TOKEN"
connect_timeout = "500ms"
timeout = "1s"
priority = 110
"#,
        closed_port(),
        closed_port()
    );
    t.write("tresor.toml", text.as_bytes());
    t.run(&["config", "trust"]).ok();
    for json in [false, true] {
        for args in [&["get", "nothing/here"][..], &["history", "nothing/here"]] {
            let mut args = args.to_vec();
            if json {
                args.insert(0, "--json");
            }
            let o = t.run(&args);
            o.code(6);
            let err = o.err();
            for store in ["team-a", "team-b"] {
                assert_eq!(
                    err.matches(&format!("{store} is unavailable")).count()
                        + err.matches(&format!("'{store}'")).count(),
                    1,
                    "{args:?}: {store} not said exactly once:\n{err}"
                );
            }
        }
    }
    // A listing answers from what it can reach, noting each store it could
    // not list once.
    let o = t.run(&["ls"]);
    o.ok();
    for store in ["team-a", "team-b"] {
        assert_eq!(o.err().matches(store).count(), 1, "{}", o.err());
    }
}
