//! An empty value is refused unless asked for: `tresor set NAME < /dev/null`
//! used to store an empty secret and report success.

mod common;

use common::Tresor;

#[test]
fn empty_values_are_refused_unless_allowed() {
    let t = Tresor::with_key();
    let empty_file = t.write("in/empty", b"");

    for (args, source) in [
        (vec!["set", "app/token"], "on stdin"),
        (vec!["rotate", "app/token"], "on stdin"),
        (
            vec!["set", "app/token", "--file", empty_file.to_str().unwrap()],
            "in ",
        ),
    ] {
        t.run_in(&args, b"")
            .code(2)
            .err_has(&["no value", source, "--allow-empty"]);
    }
    // A lone newline is an empty value too (one trailing newline is dropped).
    t.run_in(&["set", "app/token"], b"\n")
        .code(2)
        .err_has(&["--allow-empty"]);
    // Nothing was stored.
    t.run(&["get", "app/token"]).code(1);
    t.run(&["history", "app/token"]).code(1);

    // Asked for: stored, and read back empty.
    t.run_in(&["set", "app/token", "--allow-empty"], b"")
        .ok()
        .err_has(&["set version 1"]);
    assert!(t.run(&["get", "app/token"]).ok().stdout.is_empty());
    t.run_in(&["rotate", "app/token", "--allow-empty"], b"")
        .ok();
    let h = t.run(&["--json", "history", "app/token"]).ok().json();
    assert_eq!(h.as_array().unwrap().len(), 2, "{h}");
    // A value is not affected by the flag.
    t.run_in(&["set", "app/token", "--allow-empty"], b"v").ok();
    assert_eq!(t.run(&["get", "app/token"]).ok().stdout, b"v");
}
