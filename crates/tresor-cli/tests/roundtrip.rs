//! Round trips through the real binary: whatever valid name and value go in
//! with `set` come back byte for byte from `get` (stdout, `--out`, `--json`),
//! whether the value came from a raw file, a base64 file or stdin; and the
//! 1 MiB value limit holds at the boundary without touching the vault.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use proptest::prelude::*;

const MIB: usize = 1024 * 1024;

/// One segment: the allowed characters, never `.` or `..`.
fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,24}".prop_filter("'.' and '..' are not segments", |s| s != "." && s != "..")
}

/// Valid names, including ones starting with `-` or `.` and 256-byte ones.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::collection::vec(segment(), 1..6).prop_map(|s| s.join("/")),
        1 => "[A-Za-z0-9_-]{256}",
        1 => proptest::collection::vec("[A-Za-z0-9_-]{1,60}", 5..9)
            .prop_map(|s| s.join("/"))
            .prop_filter("at most 256 bytes", |n| n.len() <= 256),
    ]
}

/// Empty, binary (any bytes), Unicode text, and ASCII text with newlines.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        3 => proptest::collection::vec(any::<u8>(), 0..3000),
        2 => any::<String>().prop_map(String::into_bytes),
        2 => "[ -~\n\t\r]{0,300}".prop_map(String::into_bytes),
    ]
}

/// What `set` stores from stdin without `--keep-newline`: one trailing
/// newline (`\n` or `\r\n`) dropped.
fn drop_one_newline(raw: &[u8]) -> &[u8] {
    raw.strip_suffix(b"\r\n")
        .or_else(|| raw.strip_suffix(b"\n"))
        .unwrap_or(raw)
}

/// Base64 text wrapped at 76 columns, as `base64(1)` writes it.
fn wrapped_base64(bytes: &[u8]) -> String {
    let text = base64(bytes);
    let mut out = String::new();
    for line in text.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out
}

/// Reads `name` back in every way `get` offers and compares with `want`.
fn assert_reads_back(t: &Tresor, name: &str, version: u64, want: &[u8]) {
    let v = version.to_string();
    let stdout = t
        .run(&["get", "--version", &v, "--", name])
        .ok()
        .stdout
        .clone();
    prop_assert_bytes(&stdout, want, "get (stdout)");

    std::fs::create_dir_all(t.path("out")).unwrap();
    let out = t.path(&format!("out/v{version}"));
    let out_s = out.display().to_string();
    let o = t.run(&[
        "--json",
        "get",
        "--version",
        &v,
        "--out",
        &out_s,
        "--",
        name,
    ]);
    o.ok();
    assert_eq!(o.json()["version"], version);
    assert!(
        !contains(&o.stdout, want) || want.len() < 8,
        "get --out echoed the value"
    );
    prop_assert_bytes(&std::fs::read(&out).unwrap(), want, "get --out");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "--out file mode");

    let j = t
        .run(&["--json", "get", "--version", &v, "--", name])
        .ok()
        .json();
    assert_eq!(j["name"], name);
    assert_eq!(j["version"], version);
    let decoded = match std::str::from_utf8(want) {
        Ok(_) => j["value"]
            .as_str()
            .expect("text values come back as \"value\"")
            .as_bytes()
            .to_vec(),
        Err(_) => unbase64(
            j["value_base64"]
                .as_str()
                .expect("binary values come back as \"value_base64\""),
        ),
    };
    prop_assert_bytes(&decoded, want, "get --json");
}

#[track_caller]
fn prop_assert_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let show = |b: &[u8]| {
            let head: Vec<u8> = b.iter().copied().take(64).collect();
            format!("{} bytes, starting {:?}", b.len(), head)
        };
        panic!("{what}: got {}, want {}", show(got), show(want));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// `set --file` (raw) then `--file --encoding base64` store the exact
    /// bytes; every form of `get` returns them; history records both lengths.
    #[test]
    fn file_values_round_trip(name in name(), value in value()) {
        let t = Tresor::with_key();
        let raw = t.write("in/raw", &value);
        // Any bytes, the empty value included (which needs --allow-empty).
        let o = t.run(&["--json", "set", "--allow-empty", "--file", raw.to_str().unwrap(), "--", &name]);
        o.ok();
        prop_assert_eq!(o.json()["version"].as_u64(), Some(1));

        let b64 = t.write("in/b64", wrapped_base64(&value).as_bytes());
        t.run(&["set", "--allow-empty", "--file", b64.to_str().unwrap(), "--encoding", "base64", "--", &name]).ok();

        assert_reads_back(&t, &name, 1, &value);
        assert_reads_back(&t, &name, 2, &value);
        // The current version, without --version.
        let current = t.run(&["get", "--", &name]).ok().stdout.clone();
        prop_assert_bytes(&current, &value, "get (current)");

        let history = t.run(&["--json", "history", "--", &name]).ok().json();
        let lens: Vec<u64> = history.as_array().unwrap().iter()
            .map(|h| h["len"].as_u64().unwrap()).collect();
        prop_assert_eq!(lens, vec![value.len() as u64; 2]);
        let listed = t.run(&["--json", "ls"]).ok().json();
        prop_assert_eq!(&listed[0]["name"], &serde_json::Value::from(name.clone()));
        prop_assert_eq!(listed[0]["current"].as_u64(), Some(2));
    }

    /// Stdin: one trailing newline is dropped unless --keep-newline.
    #[test]
    fn stdin_values_round_trip(name in name(), value in value(), newline in prop_oneof![Just(""), Just("\n"), Just("\r\n")]) {
        let t = Tresor::with_key();
        let mut raw = value.clone();
        raw.extend_from_slice(newline.as_bytes());
        t.run_in(&["set", "--allow-empty", "--", &name], &raw).ok();
        t.run_in(&["set", "--allow-empty", "--keep-newline", "--", &name], &raw).ok();
        let dropped = t.run(&["get", "--version", "1", "--", &name]).ok().stdout.clone();
        prop_assert_bytes(&dropped, drop_one_newline(&raw), "stdin without --keep-newline");
        let kept = t.run(&["get", "--", &name]).ok().stdout.clone();
        prop_assert_bytes(&kept, &raw, "stdin with --keep-newline");
    }
}

