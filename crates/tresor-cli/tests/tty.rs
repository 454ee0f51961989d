//! Prompts on a real terminal: the binary runs on a fresh pseudo-terminal
//! (its controlling terminal and stdio) that `common/pty_driver.py` drives,
//! typing only once the terminal's echo is off. Covers the password prompts
//! of `init` and of unlocking, the hidden value prompt of `set` (asked
//! twice), `check --fix` asking for a missing declared secret, mismatched
//! entries, a wrong password, and passphrase-encrypted
//! age files exchanged both ways with stock `age`, whose passphrase prompt
//! also only reads a terminal. Needs `python3` and `age` (scripts/test
//! installs both); these tests fail, never skip, without them.

mod common;

use std::path::Path;

use common::*;

use common::pty::{Expect, Send, TtyRun, on_tty};

/// `tresor init` on a terminal with a (cheap) password typed twice.
fn init_on_tty(t: &Tresor, password: &str) -> TtyRun {
    let line = format!("{password}\n");
    let mut argv = vec![BIN, "init", "--no-keychain"];
    argv.extend(FAST_KDF);
    on_tty(
        t,
        &argv,
        &[],
        &[
            Expect("New vault password: "),
            Send(&line),
            Expect("Repeat the vault password: "),
            Send(&line),
            Expect("Recovery key"),
        ],
    )
}

#[test]
fn init_and_set_prompt_with_hidden_input_and_the_value_reads_back() {
    let t = Tresor::new();
    let password = "tty-Password-7f3c";
    let value = "tty-Value-91be4d";
    let init = init_on_tty(&t, password);
    assert_eq!(init.exit, 0, "init: {}", init.text());
    assert!(t.vault.is_file());

    let pw_line = format!("{password}\n");
    let value_line = format!("{value}\n");
    let set = on_tty(
        &t,
        &[BIN, "set", "tty/secret"],
        &[],
        &[
            // The value is asked first, then the vault is unlocked.
            Expect("Value for tty/secret: "),
            Send(&value_line),
            Expect("Again: "),
            Send(&value_line),
            Expect("Password for "),
            Send(&pw_line),
        ],
    );
    assert_eq!(set.exit, 0, "set: {}", set.text());
    // Hidden input: neither the password nor the value was echoed.
    for run in [&init, &set] {
        assert!(
            !contains(&run.transcript, password.as_bytes()),
            "{}",
            run.text()
        );
        assert!(
            !contains(&run.transcript, value.as_bytes()),
            "{}",
            run.text()
        );
    }
    // The stored value is exactly what was typed (no newline), read back
    // without a terminal.
    let got = t
        .cmd(&["get", "tty/secret"])
        .env("TRESOR_PASSWORD", password)
        .run();
    got.ok();
    assert_eq!(got.stdout, value.as_bytes());
}

#[test]
fn mismatched_entries_and_a_wrong_password_change_nothing() {
    let t = Tresor::new();
    let password = "tty-Password-a11d";
    assert_eq!(init_on_tty(&t, password).exit, 0);

    // The two value entries differ: exit 2, nothing stored.
    let set = on_tty(
        &t,
        &[BIN, "set", "tty/mismatch"],
        &[],
        &[
            Expect("Value for tty/mismatch: "),
            Send("first-entry\n"),
            Expect("Again: "),
            Send("second-entry\n"),
            Expect("differ"),
        ],
    );
    assert_eq!(set.exit, 2, "{}", set.text());
    t.cmd(&["get", "tty/mismatch"])
        .env("TRESOR_PASSWORD", password)
        .run()
        .code(1);

    // A wrong password at the unlock prompt: exit 3, the vault unchanged.
    let before = std::fs::read(&t.vault).unwrap();
    let wrong = on_tty(
        &t,
        &[BIN, "get", "tty/mismatch"],
        &[],
        &[Expect("Password for "), Send("not-the-password\n")],
    );
    assert_eq!(wrong.exit, 3, "{}", wrong.text());
    assert_eq!(std::fs::read(&t.vault).unwrap(), before);

    // Two different new passwords at init: exit 2, no vault made.
    let fresh = Tresor::new();
    let mut argv = vec![BIN, "init", "--no-keychain", "--weak-password"];
    argv.extend(FAST_KDF);
    let init = on_tty(
        &fresh,
        &argv,
        &[],
        &[
            Expect("New vault password: "),
            Send("one-password\n"),
            Expect("Repeat the vault password: "),
            Send("another-password\n"),
            Expect("differ"),
        ],
    );
    assert_eq!(init.exit, 2, "{}", init.text());
    assert!(
        !fresh.vault.exists(),
        "a vault was made from mismatched passwords"
    );
}

