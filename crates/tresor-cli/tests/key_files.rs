//! What tresor accepts as a key: a key file must be a regular file owned by
//! the user that group and others cannot access (checked on the opened
//! file), and a key file's text or `TRESOR_KEY` must be the documented
//! format, the base64 of 32 random bytes (optionally a newline). A password
//! belongs in `TRESOR_PASSWORD`, where Argon2id stretches it; anything else
//! is a usage error (exit 2) that says so and never echoes the text.

mod common;

use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::time::{Duration, Instant};

use common::Tresor;

const PASSPHRASE: &str = "correct-horse-battery-staple-and-a-bit!!";

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A 40-character passphrase is not a key: refused as a key file and as
/// TRESOR_KEY (exit 2), pointing at TRESOR_PASSWORD; before, any text of 32
/// bytes or more was taken as key material. Nothing is created with it.
#[test]
fn a_passphrase_is_not_a_key() {
    assert_eq!(PASSPHRASE.len(), 40);
    let t = Tresor::new();
    let file = t.write_key("phrase.key", format!("{PASSPHRASE}\n").as_bytes());
    let refused = t
        .cmd(&[
            "--key-file",
            file.to_str().unwrap(),
            "init",
            "--no-recovery",
        ])
        .run();
    refused.code(2).err_has(&[
        "phrase.key",
        "base64 of 32 random bytes",
        "TRESOR_PASSWORD",
        "Argon2id",
    ]);
    assert!(!refused.err().contains(PASSPHRASE));
    assert!(
        !t.vault.exists(),
        "a vault was made with a passphrase as key"
    );

    let refused = t
        .cmd(&["init", "--no-recovery"])
        .env("TRESOR_KEY", PASSPHRASE)
        .run();
    refused
        .code(2)
        .err_has(&["TRESOR_KEY", "TRESOR_PASSWORD", "Argon2id"]);
    assert!(!refused.err().contains(PASSPHRASE));
    assert!(!t.vault.exists());

    // On an existing vault, the same answer when unlocking.
    let mut t = Tresor::with_key();
    t.cmd(&["set", "a/b"]).stdin(b"v").run().ok();
    let file = t.write_key("phrase.key", PASSPHRASE.as_bytes());
    // The library says what is wrong; the CLI's hint says how to make a
    // key file.
    t.cmd(&["get", "a/b"])
        .env("TRESOR_KEY_FILE", &file)
        .run()
        .code(2)
        .err_has(&[
            "TRESOR_PASSWORD",
            "hint:",
            "tresor keyslot add --key-file FILE",
        ]);
    t.clear_default("TRESOR_KEY_FILE");
    t.cmd(&["get", "a/b"])
        .env("TRESOR_KEY", PASSPHRASE)
        .run()
        .code(2)
        .err_has(&["TRESOR_KEY", "TRESOR_PASSWORD"]);
    // Base64 of more than 32 bytes is not the format either.
    let long = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2";
    t.cmd(&["get", "a/b"])
        .env("TRESOR_KEY", long)
        .run()
        .code(2)
        .err_has(&["base64 of 32 random bytes"]);
}

/// Key files tresor made keep working: the one `init` wrote, one
/// `keyslot add --key-file` wrote, and their text in TRESOR_KEY with or
/// without its newline.
#[test]
fn key_files_tresor_writes_still_unlock() {
    let mut t = Tresor::with_key();
    t.cmd(&["set", "a/b"]).stdin(b"v1").run().ok();
    assert_eq!(t.run(&["get", "a/b"]).ok().out(), "v1");
    let text = std::fs::read_to_string(&t.key).unwrap();
    assert_eq!(text.len(), 45);
    assert!(text.ends_with('\n'));

    let second = t.path("second.key");
    t.run(&["--key-file", second.to_str().unwrap(), "keyslot", "add"])
        .ok();
    t.cmd(&["get", "a/b"])
        .env("TRESOR_KEY_FILE", &second)
        .run()
        .ok();

    t.clear_default("TRESOR_KEY_FILE");
    for value in [text.as_str(), text.trim_end()] {
        let o = t.cmd(&["get", "a/b"]).env("TRESOR_KEY", value).run();
        assert_eq!(o.ok().out(), "v1");
    }
}

/// A key file others can read (or write) is refused with its mode and the
/// fix; before, a world-readable file was taken as key material.
#[test]
fn a_key_file_others_can_read_is_refused() {
    let mut t = Tresor::with_key();
    t.cmd(&["set", "a/b"]).stdin(b"v").run().ok();
    let key = t.key.clone();
    for mode in [0o644, 0o640, 0o604, 0o620] {
        chmod(&key, mode);
        let o = t.run(&["get", "a/b"]);
        o.code(2).err_has(&[
            key.to_str().unwrap(),
            &format!("mode {mode:04o}"),
            "chmod 600",
        ]);
        assert!(o.stdout.is_empty());
    }
    chmod(&key, 0o600);
    t.run(&["get", "a/b"]).ok();
    chmod(&key, 0o400);
    t.run(&["get", "a/b"]).ok();
    // Through --key-file too.
    chmod(&key, 0o644);
    t.clear_default("TRESOR_KEY_FILE");
    t.run(&["--key-file", key.to_str().unwrap(), "get", "a/b"])
        .code(2)
        .err_has(&["chmod 600"]);
}

/// A key file owned by someone else is refused even when it holds the
/// right key: its owner chose it. (As root, the test hands the file to
/// uid 65534; otherwise a root-owned file stands in, refused before its
/// content matters.)
#[test]
fn a_key_file_owned_by_someone_else_is_refused() {
    let t = Tresor::with_key();
    t.cmd(&["set", "a/b"]).stdin(b"v").run().ok();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let foreign = if root {
        let copy = t.write_key("foreign.key", &std::fs::read(&t.key).unwrap());
        let c = std::ffi::CString::new(copy.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
        copy
    } else {
        std::path::PathBuf::from("/etc/hostname")
    };
    let o = t
        .cmd(&["get", "a/b"])
        .env("TRESOR_KEY_FILE", &foreign)
        .run();
    o.code(2)
        .err_has(&[foreign.to_str().unwrap(), "owned by uid", "not by you"]);
    assert!(o.stdout.is_empty());
}

/// A FIFO (or any non-regular file) at the key-file path is refused at
/// once, never read or waited on.
#[test]
fn a_fifo_is_not_a_key_file() {
    let t = Tresor::with_key();
    let fifo = t.path("key.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Should tresor wait on the FIFO (as it once did), a writer shows up
    // after 10 s with a key of its choosing, so the test ends either way.
    let watchdog = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(10));
            // Non-blocking: fails at once (ENXIO) when nobody reads it.
            if let Ok(mut w) = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
            {
                let _ = std::io::Write::write_all(&mut w, tresor::new_key_file_text().as_bytes());
            }
        })
    };
    let start = Instant::now();
    t.cmd(&["ls"])
        .env("TRESOR_KEY_FILE", &fifo)
        .run()
        .code(2)
        .err_has(&["key.fifo", "not a regular file"]);
    assert!(start.elapsed() < Duration::from_secs(10));
    watchdog.join().unwrap();
    t.cmd(&["ls"])
        .env("TRESOR_KEY_FILE", "/dev/null")
        .run()
        .code(2)
        .err_has(&["not a regular file"]);
}
