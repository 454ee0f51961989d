//! `tresor migrate` and `tresor sync` between local stores: two vault files
//! (two "nodes") and the environment. Copies verified with every version
//! and the metadata, re-runs, dry runs, conflicts, --delete-source, a
//! kill -9 mid-migration and mid-sync followed by a re-run, the three-way
//! sync (a change, a delete, a conflict settled), and no value in any
//! output. The same commands against OpenBao, moto and a keychain are in
//! tests/migrate_sync_services.rs.

mod common;

use std::time::Duration;

use common::*;

/// A vault (`a`, the local vault) and a second vault file (`b`), both
/// unlocked by the test's key file, named in an approved tresor.toml, plus
/// an environment store `env` reading `MIG_*`.
fn two_vaults() -> Tresor {
    let t = Tresor::with_key();
    let b = t.path("b.db");
    t.run(&["--vault", b.to_str().unwrap(), "init", "--no-recovery"])
        .ok();
    let config = format!(
        "[[stores]]\nname = \"a\"\nkind = \"vault\"\npriority = 10\n\n\
         [[stores]]\nname = \"b\"\nkind = \"vault\"\npath = \"{}\"\npriority = 20\n\n\
         [[stores]]\nname = \"env\"\nkind = \"env\"\nprefix = \"MIG_\"\npriority = 30\n",
        b.display()
    );
    t.write("tresor.toml", config.as_bytes());
    t.run(&["config", "trust"]).ok();
    t
}

fn set(t: &Tresor, store: &str, name: &str, value: &str) {
    t.run_in(&["set", name, "--store", store], value.as_bytes())
        .ok();
}

fn get(t: &Tresor, store: &str, name: &str) -> Option<String> {
    let out = t.run(&["get", name, "--store", store]);
    (out.code == 0).then(|| out.out())
}