#[test]
fn stdin_newline_rules() {
    let t = Tresor::with_key();
    let cases: [(&[u8], bool, &[u8]); 10] = [
        (b"abc", false, b"abc"),
        (b"abc\n", false, b"abc"),
        (b"abc\n\n", false, b"abc\n"),
        (b"abc\r\n", false, b"abc"),
        (b"a\nb", false, b"a\nb"),
        (b"", false, b""),
        (b"\n", false, b""),
        (b"abc\n", true, b"abc\n"),
        (b"\n", true, b"\n"),
        (b"abc\r\n", true, b"abc\r\n"),
    ];
    for (i, (input, keep, want)) in cases.iter().enumerate() {
        let name = format!("nl/{i}");
        let mut args = vec!["set", name.as_str()];
        if want.is_empty() {
            // An empty value is stored only when asked for
            // (tests/empty_values.rs).
            args.push("--allow-empty");
        }
        if *keep {
            args.push("--keep-newline");
        }
        t.run_in(&args, input).ok();
        let got = t.run(&["get", &name]).ok().stdout.clone();
        assert_eq!(
            got, *want,
            "input {input:?} keep_newline={keep}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn bad_base64_file_is_refused_and_stores_nothing() {
    let t = Tresor::with_key();
    let f = t.write("in/bad", b"not*base64!\n");
    t.run(&[
        "set",
        "b64/bad",
        "--file",
        f.to_str().unwrap(),
        "--encoding",
        "base64",
    ])
    .code(2)
    .err_has(&["base64"]);
    t.run(&["get", "b64/bad"]).code(1);
    // --encoding without --file is a usage error too.
    t.run_in(&["set", "b64/bad", "--encoding", "base64"], b"aGk=")
        .code(2);
}

#[test]
fn one_mib_is_accepted_and_one_byte_more_is_refused() {
    let t = Tresor::with_key();
    let name = "big/blob";
    let first = filler(MIB, 1);
    let f = t.write("in/first", &first);
    t.run(&["set", name, "--file", f.to_str().unwrap()]).ok();
    // A 1 MiB value through stdin too (--keep-newline: the bytes are raw).
    let mut second = filler(MIB, 2);
    second[MIB - 1] = b'\n';
    t.run_in(&["set", name, "--keep-newline"], &second).ok();

    let out = t.path("big.out");
    t.run(&[
        "get",
        name,
        "--version",
        "1",
        "--out",
        out.to_str().unwrap(),
    ])
    .ok();
    assert!(std::fs::read(&out).unwrap() == first, "1 MiB via --out");
    assert!(
        t.run(&["get", name]).ok().stdout == second,
        "1 MiB via stdout"
    );
    let audit_before = t.audit().len();

    // One byte over, from a file and from stdin.
    let too_big = filler(MIB + 1, 3);
    let f = t.write("in/too-big", &too_big);
    for o in [
        t.run(&["set", name, "--file", f.to_str().unwrap()]),
        t.run_in(&["set", name, "--keep-newline"], &too_big),
        t.run_in(&["rotate", name, "--stage", "--keep-newline"], &too_big),
    ] {
        o.code(2).err_has(&[name, "1048577", "1048576"]);
        assert!(
            !contains(&o.stderr, &too_big[..64]),
            "the error echoes the value"
        );
    }

    // Unchanged: two versions, the second current, no new audit entry.
    let history = t.run(&["--json", "history", name]).ok().json();
    let rows = history.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{history}");
    assert_eq!(rows[0]["len"], MIB);
    assert_eq!(rows[1]["len"], MIB);
    assert_eq!(rows[1]["labels"], serde_json::json!(["current"]));
    assert!(
        t.run(&["get", name]).ok().stdout == second,
        "the current value changed"
    );
    let audit = t.audit();
    // Only the history and get reads above were added.
    assert_eq!(audit.len(), audit_before + 2);
    assert!(
        audit[audit_before..]
            .iter()
            .all(|e| e["operation"] != "set"),
        "a refused set was recorded as a write"
    );
    t.run(&["verify"]).ok();
}

#[test]
fn a_smaller_max_value_len_setting_is_enforced() {
    let t = Tresor::with_key();
    t.run(&["settings", "max_value_len=4"]).ok();
    t.run_in(&["set", "small/x"], b"1234").ok();
    t.run_in(&["set", "small/x"], b"12345")
        .code(2)
        .err_has(&["small/x", "the limit is 4 bytes"]);
    assert_eq!(t.run(&["get", "small/x"]).ok().stdout, b"1234");
}
