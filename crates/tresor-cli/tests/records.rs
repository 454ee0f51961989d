//! Issue 8, L1 and L7 through the real binary: a purged secret's version
//! row spliced into the secret that reuses its row id is an integrity error
//! (exit 4) for `get` and `verify`; AES-256-GCM named keys count their
//! encryptions, warn near the budget and refuse past it (exit 2) with the
//! way out. The vault file is edited with python3's sqlite3 module, as an
//! attacker with write access to it would.

mod common;

use std::path::Path;

use common::*;

/// Runs `script` (Python, with `sqlite3` imported and `c` connected to the
/// vault) and returns its stdout.
fn sql(vault: &Path, script: &str) -> String {
    let program = format!(
        "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\n{script}\n"
    );
    let out = clean_command("python3")
        .args(["-c", &program])
        .arg(vault)
        .output()
        .expect("python3 (with its sqlite3 module) is needed to edit the vault");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_purged_secrets_row_replayed_into_a_new_secret_is_exit_4() {
    let t = Tresor::with_key();
    t.run_in(&["set", "old/a"], b"RECORDS-CANARY-old-a").ok();
    // The attacker keeps a copy of old/a's sealed version 1 (row id, key, body).
    let old = sql(
        &t.vault,
        "r = c.execute('SELECT secret_id, key_id, hex(body) FROM versions').fetchone()\n\
         print(r[0], r[1], r[2])",
    );
    t.run(&["rm", "old/a", "--purge"]).ok();
    t.run_in(&["set", "new/b"], b"value of new/b").ok();
    let id = sql(
        &t.vault,
        "print(c.execute('SELECT id FROM secrets').fetchone()[0])",
    );
    let mut f = old.split(' ');
    let (old_id, key_id, body) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
    assert_eq!(id, old_id, "new/b reuses old/a's row id");
    sql(
        &t.vault,
        &format!(
            "c.execute('UPDATE versions SET key_id = ?, body = ? WHERE secret_id = ? AND version = 1', \
             ({key_id}, bytes.fromhex('{body}'), {id}))"
        ),
    );
    let o = t.run(&["get", "new/b"]);
    assert!(
        !contains(&o.stdout, b"RECORDS-CANARY-old-a"),
        "the purged value replayed into new/b"
    );
    o.code(4).err_has(&["integrity"]);
    t.run(&["verify"]).code(4);
}

#[test]
fn aes_keys_count_encryptions_warn_near_the_budget_and_refuse_past_it() {
    let t = Tresor::with_key();
    t.run(&["key", "create", "app/orders"]).ok();
    t.run(&["key", "create", "app/bulk", "--type", "xchacha20-poly1305"])
        .ok();
    for input in [&b"a"[..], b"b", b"c"] {
        t.run_in(&["key", "encrypt", "app/orders"], input).ok();
        t.run_in(&["key", "encrypt", "app/bulk"], input).ok();
    }
    // Each run gives back the unused rest of its reserved block.
    let list = t.run(&["--json", "key", "list"]).ok().json();
    let orders = &list.as_array().unwrap()[1];
    assert_eq!(orders["name"], "app/orders");
    assert_eq!(orders["encryptions"], 3);
    assert_eq!(orders["encryption_budget"], 1u64 << 32);
    assert!(list[0].get("encryptions").is_none(), "{}", list[0]);
    let quiet = t.run_in(&["key", "encrypt", "app/orders"], b"d");
    assert!(!quiet.ok().err().contains("warning"), "{}", quiet.err());

    // Half the budget used: every encryption warns, `key ls` shows it.
    let set = |n: u64| {
        sql(
            &t.vault,
            &format!(
                "c.execute('UPDATE named_key_versions SET sealed = {n} WHERE key_id_ref = \
                 (SELECT min(id) FROM named_keys)')"
            ),
        )
    };
    set(1 << 31);
    let o = t.run_in(&["--quiet", "key", "encrypt", "app/orders"], b"e");
    o.ok().err_has(&[
        "warning:",
        "named key 'app/orders' version 1",
        "tresor key rotate app/orders",
        "xchacha20-poly1305",
    ]);
    assert!(o.out().starts_with("tresor:v1:app/orders:1:"));
    let text = t.run(&["key", "ls"]).ok().out();
    assert!(
        text.contains("encryptions used: `tresor key rotate app/orders`"),
        "{text}"
    );

    // The budget spent: refused, with the way out; nothing on stdout.
    set(1 << 32);
    let o = t.run_in(&["key", "encrypt", "app/orders"], b"f");
    o.code(2).err_has(&[
        "4294967296 envelopes",
        "tresor key rotate app/orders",
        "xchacha20-poly1305",
    ]);
    assert!(o.out().is_empty(), "{}", o.out());
    let envelope = t.run_in(&["key", "encrypt", "app/bulk"], b"g").ok().out();
    let rewrap = t.run_in(&["key", "rewrap"], envelope.as_bytes());
    rewrap.ok(); // another key: unaffected
    t.run(&["key", "rotate", "app/orders"]).ok();
    let o = t.run_in(&["key", "encrypt", "app/orders"], b"h");
    assert!(o.ok().out().starts_with("tresor:v1:app/orders:2:"));
    assert!(!o.err().contains("warning"), "{}", o.err());
}
