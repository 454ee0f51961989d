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

/// Sizes around age's 64 KiB chunks, and one large file.
const SIZES: [usize; 6] = [0, 1, 65536, 131072, 200001, 5_000_000];

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
    for (i, &len) in [0usize, 1, 65536, 200001, 5_000_000].iter().enumerate() {
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
        "header is damaged",
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

    let o = t.run(&[
        "--json",
        "decrypt",
        "-i",
        &p(&key),
        "-o",
        "/dev/null",
        &p(&sealed),
    ]);
    o.ok();
    assert_eq!(o.json()["bytes_out"], 131072);
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