#[test]
fn check_fix_asks_for_a_missing_declared_secret_with_hidden_input() {
    let t = Tresor::with_key();
    t.write(
        "tresor.toml",
        b"[secrets]\n\
          DB_PASSWORD = { name = \"db/password\", description = \"the database's\" }\n\
          SESSION_KEY = { name = \"app/session\", generate = { length = 32 } }\n",
    );
    t.run(&["config", "trust"]).ok();
    let key = t.key.display().to_string();
    let value = "typed-Db-Value-5e1f";
    let line = format!("{value}\n");
    let run = on_tty(
        &t,
        &[BIN, "check", "--fix"],
        &[("TRESOR_KEY_FILE", &key)],
        &[
            Expect("Value for DB_PASSWORD [db/password] (the database's): "),
            Send(&line),
            Expect("Again: "),
            Send(&line),
            Expect("DB_PASSWORD: entered and stored as 'db/password'"),
        ],
    );
    assert_eq!(run.exit, 0, "{}", run.text());
    let text = run.text();
    // The generated one was not asked for; both are fixed in the table.
    assert!(text.contains("SESSION_KEY: generated"), "{text}");
    assert_eq!(text.matches("Value for ").count(), 1, "{text}");
    assert_eq!(text.matches("fixed").count(), 2, "{text}");
    // Hidden input: the typed value never reached the screen.
    assert!(!contains(&run.transcript, value.as_bytes()), "{text}");
    // Stored exactly as typed, without the newline; the check now passes.
    let got = t.run(&["get", "db/password"]);
    got.ok();
    assert_eq!(got.stdout, value.as_bytes());
    t.run(&["check"]).ok();

    // Two different entries: exit 2, nothing stored.
    let t = Tresor::with_key();
    t.write(
        "tresor.toml",
        b"[secrets]\nDB_PASSWORD = { name = \"db/password\" }\n",
    );
    t.run(&["config", "trust"]).ok();
    let key = t.key.display().to_string();
    let run = on_tty(
        &t,
        &[BIN, "check", "--fix"],
        &[("TRESOR_KEY_FILE", &key)],
        &[
            Expect("Value for DB_PASSWORD [db/password]: "),
            Send("first-entry-1\n"),
            Expect("Again: "),
            Send("other-entry-2\n"),
            Expect("differ"),
        ],
    );
    assert_eq!(run.exit, 2, "{}", run.text());
    t.run(&["get", "db/password"]).code(1);
}

/// A path inside `t`'s folder, as the text an argument list takes.
fn path_of(t: &Tresor, rel: &str) -> String {
    t.path(rel).display().to_string()
}

fn which_age() -> &'static str {
    for p in ["/usr/bin/age", "/usr/local/bin/age"] {
        if Path::new(p).is_file() {
            return p;
        }
    }
    panic!("stock `age` is not installed: apt-get install age (scripts/test does as root)");
}

#[test]
fn passphrase_files_interoperate_with_stock_age_both_ways() {
    let t = Tresor::new();
    let age = which_age();
    let passphrase = "tty-Passphrase-correct-horse-5d1";
    let line = format!("{passphrase}\n");
    let plain = filler(200_001, 7);
    let input = t.write("plain.bin", &plain).display().to_string();

    // Stock age encrypts to a passphrase (asked twice on the terminal);
    // tresor decrypts it at its own prompt (-p, as in age).
    let by_age = path_of(&t, "by-age.age");
    let enc = on_tty(
        &t,
        &[age, "-p", "-o", &by_age, &input],
        &[],
        &[
            Expect("passphrase"),
            Send(&line),
            Expect("onfirm"),
            Send(&line),
        ],
    );
    assert_eq!(enc.exit, 0, "age -p: {}", enc.text());
    let out1 = path_of(&t, "from-age.bin");
    let dec = on_tty(
        &t,
        &[BIN, "decrypt", "-p", "-o", &out1, &by_age],
        &[],
        &[Expect("Passphrase: "), Send(&line)],
    );
    assert_eq!(dec.exit, 0, "tresor decrypt -p: {}", dec.text());
    assert!(
        std::fs::read(&out1).unwrap() == plain,
        "tresor decrypted age's file wrong"
    );

    // Without -p, a passphrase file is recognised and the passphrase asked.
    let out1b = path_of(&t, "from-age-auto.bin");
    let dec = on_tty(
        &t,
        &[BIN, "decrypt", "-o", &out1b, &by_age],
        &[],
        &[Expect("Passphrase: "), Send(&line)],
    );
    assert_eq!(dec.exit, 0, "tresor decrypt (auto): {}", dec.text());
    assert!(std::fs::read(&out1b).unwrap() == plain);

    // tresor encrypts to a passphrase at its prompt; stock age decrypts.
    let by_tresor = path_of(&t, "by-tresor.age");
    let enc = on_tty(
        &t,
        &[BIN, "encrypt", "--passphrase", "-o", &by_tresor, &input],
        &[],
        &[
            Expect("Passphrase: "),
            Send(&line),
            Expect("Repeat the passphrase: "),
            Send(&line),
        ],
    );
    assert_eq!(enc.exit, 0, "tresor encrypt --passphrase: {}", enc.text());
    let out2 = path_of(&t, "from-tresor.bin");
    let dec = on_tty(
        &t,
        &[age, "-d", "-o", &out2, &by_tresor],
        &[],
        &[Expect("passphrase"), Send(&line)],
    );
    assert_eq!(dec.exit, 0, "age -d: {}", dec.text());
    assert!(
        std::fs::read(&out2).unwrap() == plain,
        "age decrypted tresor's file wrong"
    );

    // A wrong passphrase at tresor's prompt: exit 3, no output file.
    let out3 = path_of(&t, "wrong.bin");
    let wrong = on_tty(
        &t,
        &[BIN, "decrypt", "-p", "-o", &out3, &by_age],
        &[],
        &[Expect("Passphrase: "), Send("not-it\n")],
    );
    assert_eq!(wrong.exit, 3, "{}", wrong.text());
    assert!(
        !Path::new(&out3).exists(),
        "a wrong passphrase left an output file"
    );
    for run in [&enc, &dec] {
        assert!(
            !contains(&run.transcript, passphrase.as_bytes()),
            "{}",
            run.text()
        );
    }
}

