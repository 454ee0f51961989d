//! `tresor encrypt` / `tresor decrypt`: age v1 files, driven through the
//! real binary. Round trips at chunk boundaries, interop both ways with the
//! stock `age` and `age-keygen` (Debian package `age`; scripts/test installs
//! it, and these tests fail, never skip, without it), tampering, and the
//! promise that a failed decryption leaves no output file.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// Sizes around age's 64 KiB chunks and tresor's 1 MiB batches, and one
/// large file.
const SIZES: [usize; 9] = [
    0, 1, 65535, 65536, 65537, 131072, 200001, 1_048_576, 5_000_000,
];

/// Runs a stock age tool; panics (never skips) when it is not installed.
fn stock(program: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    let out = clean_command(program)
        .args(args.iter().map(|a| a.as_ref()))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{program}` ({e}): install the Debian package `age` \
                 (scripts/test does as root)"
            )
        });
    assert!(
        out.status.success(),
        "{program} {:?} failed: {}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A new identity file from `age-keygen` at `rel`; returns (path, recipient).
fn keygen(t: &Tresor, rel: &str) -> (PathBuf, String) {
    let path = t.path(rel);
    stock("age-keygen", &[&"-o", &path]);
    let out = stock("age-keygen", &[&"-y", &path]);
    let recipient = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");
    (path, recipient)
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn round_trips_with_a_recipient() {
    let t = Tresor::new();
    let (key, recipient) = keygen(&t, "key.txt");
    for (i, &len) in SIZES.iter().enumerate() {
        let data = filler(len, i as u64 + 1);
        let plain = t.write(&format!("plain-{len}"), &data);
        let sealed = t.path(&format!("plain-{len}.age"));
        let opened = t.path(&format!("opened-{len}"));
        t.run(&["encrypt", "-r", &recipient, "-o", &p(&sealed), &p(&plain)])
            .ok();
        let bytes = std::fs::read(&sealed).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
        assert!(bytes.len() > len);
        assert_eq!(
            std::fs::metadata(&sealed).unwrap().permissions().mode() & 0o777,
            0o600
        );
        t.run(&["decrypt", "-i", &p(&key), "-o", &p(&opened), &p(&sealed)])
            .ok();
        assert_eq!(std::fs::read(&opened).unwrap(), data, "size {len}");
        // stdin to stdout, "-" for stdin.
        let o = t.run_in(&["encrypt", "-r", &recipient, "-"], &data);
        o.ok();
        let o = t.run_in(&["decrypt", "-i", &p(&key)], &o.stdout);
        o.ok();
        assert!(o.stdout == data, "size {len} through stdin/stdout");
    }
}

#[test]
fn round_trips_with_a_passphrase_file() {
    let t = Tresor::new();
    let pass = t.write("pass", b"correct horse battery staple\n");
    for (i, &len) in SIZES.iter().enumerate() {
        let data = filler(len, i as u64 + 100);
        let plain = t.write(&format!("plain-{len}"), &data);
        let sealed = t.path(&format!("plain-{len}.age"));
        let opened = t.path(&format!("opened-{len}"));
        t.run(&[
            "encrypt",
            "--passphrase-file",
            &p(&pass),
            "-o",
            &p(&sealed),
            &p(&plain),
        ])
        .ok();
        let header = std::fs::read(&sealed).unwrap();
        assert!(contains(&header[..200.min(header.len())], b"-> scrypt "));
        t.run(&[
            "decrypt",
            "--passphrase-file",
            &p(&pass),
            "-o",
            &p(&opened),
            &p(&sealed),
        ])
        .ok();
        assert_eq!(std::fs::read(&opened).unwrap(), data, "size {len}");
    }
    // A wrong passphrase is exit code 3 and writes nothing.
    let wrong = t.write("wrong", b"incorrect horse\n");
    let before = t.files();
    let out = t.path("never");
    t.run(&[
        "decrypt",
        "--passphrase-file",
        &p(&wrong),
        "-o",
        &p(&out),
        &p(&t.path("plain-1.age")),
    ])
    .code(3)
    .err_has(&["wrong passphrase"]);
    assert_eq!(t.files(), before);
}

#[test]
fn interop_with_stock_age_both_ways() {
    let t = Tresor::new();
    let (key, recipient) = keygen(&t, "key.txt");
    let (key2, recipient2) = keygen(&t, "key2.txt");
    let recipients = t.write(
        "recipients.txt",
        format!("# two of us\n{recipient}\n\n{recipient2}\n").as_bytes(),
    );
    for (i, &len) in [0usize, 1, 65535, 65536, 65537, 131072, 200001, 5_000_000]
        .iter()
        .enumerate()
    {
        let data = filler(len, i as u64 + 7);
        let plain = t.write(&format!("plain-{len}"), &data);

        // tresor encrypts (-R file, two recipients), stock age decrypts with either key.
        let sealed = t.path(&format!("tresor-{len}.age"));
        t.run(&[
            "encrypt",
            "-R",
            &p(&recipients),
            "-o",
            &p(&sealed),
            &p(&plain),
        ])
        .ok();
        for k in [&key, &key2] {
            let out = t.path(&format!("age-opened-{len}"));
            stock("age", &[&"-d", &"-i", k, &"-o", &out, &sealed]);
            // Stock age creates no output file for an empty plaintext.
            assert_eq!(std::fs::read(&out).unwrap_or_default(), data, "size {len}");
        }

        // Stock age encrypts, tresor decrypts (several -i, only the second matches).
        let sealed = t.path(&format!("age-{len}.age"));
        stock("age", &[&"-r", &recipient2, &"-o", &sealed, &plain]);
        let out = t.path(&format!("tresor-opened-{len}"));
        t.run(&[
            "decrypt",
            "-i",
            &p(&key),
            "-i",
            &p(&key2),
            "-o",
            &p(&out),
            &p(&sealed),
        ])
        .ok();
        assert_eq!(std::fs::read(&out).unwrap(), data, "size {len}");
    }
}

/// Runs a decryption that must fail with `code`, and checks that neither the
/// output file nor a temporary file appears, and an existing output is kept.
fn fails_cleanly(t: &Tresor, args: &[&str], code: i32, needle: &str) {
    let out = t.path("out");
    let before = t.files();
    let mut full: Vec<&str> = args.to_vec();
    let out_s = p(&out);
    full.extend(["-o", &out_s]);
    t.run(&full).code(code).err_has(&[needle]);
    assert_eq!(t.files(), before, "files changed after {args:?}");
    assert!(!out.exists());
    // An existing output file is left as it was.
    std::fs::write(&out, b"keep me").unwrap();
    t.run(&full).code(code);
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    std::fs::remove_file(&out).unwrap();
    // To stdout: a clear error and a non-zero exit.
    t.run(args).code(code).err_has(&["tresor: error:", needle]);
}

#[test]
fn tampering_and_wrong_keys_fail_and_leave_no_output() {
    let t = Tresor::new();
    let (key, recipient) = keygen(&t, "key.txt");
    let (other, _) = keygen(&t, "other.txt");
    let data = filler(200001, 42);
    let plain = t.write("plain", &data);
    let sealed = t.path("plain.age");
    t.run(&["encrypt", "-r", &recipient, "-o", &p(&sealed), &p(&plain)])
        .ok();
    let bytes = std::fs::read(&sealed).unwrap();
    let key_s = p(&key);

    // One bit flipped in the first payload chunk (past the header).
    let mut flipped = bytes.clone();
    let at = bytes.len() - 200001 / 2;
    flipped[at] ^= 0x10;
    let flipped = t.write("flipped.age", &flipped);
    fails_cleanly(
        &t,
        &["decrypt", "-i", &key_s, &p(&flipped)],
        4,
        "integrity check failed",
    );

    // The last chunk cut short, and the last chunk dropped entirely
    // (200001 = 3 × 65536 + 3393: the last chunk is 3393 + 16 bytes).
    let cut = t.write("cut.age", &bytes[..bytes.len() - 7]);
    fails_cleanly(
        &t,
        &["decrypt", "-i", &key_s, &p(&cut)],
        4,
        "integrity check failed",
    );
    let dropped = t.write("dropped.age", &bytes[..bytes.len() - (3393 + 16)]);
    fails_cleanly(&t, &["decrypt", "-i", &key_s, &p(&dropped)], 4, "truncated");

    // The header MAC replaced by another valid one, and a header that no
    // longer parses.
    let mut header = bytes.clone();
    let mac = bytes.windows(5).position(|w| w == b"\n--- ").unwrap() + 5;
    header[mac] = if header[mac] == b'A' { b'B' } else { b'A' };
    let header = t.write("mac.age", &header);
    fails_cleanly(
        &t,
        &["decrypt", "-i", &key_s, &p(&header)],
        4,
        "MAC does not match",
    );
    let mut garbled = bytes.clone();
    garbled[mac - 6] = b'!';
    let garbled = t.write("garbled.age", &garbled);
    fails_cleanly(
        &t,
        &["decrypt", "-i", &key_s, &p(&garbled)],
        4,
        "the age header is malformed: line",
    );

    // The wrong identity.
    fails_cleanly(
        &t,
        &["decrypt", "-i", &p(&other), &p(&sealed)],
        3,
        "no identity matches",
    );
    // A passphrase for a recipient file.
    let pass = t.write("pass", b"pw\n");
    fails_cleanly(
        &t,
        &["decrypt", "--passphrase-file", &p(&pass), &p(&sealed)],
        3,
        "not a passphrase",
    );
    // Not an age file at all.
    fails_cleanly(
        &t,
        &["decrypt", "-i", &key_s, &p(&plain)],
        2,
        "not an age file",
    );
}

#[test]
fn dev_null_json_summary_and_usage_errors() {
    let t = Tresor::new();
    let (key, recipient) = keygen(&t, "key.txt");
    let data = filler(131072, 9);
    let plain = t.write("plain", &data);
    let sealed = t.path("plain.age");
    let o = t.run(&[
        "--json",
        "encrypt",
        "-r",
        &recipient,
        "-o",
        &p(&sealed),
        &p(&plain),
    ]);
    o.ok();
    let j = o.json();
    assert_eq!(j["operation"], "encrypt");
    assert_eq!(j["bytes_in"], 131072);
    assert_eq!(
        j["bytes_out"].as_u64().unwrap(),
        std::fs::metadata(&sealed).unwrap().len()
    );

    let out = t.path("out");
    let o = t.run(&[
        "--json",
        "decrypt",
        "-i",
        &p(&key),
        "-o",
        &p(&out),
        &p(&sealed),
    ]);
    o.ok();
    assert_eq!(o.json()["bytes_out"], 131072);
    // Plaintext never goes into an existing device (or FIFO): exit 2 and a
    // pointer to stdout; ciphertext may go to /dev/null.
    t.run(&["decrypt", "-i", &p(&key), "-o", "/dev/null", &p(&sealed)])
        .code(2)
        .err_has(&["/dev/null", "it is a device", "leave out the output option"]);
    t.run(&["encrypt", "-r", &recipient, "-o", "/dev/null", &p(&plain)])
        .ok();

    // Without a terminal, --passphrase cannot prompt; it never takes a value.
    t.run(&["encrypt", "--passphrase", &p(&plain)])
        .code(3)
        .err_has(&["--passphrase-file"]);
    t.run(&["encrypt", "--passphrase=hunter2", &p(&plain)])
        .code(2);
    // No recipients, a bad recipient, an identity file that is not one.
    t.run(&["encrypt", &p(&plain)])
        .code(2)
        .err_has(&["no recipients"]);
    t.run(&["encrypt", "-r", "age1nope", &p(&plain)])
        .code(2)
        .err_has(&["invalid age recipient"]);
    t.run(&["decrypt", "-i", &p(&plain), &p(&sealed)]).code(2);
    // A missing input file.
    t.run(&["decrypt", "-i", &p(&key), "missing.age"]).code(6);
}

#[test]
fn stock_age_is_installed() {
    // The interop tests need it; make its absence one obvious failure.
    let out = Command::new("age").arg("--version").output();
    assert!(
        out.is_ok_and(|o| o.status.success()),
        "stock `age` is missing: apt-get install age (scripts/test does as root)"
    );
}

/// Interop at multi-GiB scale: a sparse file of 2 GiB + 12345 bytes (a
/// partial last chunk, markers inside) goes tresor → stock age and stock
/// age → tresor, reading regular files at many offsets and pipes in order.
/// Through pipes and `cmp`, so only one ciphertext touches the disk. About
/// 19 s on this 2-core machine with one other job running (debug build; a
/// third of it is the kernel filling the sparse file's page cache).
#[test]
fn interop_at_two_gib_both_ways() {
    let t = Tresor::new();
    let (key, recipient) = keygen(&t, "key.txt");
    let script = r#"
        set -euo pipefail
        size=$((2 * 1024 * 1024 * 1024 + 12345))
        truncate -s "$size" big
        printf 'start' | dd of=big conv=notrunc status=none
        printf 'middle' | dd of=big bs=1 seek=1073741837 conv=notrunc status=none
        printf 'end' | dd of=big bs=1 seek=$((size - 3)) conv=notrunc status=none
        # tresor reads the regular file at many offsets; stock age decrypts.
        "$TRESOR" encrypt -r "$RECIPIENT" big | age -d -i "$KEY" | cmp - big
        # tresor encrypts from a pipe (ordered reads); stock age decrypts.
        cat big | "$TRESOR" encrypt -r "$RECIPIENT" | age -d -i "$KEY" | cmp - big
        # Stock age encrypts; tresor decrypts the file, then the same through a pipe.
        age -r "$RECIPIENT" -o big.age big
        "$TRESOR" decrypt -i "$KEY" big.age | cmp - big
        cat big.age | "$TRESOR" decrypt -i "$KEY" | cmp - big
        rm big big.age
    "#;
    let started = std::time::Instant::now();
    let out = clean_command("bash")
        .args(["-c", script])
        .current_dir(t.dir.path())
        .env("TRESOR", BIN)
        .env("RECIPIENT", &recipient)
        .env("KEY", &key)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("2 GiB interop: {:?}", started.elapsed());
}

/// Reordered chunks (two whole sealed chunks swapped) fail like a flipped
/// bit, and a file redirected on stdin is read like a named one.
#[test]
fn reordered_chunks_fail_and_stdin_redirects_work() {
    let t = Tresor::new();
    let (key, recipient) = keygen(&t, "key.txt");
    let data = filler(3 * 65536 + 100, 5);
    let plain = t.write("plain", &data);
    let sealed = t.path("plain.age");
    t.run(&["encrypt", "-r", &recipient, "-o", &p(&sealed), &p(&plain)])
        .ok();
    let bytes = std::fs::read(&sealed).unwrap();
    let payload = bytes.len() - (3 * (65536 + 16) + 100 + 16);
    let mut swapped = bytes.clone();
    let (a, b) = swapped[payload..].split_at_mut(65536 + 16);
    a.swap_with_slice(&mut b[..65536 + 16]);
    let swapped = t.write("swapped.age", &swapped);
    fails_cleanly(
        &t,
        &["decrypt", "-i", &p(&key), &p(&swapped)],
        4,
        "failed authentication at chunk 0",
    );
    // stdin redirected from a regular file, its position not at 0 (five
    // bytes before the age file, consumed by dd first).
    let shifted = t.write("shifted", &[b"JUNK!".as_slice(), &bytes].concat());
    let script = r#"set -euo pipefail
        { dd bs=5 count=1 status=none >/dev/null; "$TRESOR" decrypt -i "$KEY"; } < "$SEALED" > out
        cmp out "$PLAIN"
        { dd bs=5 count=1 status=none >/dev/null; "$TRESOR" encrypt -r "$RECIPIENT"; } < "$SEALED" \
            | age -d -i "$KEY" | cmp - <(tail -c +6 "$SEALED")"#;
    let out = clean_command("bash")
        .args(["-c", script])
        .current_dir(t.dir.path())
        .env("TRESOR", BIN)
        .env("KEY", &key)
        .env("SEALED", &shifted)
        .env("PLAIN", &plain)
        .env("RECIPIENT", &recipient)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Age keys kept in the vault: `key create --type age`, `key recipient`,
/// `encrypt --key` / `decrypt --key` across rotation and the minimum
/// decryption version, interop with stock age, refusals of envelope
/// commands, audit entries, and the identity never printed.
#[test]
fn age_keys_in_the_vault() {
    let t = Tresor::with_key();
    let info = t
        .run(&["--json", "key", "create", "app/files", "--type", "age"])
        .ok()
        .json();
    assert_eq!(info["type"], "age");
    assert!(t.run(&["key", "list"]).ok().out().contains(" age "));
    let r1 = t.run(&["key", "recipient", "app/files"]).ok().out();
    let r1 = r1.trim().to_string();
    assert!(r1.starts_with("age1") && r1.len() == 62, "{r1}");
    let j = t
        .run(&["--json", "key", "recipient", "app/files"])
        .ok()
        .json();
    assert_eq!(j["recipient"], r1.as_str());
    assert_eq!(j["version"], 1);

    let data = filler(200001, 3);
    let plain = t.write("plain", &data);
    let v1 = t.path("v1.age");
    t.run(&["encrypt", "--key", "app/files", "-o", &p(&v1), &p(&plain)])
        .ok();
    // Stock age encrypts to the printed recipient; tresor opens both.
    let by_age = t.path("by-age.age");
    stock("age", &[&"-r", &r1, &"-o", &by_age, &plain]);
    for f in [&v1, &by_age] {
        let o = t.run(&["decrypt", "--key", "app/files", &p(f)]);
        assert!(o.ok().stdout == data);
    }

    // Rotation: a new recipient for new files; old files still open.
    t.run(&["key", "rotate", "app/files"]).ok();
    let r2 = t.run(&["key", "recipient", "app/files"]).ok().out();
    assert_ne!(r2.trim(), r1);
    let v2 = t.path("v2.age");
    t.run(&["encrypt", "--key", "app/files", "-o", &p(&v2), &p(&plain)])
        .ok();
    let (other_key, other) = keygen(&t, "other.txt");
    // --key combines with -r and with -i.
    let both = t.path("both.age");
    t.run(&[
        "encrypt",
        "--key",
        "app/files",
        "-r",
        &other,
        "-o",
        &p(&both),
        &p(&plain),
    ])
    .ok();
    stock(
        "age",
        &[&"-d", &"-i", &other_key, &"-o", &t.path("x"), &both],
    );
    for f in [&v1, &v2, &both] {
        let o = t.run(&["decrypt", "-i", &p(&other_key), "--key", "app/files", &p(f)]);
        assert!(o.ok().stdout == data);
    }

    // The minimum decryption version shuts version 1 out, cleanly.
    t.run(&[
        "key",
        "config",
        "app/files",
        "--min-decryption-version",
        "2",
    ])
    .ok();
    fails_cleanly(
        &t,
        &["decrypt", "--key", "app/files", &p(&v1)],
        3,
        "no identity matches",
    );
    assert!(
        t.run(&["decrypt", "--key", "app/files", &p(&v2)])
            .ok()
            .stdout
            == data
    );

    // Envelope commands refuse age keys; file commands refuse other keys.
    t.run(&["key", "create", "app/env"]).ok();
    t.run_in(&["key", "encrypt", "app/files"], b"x")
        .code(2)
        .err_has(&["encrypt --key app/files"]);
    for cmd in ["decrypt", "rewrap"] {
        t.run_in(
            &["key", cmd],
            b"tresor:v1:app/files:2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .code(2)
        .err_has(&["not envelopes"]);
    }
    t.run(&["encrypt", "--key", "app/env", &p(&plain)])
        .code(2)
        .err_has(&["needs an age key", "--type age"]);
    t.run(&["key", "recipient", "app/env"]).code(2);
    t.run(&["decrypt", "--key", "app/nope", &p(&v2)])
        .code(1)
        .err_has(&["not found"]);
    t.run(&[
        "encrypt",
        "--key",
        "app/files",
        "--passphrase-file",
        "x",
        &p(&plain),
    ])
    .code(2);

    // Audited like other named keys: uses with their versions and outcome.
    let audit = t.audit();
    let uses: Vec<(String, serde_json::Value, String)> = audit
        .iter()
        .filter(|e| e["name"] == "app/files")
        .map(|e| {
            (
                e["operation"].as_str().unwrap().to_string(),
                e["versions"].clone(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let has = |op: &str, versions: serde_json::Value, result: &str| {
        assert!(
            uses.contains(&(op.to_string(), versions.clone(), result.to_string())),
            "no {op} {versions} {result} in {uses:?}"
        );
    };
    has("key create", serde_json::json!([1]), "ok");
    has("key recipient", serde_json::json!([1]), "ok");
    has("key encrypt file", serde_json::json!([1]), "ok");
    has("key decrypt file", serde_json::json!([1]), "ok");
    has("key encrypt file", serde_json::json!([2]), "ok");
    has("key decrypt file", serde_json::json!([2]), "ok");
    has("key decrypt file", serde_json::json!([]), "auth");
    has("key encrypt", serde_json::json!([]), "wrong_key_type");

    // Deleted: nothing opens any more.
    t.run(&["key", "delete", "app/files", "--yes-destroy-data"])
        .ok();
    t.run(&["decrypt", "--key", "app/files", &p(&v2)]).code(1);

    // The identity itself never appears in any output.
    for o in t.log.borrow().iter() {
        assert!(!contains(&o.stdout, b"AGE-SECRET-KEY"), "{:?}", o.args);
        assert!(!contains(&o.stderr, b"AGE-SECRET-KEY"), "{:?}", o.args);
    }
}

/// An output that fails (a full disk, stdout or `-o`, and a reader that
/// goes away) ends with a clear error and a non-zero exit, from whichever
/// worker hit it.
#[test]
fn failing_outputs_exit_non_zero() {
    let t = Tresor::new();
    let (key, recipient) = keygen(&t, "key.txt");
    let data = filler(3 * 1024 * 1024 + 5, 11);
    let plain = t.write("plain", &data);
    let sealed = t.path("plain.age");
    t.run(&["encrypt", "-r", &recipient, "-o", &p(&sealed), &p(&plain)])
        .ok();
    let script = r#"
        set -u
        "$TRESOR" encrypt -r "$RECIPIENT" plain > /dev/full; echo "encrypt stdout $?"
        "$TRESOR" decrypt -i "$KEY" plain.age > /dev/full; echo "decrypt stdout $?"
        ( trap '' XFSZ; ulimit -f 1024; "$TRESOR" decrypt -i "$KEY" -o big.out plain.age )
        echo "decrypt -o $?"
        "$TRESOR" decrypt -i "$KEY" plain.age | head -c 10 > /dev/null
        echo "decrypt pipe ${PIPESTATUS[0]}"
    "#;
    let out = clean_command("bash")
        .args(["-c", script])
        .current_dir(t.dir.path())
        .env("TRESOR", BIN)
        .env("RECIPIENT", &recipient)
        .env("KEY", &key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [
        "encrypt stdout 6",
        "decrypt stdout 6",
        "decrypt -o 6",
        "decrypt pipe 6",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}\n{stderr}");
    }
    assert_eq!(stderr.matches("tresor: error:").count(), 4, "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    // The -o run hit the file size limit (EFBIG): nothing is left of it.
    assert!(stderr.contains("File too large"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(t.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tresor-tmp") || n == "big.out")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Hostile age headers (many megabytes of empty stanzas, one endless line,
/// thousands of stanzas with 63-column bodies) are refused after reading at
/// most 1 MiB, in well under a second; stock `age` refuses them too. Before
/// the fix, 60 KB of empty stanzas kept `tresor decrypt` busy 70 seconds
/// (debug build), 8 MiB would have taken days.
#[test]
fn hostile_headers_are_refused_quickly_as_stock_age_does() {
    let t = Tresor::new();
    let (key, _) = keygen(&t, "key.txt");
    let magic = b"age-encryption.org/v1\n".as_slice();
    let mib = 1 << 20;
    let repeat = |unit: &[u8], len: usize| -> Vec<u8> {
        let mut v = magic.to_vec();
        while v.len() < len {
            v.extend_from_slice(unit);
        }
        v
    };
    let long_line = {
        let mut v = magic.to_vec();
        v.extend(b"-> X ");
        v.resize(8 * mib, b'a');
        v
    };
    let body63 = [&b"-> X\n"[..], &[b'A'; 63], b"\n"].concat();
    let cases = [
        (
            "empty-stanzas.age",
            repeat(b"-> X\n\n", 8 * mib),
            "recipient stanzas",
        ),
        ("long-line.age", long_line, "longer than 1048576 bytes"),
        ("body63.age", repeat(&body63, 8 * mib), "recipient stanzas"),
    ];
    for (name, bytes, needle) in cases {
        let file = t.write(name, &bytes);
        let out = t.path("out");
        let started = std::time::Instant::now();
        t.run(&["decrypt", "-i", &p(&key), "-o", &p(&out), &p(&file)])
            .code(4)
            .err_has(&[name, "the age header is refused", needle]);
        let took = started.elapsed();
        // Generous for a loaded machine; it takes milliseconds.
        assert!(took < std::time::Duration::from_secs(5), "{name}: {took:?}");
        assert!(!out.exists());
        let age = clean_command("age")
            .args(["-d", "-i"])
            .arg(&key)
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("stock age (Debian package `age`)");
        assert!(!age.status.success(), "stock age accepted {name}");
    }
}