fn names(t: &Tresor, store: &str, prefix: &str) -> Vec<String> {
    t.run(&["ls", prefix, "--store", store, "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

/// Every run so far printed no value of `values`.
fn no_value_printed(t: &Tresor, values: &[&str]) {
    for out in t.log.borrow().iter() {
        if out.args.first().is_some_and(|a| a == "get") {
            continue;
        }
        for v in values {
            assert!(
                !contains(&out.stdout, v.as_bytes()) && !contains(&out.stderr, v.as_bytes()),
                "a value appeared in the output of {:?}",
                out.args
            );
        }
    }
}

#[test]
fn migrate_vault_to_vault_copies_every_version_and_the_metadata() {
    let t = two_vaults();
    for v in ["canary-v1", "canary-v2", "canary-v3"] {
        set(&t, "a", "app/db", v);
    }
    t.run_in(
        &["set", "app/api", "--store", "a", "--meta", "owner=ops"],
        b"canary-api",
    )
    .ok();
    set(&t, "a", "other/keep", "canary-other");

    // A dry run plans, writes nothing.
    let plan = t
        .run(&[
            "migrate",
            "--from",
            "a",
            "--to",
            "b",
            "--prefix",
            "app/",
            "--dry-run",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(plan["dry_run"], true);
    let outcomes: Vec<&str> = plan["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["would_copy", "would_copy"]);
    assert!(names(&t, "b", "").is_empty());

    let report = t
        .run(&[
            "migrate", "--from", "a", "--to", "b", "--prefix", "app/", "--json",
        ])
        .ok()
        .json();
    assert_eq!(
        (report["copied"].as_u64(), report["unchanged"].as_u64()),
        (Some(2), Some(0))
    );
    let db = &report["secrets"][1];
    assert_eq!(
        (db["name"].as_str(), db["versions"].as_u64()),
        (Some("app/db"), Some(3))
    );
    // Every version, oldest first, the current one current.
    for (v, value) in [("1", "canary-v1"), ("2", "canary-v2"), ("3", "canary-v3")] {
        let got = t
            .run(&["get", "app/db", "--store", "b", "--version", v])
            .ok()
            .out();
        assert_eq!(got, value);
    }
    assert_eq!(get(&t, "b", "app/db").as_deref(), Some("canary-v3"));
    assert_eq!(get(&t, "b", "app/api").as_deref(), Some("canary-api"));
    let meta = t
        .run(&["meta", "app/api", "--store", "b", "--json"])
        .ok()
        .json();
    assert_eq!(meta["owner"], "ops", "{meta}");
    // Outside the prefix: untouched. The source keeps everything.
    assert_eq!(names(&t, "b", ""), ["app/api", "app/db"]);
    assert_eq!(names(&t, "a", ""), ["app/api", "app/db", "other/keep"]);

    // Again: nothing to do, nothing written.
    let again = t
        .run(&[
            "migrate", "--from", "a", "--to", "b", "--prefix", "app/", "--json",
        ])
        .ok()
        .json();
    assert_eq!(
        (again["copied"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(2))
    );
    let history = t
        .run(&["history", "app/db", "--store", "b", "--json"])
        .ok()
        .json();
    assert_eq!(history.as_array().unwrap().len(), 3);

    // Human output: one line per secret and a summary, no values.
    let human = t.run(&["migrate", "--from", "a", "--to", "b"]);
    human.ok();
    assert!(
        human.out().contains("other/keep\tcopied"),
        "{}",
        human.out()
    );
    assert!(
        human.err().contains("migrated 1 secret(s)"),
        "{}",
        human.err()
    );
    no_value_printed(
        &t,
        &[
            "canary-v1",
            "canary-v2",
            "canary-v3",
            "canary-api",
            "canary-other",
        ],
    );
}

#[test]
fn a_conflict_writes_nothing_and_exits_5() {
    let t = two_vaults();
    set(&t, "a", "app/one", "canary-a1");
    set(&t, "a", "app/two", "canary-a2");
    set(&t, "b", "app/two", "canary-b2");
    let out = t.run(&["migrate", "--from", "a", "--to", "b", "--json"]);
    out.code(5);
    let e = &out.err_json()["error"];
    assert_eq!(e["kind"], "conflict");
    assert!(e["message"].as_str().unwrap().contains("app/two"), "{e}");
    assert!(e["hint"].as_str().unwrap().contains("--dry-run"), "{e}");
    // Nothing was copied, not even the name without a conflict.
    assert_eq!(names(&t, "b", ""), ["app/two"]);
    assert_eq!(get(&t, "b", "app/two").as_deref(), Some("canary-b2"));
    let plan = t
        .run(&["migrate", "--from", "a", "--to", "b", "--dry-run", "--json"])
        .ok()
        .json();
    assert_eq!(plan["conflicts"], 1);
    no_value_printed(&t, &["canary-a1", "canary-a2", "canary-b2"]);
}

#[test]
fn delete_source_soft_deletes_only_after_every_copy_is_verified() {
    let t = two_vaults();
    set(&t, "a", "app/one", "canary-1");
    set(&t, "a", "app/two", "canary-2");
    // app/two is already in b with the same value: verified, deleted too.
    set(&t, "b", "app/two", "canary-2");
    let report = t
        .run(&[
            "migrate",
            "--from",
            "a",
            "--to",
            "b",
            "--delete-source",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(
        (
            report["copied"].as_u64(),
            report["unchanged"].as_u64(),
            report["source_deleted"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!(report["delete_mode"], "soft");
    assert!(names(&t, "a", "").is_empty());
    let deleted = t
        .run(&["ls", "--deleted", "--store", "a", "--json"])
        .ok()
        .json();
    assert_eq!(deleted.as_array().unwrap().len(), 2);
    assert_eq!(get(&t, "b", "app/one").as_deref(), Some("canary-1"));
    // The same store twice, or a read-only target: refused before anything.
    t.run(&["migrate", "--from", "a", "--to", "a"]).code(2);
    t.run(&["migrate", "--from", "b", "--to", "env"]).code(2);
    t.run(&["migrate", "--from", "a", "--to", "nowhere"])
        .code(2)
        .err_has(&["nowhere", "vault"]);
}

#[test]
fn env_to_vault_and_the_local_vault_by_name() {
    let mut t = two_vaults();
    t.set_default("MIG_SVC_TOKEN", "canary-env-token");
    t.set_default("MIG_SVC_URL", "canary-env-url");
    // `vault` is the local vault when no store has that name.
    let report = t
        .run(&[
            "migrate", "--from", "env", "--to", "vault", "--prefix", "svc/", "--json",
        ])
        .ok()
        .json();
    assert_eq!(report["copied"], 2, "{report}");
    assert_eq!(
        get(&t, "a", "svc/token").as_deref(),
        Some("canary-env-token")
    );
    assert_eq!(get(&t, "a", "svc/url").as_deref(), Some("canary-env-url"));
    // The environment cannot delete: --delete-source is refused up front.
    t.run(&["migrate", "--from", "env", "--to", "b", "--delete-source"])
        .code(2);
    assert!(names(&t, "b", "").is_empty());
}

/// Starts `tresor ARGS` and kills it with SIGKILL after `after`.
fn kill_after(t: &Tresor, args: &[&str], after: Duration) -> bool {
    let mut child = t
        .cmd(args)
        .into_command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    !finished
}

fn many_env(t: &mut Tresor, n: usize) {
    for i in 0..n {
        t.set_default(&format!("MIG_BULK_K{i:04}"), format!("canary-bulk-{i}"));
    }
}

#[test]
fn a_migration_killed_midway_completes_when_run_again() {
    let n = 400;
    let mut killed_any = false;
    for delay_ms in [60, 250, 700] {
        let mut t = two_vaults();
        many_env(&mut t, n);
        let args = ["migrate", "--from", "env", "--to", "b", "--prefix", "bulk/"];
        killed_any |= kill_after(&t, &args, Duration::from_millis(delay_ms));
        let mut json_args = args.to_vec();
        json_args.push("--json");
        let report = t.run(&json_args).ok().json();
        let done = report["copied"].as_u64().unwrap() + report["unchanged"].as_u64().unwrap();
        assert_eq!(done, n as u64, "{report}");
        let listed = names(&t, "b", "bulk/");
        assert_eq!(listed.len(), n);
        for i in [0, n / 2, n - 1] {
            assert_eq!(
                get(&t, "b", &format!("bulk/k{i:04}")).unwrap(),
                format!("canary-bulk-{i}")
            );
        }
        // Complete: a third run finds nothing to do and no journal.
        let third = t.run(&json_args).ok().json();
        assert_eq!(
            (third["copied"].as_u64(), third["resumed"].as_bool()),
            (Some(0), Some(false))
        );
        assert_eq!(third["unchanged"].as_u64(), Some(n as u64));
    }
    assert!(
        killed_any,
        "no run was still going when killed: the test proves nothing"
    );
}

fn sync_json(t: &Tresor, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["sync", "a", "b", "--json"];
    args.extend(extra);
    t.run(&args).ok().json()
}

fn actions(report: &serde_json::Value) -> Vec<(String, String)> {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn sync_two_vaults_three_way() {
    let t = two_vaults();
    set(&t, "a", "s/one", "canary-one");
    set(&t, "a", "s/two", "canary-two");
    set(&t, "b", "s/three", "canary-three");

    // The first sync: each side's names go to the other.
    let first = sync_json(&t, &[]);
    assert_eq!(first["first_sync"], true);
    assert_eq!(
        actions(&first),
        [
            ("s/one".into(), "copy_a_to_b".into()),
            ("s/three".into(), "copy_b_to_a".into()),
            ("s/two".into(), "copy_a_to_b".into())
        ]
    );
    assert_eq!(get(&t, "b", "s/one").as_deref(), Some("canary-one"));
    assert_eq!(get(&t, "a", "s/three").as_deref(), Some("canary-three"));

    // Nothing changed: nothing read, nothing written.
    let idle = sync_json(&t, &[]);
    assert_eq!(
        (
            idle["read"].as_u64(),
            idle["changes"].as_array().unwrap().len()
        ),
        (Some(0), 0)
    );
    assert_eq!(idle["unchanged"], 3);

    // A change on one side goes to the other; only that name is read.
    set(&t, "a", "s/one", "canary-one-2");
    let dry = sync_json(&t, &["--dry-run"]);
    assert_eq!(actions(&dry), [("s/one".into(), "copy_a_to_b".into())]);
    assert_eq!(get(&t, "b", "s/one").as_deref(), Some("canary-one"));
    let changed = sync_json(&t, &[]);
    assert_eq!(actions(&changed), [("s/one".into(), "copy_a_to_b".into())]);
    assert_eq!(changed["read"], 1);
    assert_eq!(get(&t, "b", "s/one").as_deref(), Some("canary-one-2"));

    // A delete propagates as a soft delete.
    t.run(&["rm", "s/two", "--store", "b"]).ok();
    let deleted = sync_json(&t, &[]);
    assert_eq!(actions(&deleted), [("s/two".into(), "delete_in_a".into())]);
    assert_eq!(get(&t, "a", "s/two"), None);
    let soft = t
        .run(&["ls", "--deleted", "--store", "a", "--json"])
        .ok()
        .json();
    assert_eq!(soft[0]["name"], "s/two");

    // Both sides changed: a conflict, listed, left alone, exit 5.
    set(&t, "a", "s/three", "canary-three-a");
    set(&t, "b", "s/three", "canary-three-b");
    let out = t.run(&["sync", "a", "b", "--json"]);
    out.code(5);
    let conflict = out.json();
    assert_eq!(conflict["conflicts"], 1);
    assert_eq!(
        (
            conflict["changes"][0]["a"].as_str(),
            conflict["changes"][0]["b"].as_str()
        ),
        (Some("changed"), Some("changed"))
    );
    assert_eq!(get(&t, "a", "s/three").as_deref(), Some("canary-three-a"));
    assert_eq!(get(&t, "b", "s/three").as_deref(), Some("canary-three-b"));
    let human = t.run(&["sync", "a", "b"]);
    human.code(5);
    assert!(
        human
            .out()
            .contains("s/three\tCONFLICT (a: changed, b: changed)"),
        "{}",
        human.out()
    );
    assert!(human.err().contains("--prefer"), "{}", human.err());
    // Settled: b wins.
    let settled = sync_json(&t, &["--prefer", "b"]);
    assert_eq!(
        actions(&settled),
        [("s/three".into(), "copy_b_to_a".into())]
    );
    assert_eq!(settled["changes"][0]["settled_by"], "b");
    assert_eq!(get(&t, "a", "s/three").as_deref(), Some("canary-three-b"));
    let calm = sync_json(&t, &[]);
    assert_eq!(
        (
            calm["conflicts"].as_u64(),
            calm["changes"].as_array().unwrap().len()
        ),
        (Some(0), 0)
    );

    // The state names no value: the local vault's records hold fingerprints.
    no_value_printed(
        &t,
        &[
            "canary-one",
            "canary-two",
            "canary-three",
            "canary-three-a",
            "canary-three-b",
        ],
    );
}

#[test]
fn an_interrupted_sync_reruns_cleanly() {
    let n = 300;
    let mut killed_any = false;
    // Several moments, from right after the start to well into the run, so
    // that one kill lands mid-sync on a fast machine and on a loaded one.
    for delay_ms in [2, 15, 80, 300] {
        let mut t = two_vaults();
        many_env(&mut t, n);
        t.run(&["migrate", "--from", "env", "--to", "a", "--prefix", "bulk/"])
            .ok();
        killed_any |= kill_after(&t, &["sync", "a", "b"], Duration::from_millis(delay_ms));
        let report = sync_json(&t, &[]);
        assert_eq!(report["conflicts"], 0, "{report}");
        assert_eq!(names(&t, "b", "bulk/").len(), n);
        assert_eq!(get(&t, "b", "bulk/k0299").unwrap(), "canary-bulk-299");
        let again = sync_json(&t, &[]);
        assert_eq!(
            (
                again["read"].as_u64(),
                again["changes"].as_array().unwrap().len()
            ),
            (Some(0), 0)
        );
    }
    assert!(killed_any, "no sync was still going when killed");
}