/// A weak password typed at `init` is refused after the first entry (not
/// asked twice), saying why and naming --weak-password, and no vault is
/// made; with --weak-password the same password is taken.
#[test]
fn a_weak_password_on_the_prompt_is_refused_unless_allowed() {
    let t = Tresor::new();
    let mut argv = vec![BIN, "init", "--no-keychain"];
    argv.extend(FAST_KDF);
    let run = on_tty(
        &t,
        &argv,
        &[],
        &[
            Expect("New vault password: "),
            Send("sunshine1\n"),
            Expect("--weak-password"),
        ],
    );
    assert_eq!(run.exit, 2, "{}", run.text());
    let text = run.text();
    assert!(text.contains("too weak"), "{text}");
    assert!(
        !text.contains("Repeat"),
        "asked twice for a weak password: {text}"
    );
    assert!(
        !text.contains("sunshine1"),
        "the password was echoed: {text}"
    );
    assert!(!t.vault.exists(), "a vault was made with a weak password");

    argv.push("--weak-password");
    let run = on_tty(
        &t,
        &argv,
        &[],
        &[
            Expect("New vault password: "),
            Send("sunshine1\n"),
            Expect("Repeat the vault password: "),
            Send("sunshine1\n"),
            Expect("Recovery key"),
        ],
    );
    assert_eq!(run.exit, 0, "{}", run.text());
    assert!(t.vault.is_file());
}

/// Long work shows a progress bar on a terminal's stderr, and nothing with
/// --quiet or --json, or when stderr is a pipe. The work: a 4 GiB file
/// (sparse, so cheap to make and read) encrypted to /dev/null; the bar
/// shows once work has run for 0.3 s, which this takes even on an idle
/// machine (256 MiB took only ~0.1 s there, and showed no bar).
#[test]
fn long_work_shows_a_progress_bar_on_a_terminal_only() {
    let t = Tresor::with_key();
    t.run(&["key", "create", "f/age", "--type", "age"]).ok();
    let recipient = t.run(&["key", "recipient", "f/age"]).ok().out();
    let recipient = recipient.trim();
    let big = t.path("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let big = big.to_str().unwrap();
    let argv = [BIN, "encrypt", "-r", recipient, "-o", "/dev/null", big];
    let run = on_tty(&t, &argv, &[("TERM", "xterm")], &[Expect("encrypted")]);
    assert_eq!(run.exit, 0, "{}", run.text());
    let text = run.text();
    assert!(
        text.contains("encrypting [") && text.contains("MiB"),
        "no progress bar on the terminal: {text}"
    );
    // --quiet and --json: no bar, even on a terminal.
    for flag in ["--quiet", "--json"] {
        let mut argv = argv.to_vec();
        argv.insert(1, flag);
        let run = on_tty(&t, &argv, &[("TERM", "xterm")], &[]);
        assert_eq!(run.exit, 0, "{flag}: {}", run.text());
        assert!(
            !run.text().contains("encrypting ["),
            "{flag}: {}",
            run.text()
        );
    }
    // stderr on a pipe: no bar.
    let o = t.run(&argv[1..]);
    o.ok();
    assert!(!o.err().contains("encrypting ["), "{}", o.err());
    // Nor for the vault's long work.
    for args in [
        &["rekey", "--reencrypt"][..],
        &["verify"],
        &["rekey", "--master"],
    ] {
        let o = t.run(args);
        o.ok();
        assert!(!o.err().contains("records, "), "{args:?}: {}", o.err());
    }
}
