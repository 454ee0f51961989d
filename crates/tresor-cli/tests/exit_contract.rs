//! The exit-code contract, as one table: every command against each failure
//! class it can meet, checked for its exit code (0 ok, 1 not found, 2 usage,
//! 3 locked or wrong key, 4 integrity, 5 conflict, 6 unavailable), for a
//! stderr that names the cause, and, run again with `--json`, for one JSON
//! error object on stderr carrying the same `exit_code`. No run may panic
//! (the runner checks every one), a closed stdout included.
//!
//! To add a command: add its rows to [`table`] (at least `Ok` and
//! `BadFlag`, and every class it can meet); [`every_command_has_rows`]
//! fails until a command listed by `tresor --help` has them. Arguments,
//! variables and stdin may name fixture paths and texts with `@` words
//! (see [`Fixture::expand`]).

mod common;

use std::process::Stdio;

use common::*;

/// The failure classes of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// The command works (run once, in text mode only: it may change the
    /// vault).
    Ok,
    /// A secret, version, slot or key that does not exist.
    MissingName,
    /// An unknown flag or a bad argument.
    BadFlag,
    /// A credential that opens nothing (a key file of another vault).
    WrongCredential,
    /// A vault file, age file or envelope that was tampered with.
    Tampered,
    /// A check-and-set write that finds another version.
    Conflict,
    /// The vault or an input file cannot be used (a folder, a missing file).
    Unavailable,
    /// stdout is a pipe whose reader has gone: data is an error (6),
    /// listings are not (0).
    ClosedStdout,
}
use Class::*;

/// One case: `tresor ARGS` with `env` and `stdin` exits with `code`, and
/// stderr contains each of `names`.
struct Row {
    /// The command as `tresor --help` lists it (`key create`, `get`).
    command: &'static str,
    class: Class,
    args: Vec<&'static str>,
    env: Vec<(&'static str, &'static str)>,
    stdin: Option<&'static str>,
    code: i32,
    names: Vec<&'static str>,
    /// Also run with `--json` (off for rows that give it themselves).
    json: bool,
}

fn row(command: &'static str, class: Class, args: &[&'static str], code: i32) -> Row {
    Row {
        command,
        class,
        args: args.to_vec(),
        env: Vec::new(),
        stdin: None,
        code,
        names: Vec::new(),
        json: true,
    }
}

impl Row {
    fn env(mut self, key: &'static str, value: &'static str) -> Self {
        self.env.push((key, value));
        self
    }

    fn stdin(mut self, text: &'static str) -> Self {
        self.stdin = Some(text);
        self
    }

    fn names(mut self, names: &[&'static str]) -> Self {
        self.names.extend_from_slice(names);
        self
    }

    fn text_only(mut self) -> Self {
        self.json = false;
        self
    }
}

/// The strong password the table's password slots get.
const STRONG: &str = "violet-anchor-harvest-meadow-31";

/// Rows every command that opens the vault shares: a bad flag, a key file
/// of another vault, a vault file that is garbage, a vault path that is a
/// folder.
fn vault_rows(
    command: &'static str,
    args: &[&'static str],
    stdin: Option<&'static str>,
) -> Vec<Row> {
    let with = |r: Row| match stdin {
        Some(s) => r.stdin(s),
        None => r,
    };
    let mut bad = args.to_vec();
    bad.push("--bogus-flag");
    vec![
        with(row(command, BadFlag, &bad, 2).names(&["--bogus-flag"])),
        with(
            row(command, WrongCredential, args, 3)
                .env("TRESOR_KEY_FILE", "@other-key")
                .names(&["wrong key"]),
        ),
        with(
            row(command, Tampered, args, 4)
                .env("TRESOR_VAULT", "@garbage")
                .names(&["integrity check failed", "not a tresor vault"]),
        ),
        with(
            row(command, Unavailable, args, 6)
                .env("TRESOR_VAULT", "@folder")
                .names(&["is a directory"]),
        ),
    ]
}

/// The contract, command by command. Order matters only for rows that
/// change the vault (an `Ok` row may prepare a later one).
// One push per row reads as the table it is, and extends by a line.
#[allow(clippy::vec_init_then_push)]
fn table() -> Vec<Row> {
    let mut t = Vec::new();

    // init: no vault to open, so its classes are its own.
    t.push(
        row("init", Ok, &["init", "--no-keychain", "--no-recovery"], 0)
            .env("TRESOR_VAULT", "@new:init-ok/vault.db")
            .env("TRESOR_KEY_FILE", "@new:init-ok.key"),
    );
    t.push(row("init", BadFlag, &["init", "--bogus-flag"], 2).names(&["--bogus-flag"]));
    t.push(row("init", BadFlag, &["init", "--no-keychain"], 2).names(&["a vault already exists"]));
    t.push(
        row("init", Unavailable, &["init", "--no-keychain"], 6)
            .env("TRESOR_VAULT", "@garbage/vault.db")
            .names(&["Not a directory"]),
    );
    t.push(
        row("init", Unavailable, &["init", "--no-keychain"], 6)
            .env("TRESOR_VAULT", "@folder")
            .names(&["is a directory"]),
    );
    t.push(
        row(
            "init",
            WrongCredential,
            &["init", "--password", "--no-recovery"],
            2,
        )
        .env("TRESOR_VAULT", "@new:init-weak/vault.db")
        .env("TRESOR_NEW_PASSWORD", "password1")
        .names(&["too weak", "--weak-password"]),
    );
    t.push(
        row("init", WrongCredential, &["init", "--no-keychain"], 3)
            .env("TRESOR_VAULT", "@new:init-none/vault.db")
            .env_remove_key_file()
            .names(&["no terminal", "TRESOR_NEW_PASSWORD"]),
    );
    // Its recovery key is data: a reader that goes away is an error.
    t.push(
        row(
            "init",
            ClosedStdout,
            &["--json", "init", "--no-keychain"],
            6,
        )
        .env("TRESOR_VAULT", "@new:init-pipe/vault.db")
        .env("TRESOR_KEY_FILE", "@new:init-pipe.key")
        .names(&["reader closed the pipe"])
        .text_only(),
    );

    // Secret commands.
    t.push(row("set", Ok, &["set", "c/set"], 0).stdin("value"));
    t.push(
        row(
            "set",
            Conflict,
            &["set", "app/db", "--expect-version", "9"],
            5,
        )
        .stdin("value")
        .names(&["conflict on 'app/db'", "expected version 9"]),
    );
    t.push(
        row("set", BadFlag, &["set", "Bad Name!"], 2)
            .stdin("value")
            .names(&["invalid secret name"]),
    );
    t.push(
        row("set", BadFlag, &["set", "c/empty"], 2)
            .stdin("")
            .names(&["--allow-empty"]),
    );
    t.push(
        row(
            "set",
            Unavailable,
            &["set", "c/f", "--file", "@new:no-such-file"],
            6,
        )
        .names(&["No such file"]),
    );
    t.extend(vault_rows("set", &["set", "c/x"], Some("value")));

    t.push(row("get", Ok, &["get", "app/db"], 0));
    t.push(row("get", MissingName, &["get", "app/nope"], 1).names(&["'app/nope' not found"]));
    t.push(
        row("get", MissingName, &["get", "app/db", "--version", "99"], 1)
            .names(&["version 99 not found"]),
    );
    t.push(
        row("get", MissingName, &["get", "app/gone"], 1)
            .names(&["'app/gone' is deleted", "tresor undelete app/gone"]),
    );
    t.push(row("get", ClosedStdout, &["get", "app/db"], 6).names(&["reader closed the pipe"]));
    // A store that could hold the name does not answer: not "not found".
    t.push(
        row(
            "get",
            Unavailable,
            &["--config", "@down-config", "get", "app/nope"],
            6,
        )
        .names(&["team is unavailable"]),
    );
    t.extend(vault_rows("get", &["get", "app/db"], None));

    t.push(row("ls", Ok, &["ls"], 0));
    t.push(row("ls", ClosedStdout, &["ls"], 0));
    t.extend(vault_rows("ls", &["ls"], None));

    t.push(row("history", Ok, &["history", "app/db"], 0));
    t.push(row("history", MissingName, &["history", "app/nope"], 1).names(&["'app/nope'"]));
    t.push(
        row("history", MissingName, &["history", "app/gone"], 1)
            .names(&["'app/gone' is deleted", "--deleted"]),
    );
    t.push(row("history", Ok, &["history", "app/gone", "--deleted"], 0));
    t.push(row("history", ClosedStdout, &["history", "app/db"], 0));
    t.push(
        row(
            "history",
            Unavailable,
            &["--config", "@down-config", "history", "app/nope"],
            6,
        )
        .names(&["team is unavailable"]),
    );
    t.extend(vault_rows("history", &["history", "app/db"], None));

    t.push(row("rotate", Ok, &["rotate", "app/staged", "--stage"], 0).stdin("next"));
    t.extend(vault_rows("rotate", &["rotate", "app/db"], Some("value")));

    t.push(row("promote", Ok, &["promote", "app/staged"], 0));
    t.push(row("promote", MissingName, &["promote", "app/db"], 1).names(&["pending not found"]));
    t.extend(vault_rows("promote", &["promote", "app/staged"], None));

    t.push(
        row("rollback", Ok, &["rollback", "app/db", "1"], 0).names(&["current is now version 1"]),
    );
    t.push(
        row("rollback", MissingName, &["rollback", "app/db", "42"], 1)
            .names(&["version 42 not found"]),
    );
    t.push(row("rollback", BadFlag, &["rollback", "app/db", "one"], 2).names(&["one"]));
    t.extend(vault_rows("rollback", &["rollback", "app/db", "1"], None));

    t.push(row("rm", Ok, &["rm", "app/rm"], 0));
    t.push(row("rm", MissingName, &["rm", "app/nope"], 1).names(&["'app/nope' not found"]));
    t.extend(vault_rows("rm", &["rm", "app/db"], None));

    t.push(row("undelete", Ok, &["undelete", "app/undel"], 0));
    t.push(row("undelete", MissingName, &["undelete", "app/nope"], 1).names(&["'app/nope'"]));
    t.push(row("undelete", BadFlag, &["undelete", "app/db"], 2).names(&["not deleted"]));
    t.extend(vault_rows("undelete", &["undelete", "app/gone"], None));

    t.push(row("meta", Ok, &["meta", "app/db", "owner=ops"], 0));
    t.push(row("meta", MissingName, &["meta", "app/nope"], 1).names(&["'app/nope' not found"]));
    t.push(row("meta", BadFlag, &["meta", "app/db", "novalue"], 2).names(&["KEY=VALUE"]));
    t.push(row("meta", ClosedStdout, &["meta", "app/db"], 0));
    t.extend(vault_rows("meta", &["meta", "app/db"], None));

    // Credentials.
    t.push(
        row("passwd", BadFlag, &["passwd"], 2)
            .names(&["no password slot", "tresor keyslot add --password"]),
    );
    t.push(
        row("get", WrongCredential, &["get", "app/db"], 3)
            .env("TRESOR_KEY_FILE", "")
            .env("TRESOR_PASSWORD", "some-password")
            .names(&["has no password slot, so TRESOR_PASSWORD cannot open it"]),
    );
    t.push(
        row("get", WrongCredential, &["get", "app/db"], 3)
            .env("TRESOR_KEY_FILE", "")
            .names(&["no credential was found", "TRESOR_KEY_FILE"]),
    );
    t.extend(vault_rows("passwd", &["passwd"], None));

    t.push(
        row(
            "keyslot add",
            Ok,
            &[
                "keyslot",
                "add",
                "--password",
                "--kdf-memory",
                "8",
                "--kdf-passes",
                "1",
                "--kdf-lanes",
                "1",
            ],
            0,
        )
        .env("TRESOR_NEW_PASSWORD", STRONG),
    );
    // The password slot just added (slot 2) is the one passwd changes.
    t.push(
        row(
            "passwd",
            Ok,
            &[
                "passwd",
                "--kdf-memory",
                "8",
                "--kdf-passes",
                "1",
                "--kdf-lanes",
                "1",
            ],
            0,
        )
        .env("TRESOR_NEW_PASSWORD", "quartz-lantern-orbit-thistle-58"),
    );
    t.push(
        row("passwd", BadFlag, &["passwd"], 2)
            .env("TRESOR_NEW_PASSWORD", "password1")
            .names(&["too weak", "--weak-password"]),
    );
    t.push(
        row("passwd", WrongCredential, &["passwd"], 3)
            .names(&["a new password is needed", "TRESOR_NEW_PASSWORD"]),
    );
    t.push(
        row("passwd", MissingName, &["passwd", "--slot", "9"], 1)
            .env("TRESOR_NEW_PASSWORD", STRONG)
            .names(&["key slot 9"]),
    );
    t.push(
        row("keyslot add", BadFlag, &["keyslot", "add", "--password"], 2)
            .env("TRESOR_NEW_PASSWORD", "password1")
            .names(&["too weak", "--weak-password"]),
    );
    t.push(
        row(
            "keyslot add",
            WrongCredential,
            &["keyslot", "add", "--password"],
            3,
        )
        .names(&["a new password is needed", "TRESOR_NEW_PASSWORD"]),
    );
    t.extend(
        vault_rows("keyslot add", &["keyslot", "add", "--password"], None)
            .into_iter()
            .map(|r| r.env("TRESOR_NEW_PASSWORD", STRONG)),
    );

    t.push(row("keyslot list", Ok, &["keyslot", "list"], 0));
    t.push(row("keyslot list", ClosedStdout, &["keyslot", "list"], 0));
    t.extend(vault_rows("keyslot list", &["keyslot", "list"], None));

    // Slot 2 is the password slot added above.
    t.push(row("keyslot remove", Ok, &["keyslot", "remove", "2"], 0));
    t.push(
        row(
            "keyslot remove",
            MissingName,
            &["keyslot", "remove", "9"],
            1,
        )
        .names(&["key slot 9"]),
    );
    t.push(row("keyslot remove", BadFlag, &["keyslot", "remove", "1"], 2).names(&["last"]));
    t.extend(vault_rows(
        "keyslot remove",
        &["keyslot", "remove", "9"],
        None,
    ));

    // Named keys and envelopes.
    t.push(row("key create", Ok, &["key", "create", "app/new-key"], 0));
    t.push(row("key create", BadFlag, &["key", "create", "app/k"], 2).names(&["already exists"]));
    t.extend(vault_rows("key create", &["key", "create", "app/k2"], None));

    t.push(row("key list", Ok, &["key", "list"], 0));
    t.push(row("key list", ClosedStdout, &["key", "list"], 0));
    t.extend(vault_rows("key list", &["key", "list"], None));

    t.push(row("key rotate", Ok, &["key", "rotate", "app/k"], 0));
    t.push(
        row("key rotate", MissingName, &["key", "rotate", "app/nope"], 1)
            .names(&["'app/nope' not found"]),
    );
    t.extend(vault_rows("key rotate", &["key", "rotate", "app/k"], None));

    t.push(row(
        "key config",
        Ok,
        &["key", "config", "app/k", "--min-decryption-version", "1"],
        0,
    ));
    t.push(
        row(
            "key config",
            MissingName,
            &["key", "config", "app/nope", "--min-decryption-version", "1"],
            1,
        )
        .names(&["'app/nope' not found"]),
    );
    t.push(
        row(
            "key config",
            BadFlag,
            &["key", "config", "app/k", "--min-decryption-version", "9"],
            2,
        )
        .names(&["minimum decryption version"]),
    );
    t.extend(vault_rows(
        "key config",
        &["key", "config", "app/k", "--min-decryption-version", "1"],
        None,
    ));

    t.push(row(
        "key delete",
        Ok,
        &["key", "delete", "app/del-key", "--yes-destroy-data"],
        0,
    ));
    t.push(
        row(
            "key delete",
            MissingName,
            &["key", "delete", "app/nope", "--yes-destroy-data"],
            1,
        )
        .names(&["'app/nope' not found"]),
    );
    t.push(
        row("key delete", BadFlag, &["key", "delete", "app/k"], 2).names(&["--yes-destroy-data"]),
    );
    t.extend(vault_rows(
        "key delete",
        &["key", "delete", "app/k", "--yes-destroy-data"],
        None,
    ));

    t.push(row("key encrypt", Ok, &["key", "encrypt", "app/k"], 0).stdin("plain"));
    t.push(
        row(
            "key encrypt",
            MissingName,
            &["key", "encrypt", "app/nope"],
            1,
        )
        .stdin("plain")
        .names(&["'app/nope' not found"]),
    );
    t.push(
        row("key encrypt", BadFlag, &["key", "encrypt", "app/age"], 2)
            .stdin("plain")
            .names(&["type age", "tresor encrypt --key app/age"]),
    );
    t.push(
        row("key encrypt", ClosedStdout, &["key", "encrypt", "app/k"], 6)
            .stdin("plain")
            .names(&["reader closed the pipe"]),
    );
    t.extend(vault_rows(
        "key encrypt",
        &["key", "encrypt", "app/k"],
        Some("plain"),
    ));

    t.push(row("key decrypt", Ok, &["key", "decrypt"], 0).stdin("@envelope"));
    t.push(
        row("key decrypt", Tampered, &["key", "decrypt"], 4)
            .stdin("@tampered-envelope")
            .names(&["integrity check failed", "the envelope was modified"]),
    );
    t.push(
        row("key decrypt", ClosedStdout, &["key", "decrypt"], 6)
            .stdin("@envelope")
            .names(&["reader closed the pipe"]),
    );
    t.push(
        row(
            "key decrypt",
            Unavailable,
            &["key", "decrypt", "--in", "@new:no-such-file"],
            6,
        )
        .names(&["No such file"]),
    );
    t.extend(
        vault_rows("key decrypt", &["key", "decrypt"], Some("@envelope"))
            .into_iter()
            .filter(|r| r.class != Tampered),
    );

    t.push(row("key rewrap", Ok, &["key", "rewrap"], 0).stdin("@envelope"));
    t.push(
        row("key rewrap", Tampered, &["key", "rewrap"], 4)
            .stdin("@tampered-envelope")
            .names(&["integrity check failed", "the envelope was modified"]),
    );
    t.push(
        row("key rewrap", ClosedStdout, &["key", "rewrap"], 6)
            .stdin("@envelope")
            .names(&["reader closed the pipe"]),
    );
    t.extend(
        vault_rows("key rewrap", &["key", "rewrap"], Some("@envelope"))
            .into_iter()
            .filter(|r| r.class != Tampered),
    );

    t.push(row(
        "key recipient",
        Ok,
        &["key", "recipient", "app/age"],
        0,
    ));
    t.push(
        row(
            "key recipient",
            MissingName,
            &["key", "recipient", "app/nope"],
            1,
        )
        .names(&["'app/nope' not found"]),
    );
    t.push(
        row("key recipient", BadFlag, &["key", "recipient", "app/k"], 2)
            .names(&["type aes256-gcm"]),
    );
    t.push(
        row(
            "key recipient",
            ClosedStdout,
            &["key", "recipient", "app/age"],
            6,
        )
        .names(&["reader closed the pipe"]),
    );
    t.extend(vault_rows(
        "key recipient",
        &["key", "recipient", "app/age"],
        None,
    ));

    // Files.
    t.push(row(
        "encrypt",
        Ok,
        &[
            "encrypt",
            "--key",
            "app/age",
            "-o",
            "@new:enc-ok.age",
            "@plain",
        ],
        0,
    ));
    t.push(
        row(
            "encrypt",
            ClosedStdout,
            &["encrypt", "--key", "app/age", "@plain"],
            6,
        )
        .names(&["stdout is unavailable", "reader closed the pipe"]),
    );
    t.push(
        row(
            "encrypt",
            MissingName,
            &["encrypt", "--key", "app/nope", "@plain"],
            1,
        )
        .names(&["'app/nope' not found"]),
    );
    t.push(
        row(
            "encrypt",
            BadFlag,
            &["encrypt", "-r", "age1bogus", "@plain"],
            2,
        )
        .names(&["invalid age recipient"]),
    );
    t.push(row("encrypt", BadFlag, &["encrypt", "@plain"], 2).names(&["no recipients"]));
    t.push(
        row(
            "encrypt",
            WrongCredential,
            &["encrypt", "--passphrase", "@plain"],
            3,
        )
        .names(&["a passphrase to encrypt to is needed", "--passphrase-file"]),
    );
    t.push(
        row(
            "encrypt",
            Unavailable,
            &["encrypt", "--key", "app/age", "@new:no-such-file"],
            6,
        )
        .names(&["No such file"]),
    );
    t.extend(vault_rows(
        "encrypt",
        &["encrypt", "--key", "app/age", "@plain"],
        None,
    ));

    t.push(row(
        "decrypt",
        Ok,
        &[
            "decrypt",
            "--key",
            "app/age",
            "-o",
            "@new:dec-ok",
            "@age-file",
        ],
        0,
    ));
    t.push(
        row(
            "decrypt",
            ClosedStdout,
            &["decrypt", "--key", "app/age", "@age-file"],
            6,
        )
        .names(&["stdout is unavailable", "reader closed the pipe"]),
    );
    t.push(
        row(
            "decrypt",
            MissingName,
            &["decrypt", "--key", "app/nope", "@age-file"],
            1,
        )
        .names(&["'app/nope' not found"]),
    );
    t.push(
        row(
            "decrypt",
            WrongCredential,
            &["decrypt", "--key", "app/age2", "@age-file"],
            3,
        )
        .names(&["no identity matches"]),
    );
    t.push(
        row(
            "decrypt",
            WrongCredential,
            &["decrypt", "@passphrase-file"],
            3,
        )
        .names(&["encrypted to a passphrase", "--passphrase-file"]),
    );
    t.push(
        row(
            "decrypt",
            Tampered,
            &[
                "decrypt",
                "--key",
                "app/age",
                "-o",
                "@new:dec-bad",
                "@tampered-age-file",
            ],
            4,
        )
        .names(&["integrity check failed", "modified"]),
    );
    t.push(
        row(
            "decrypt",
            Unavailable,
            &["decrypt", "--key", "app/age", "@new:no-such-file"],
            6,
        )
        .names(&["No such file"]),
    );
    t.push(row("decrypt", BadFlag, &["decrypt", "@age-file"], 2).names(&["no identities"]));
    // A passphrase file asking for more scrypt work than allowed is refused
    // before the work starts; the message names the override.
    t.push(
        row(
            "decrypt",
            BadFlag,
            &[
                "decrypt",
                "--passphrase-file",
                "@pass-phrase",
                "--max-work-factor",
                "1",
                "@passphrase-file",
            ],
            2,
        )
        .names(&["scrypt work factor", "--max-work-factor"]),
    );
    t.extend(vault_rows(
        "decrypt",
        &["decrypt", "--key", "app/age", "@age-file"],
        None,
    ));

    // Audit and checks.
    t.push(row("audit log", Ok, &["audit", "log"], 0));
    t.push(row("audit log", ClosedStdout, &["audit", "log"], 0));
    t.extend(vault_rows("audit log", &["audit", "log"], None));

    t.push(row("audit verify", Ok, &["audit", "verify"], 0));
    t.push(
        row(
            "audit verify",
            BadFlag,
            &["audit", "verify", "--anchor", "junk"],
            2,
        )
        .names(&["audit anchor"]),
    );
    t.push(row("audit verify", ClosedStdout, &["audit", "verify"], 0));
    t.extend(vault_rows("audit verify", &["audit", "verify"], None));

    t.push(row("audit anchor", Ok, &["audit", "anchor"], 0));
    t.push(
        row("audit anchor", ClosedStdout, &["audit", "anchor"], 6)
            .names(&["reader closed the pipe"]),
    );
    t.extend(vault_rows("audit anchor", &["audit", "anchor"], None));

    t.push(row("verify", Ok, &["verify"], 0));
    t.push(row("verify", ClosedStdout, &["verify"], 0));
    t.extend(vault_rows("verify", &["verify"], None));

    t.push(row("settings", Ok, &["settings"], 0));
    t.push(row("settings", BadFlag, &["settings", "bogus=1"], 2).names(&["unknown setting"]));
    t.push(row("settings", ClosedStdout, &["settings"], 0));
    t.extend(vault_rows("settings", &["settings"], None));

    t.push(row("rekey", Ok, &["rekey"], 0));
    t.extend(vault_rows("rekey", &["rekey"], None));

    // Sessions (a real session is the business of tests/session.rs; these
    // rows fail before one would start).
    t.extend(vault_rows("unlock", &["unlock"], None));
    t.push(row("lock", Ok, &["lock"], 0).names(&["no unlock session"]));
    t.extend(
        vault_rows("lock", &["lock"], None)
            .into_iter()
            .filter(|r| r.class != WrongCredential),
    );
    t.push(row("status", Ok, &["status"], 0));
    t.push(row("status", ClosedStdout, &["status"], 0));
    t.extend(
        vault_rows("status", &["status"], None)
            .into_iter()
            .filter(|r| r.class != WrongCredential),
    );

    // The stores.
    t.push(row("stores", Ok, &["stores"], 0));
    t.push(row("stores", BadFlag, &["stores", "--bogus-flag"], 2).names(&["--bogus-flag"]));
    t.push(row("stores", ClosedStdout, &["stores"], 0));
    t.push(
        row(
            "stores",
            BadFlag,
            &["--config", "@new:no-such.toml", "stores"],
            2,
        )
        .names(&["does not exist"]),
    );
    t.push(row("doctor", Ok, &["doctor"], 0));
    t.push(row("doctor", BadFlag, &["doctor", "--bogus-flag"], 2).names(&["--bogus-flag"]));
    // A required store that is not healthy is doctor's own exit 6.
    t.push(
        row("doctor", Unavailable, &["doctor"], 6)
            .env("TRESOR_VAULT", "@folder")
            .names(&["required store unhealthy"]),
    );
    t.push(row("doctor", ClosedStdout, &["doctor"], 0));

    t.push(row("config check", Ok, &["config", "check"], 0));
    t.push(
        row(
            "config check",
            BadFlag,
            &["config", "check", "--bogus-flag"],
            2,
        )
        .names(&["--bogus-flag"]),
    );
    t.push(row("config check", ClosedStdout, &["config", "check"], 0));
    t.push(
        row(
            "config check",
            BadFlag,
            &["--config", "@bad-config", "config", "check"],
            2,
        )
        .names(&["1 problem"]),
    );
    t.push(row("config path", Ok, &["config", "path"], 0));
    t.push(
        row(
            "config path",
            BadFlag,
            &["config", "path", "--bogus-flag"],
            2,
        )
        .names(&["--bogus-flag"]),
    );
    t.push(row("config path", ClosedStdout, &["config", "path"], 0));
    t.push(row("config trust", Ok, &["config", "trust", "--list"], 0));
    t.push(
        row(
            "config trust",
            BadFlag,
            &["config", "trust", "@new:no-such.toml"],
            2,
        )
        .names(&["does not exist"]),
    );
    t.push(row(
        "config trust",
        ClosedStdout,
        &["config", "trust", "--list"],
        0,
    ));
    t.push(row("config untrust", Ok, &["config", "untrust"], 0));
    t.push(
        row(
            "config untrust",
            BadFlag,
            &["config", "untrust", "--bogus-flag"],
            2,
        )
        .names(&["--bogus-flag"]),
    );

    t.push(row("check", Ok, &["--config", "@declared", "check"], 0));
    t.push(
        row(
            "check",
            BadFlag,
            &["--config", "@declared", "check", "--bogus-flag"],
            2,
        )
        .names(&["--bogus-flag"]),
    );
    t.push(row("check", BadFlag, &["check"], 2).names(&["[secrets]"]));
    t.push(
        row(
            "check",
            MissingName,
            &["--config", "@declared-missing", "check"],
            1,
        )
        .names(&["app/nope"]),
    );
    t.push(
        row(
            "check",
            WrongCredential,
            &["--config", "@declared", "check"],
            3,
        )
        .env("TRESOR_KEY_FILE", "@other-key")
        .names(&["wrong key"]),
    );
    t.push(row(
        "check",
        ClosedStdout,
        &["--config", "@declared", "check"],
        0,
    ));

    t.push(row("render", Ok, &["render", "@ref-yaml"], 0));
    t.push(
        row(
            "render",
            BadFlag,
            &["render", "@ref-yaml", "--bogus-flag"],
            2,
        )
        .names(&["--bogus-flag"]),
    );
    t.push(
        row("render", MissingName, &["render", "@missing-ref-yaml"], 1).names(&["SEC/app/nope"]),
    );
    t.push(
        row("render", Unavailable, &["render", "@new:no-such.yaml"], 6).names(&["no-such.yaml"]),
    );
    t.push(
        row("render", WrongCredential, &["render", "@ref-yaml"], 3)
            .env("TRESOR_KEY_FILE", "@other-key")
            .names(&["wrong key"]),
    );
    t.push(row("render", ClosedStdout, &["render", "@ref-yaml"], 6));

    t.push(row("inject", Ok, &["inject"], 0).stdin("db = {{ SEC/app/db }}\n"));
    t.push(row("inject", BadFlag, &["inject", "--bogus-flag"], 2).names(&["--bogus-flag"]));
    t.push(
        row("inject", MissingName, &["inject"], 1)
            .stdin("db = {{ SEC/app/nope }}\n")
            .names(&["SEC/app/nope"]),
    );
    t.push(row("inject", ClosedStdout, &["inject"], 6).stdin("db = {{ SEC/app/db }}\n"));

    t.push(row("env", Ok, &["--config", "@declared", "env"], 0));
    t.push(
        row(
            "env",
            BadFlag,
            &["--config", "@declared", "env", "--format", "tcsh"],
            2,
        )
        .names(&["tcsh"]),
    );
    t.push(
        row(
            "env",
            MissingName,
            &["--config", "@declared-missing", "env"],
            1,
        )
        .names(&["app/nope"]),
    );
    t.push(
        row("env", WrongCredential, &["--config", "@declared", "env"], 3)
            .env("TRESOR_KEY_FILE", "@other-key")
            .names(&["wrong key"]),
    );
    t.push(row(
        "env",
        ClosedStdout,
        &["--config", "@declared", "env"],
        6,
    ));

    t.push(row(
        "run",
        Ok,
        &["run", "--env", "DB=app/db", "--", "true"],
        0,
    ));
    t.push(row("run", BadFlag, &["run", "--bogus-flag", "--", "true"], 2).names(&["--bogus-flag"]));
    t.push(
        row(
            "run",
            BadFlag,
            &["run", "--env", "not-a-pair", "--", "true"],
            2,
        )
        .names(&["not-a-pair"]),
    );
    t.push(
        row(
            "run",
            MissingName,
            &["run", "--env", "X=app/nope", "--", "true"],
            1,
        )
        .names(&["app/nope"]),
    );
    t.push(
        row(
            "run",
            WrongCredential,
            &["run", "--env", "DB=app/db", "--", "true"],
            3,
        )
        .env("TRESOR_KEY_FILE", "@other-key")
        .names(&["wrong key"]),
    );
    t.push(row(
        "run",
        ClosedStdout,
        &["run", "--env", "DB=app/db", "--", "true"],
        0,
    ));

    let mig = &[
        "--config",
        "@env-config",
        "migrate",
        "--from",
        "env",
        "--to",
        "vault",
    ];
    t.push(row("migrate", Ok, mig, 0));
    t.push(
        row(
            "migrate",
            BadFlag,
            &["migrate", "--from", "nope", "--to", "vault"],
            2,
        )
        .names(&["nope"]),
    );
    t.push(
        row(
            "migrate",
            Unavailable,
            &[
                "--config",
                "@down-config",
                "migrate",
                "--from",
                "team",
                "--to",
                "local",
            ],
            6,
        )
        .names(&["team"]),
    );
    t.push(
        row("migrate", WrongCredential, mig, 3)
            .env("TRESOR_KEY_FILE", "@other-key")
            .names(&["wrong key"]),
    );
    t.push(row("migrate", ClosedStdout, mig, 0));
    let sync = &[
        "--config",
        "@env-config",
        "sync",
        "env",
        "vault",
        "--dry-run",
    ];
    t.push(row("sync", Ok, sync, 0));
    t.push(row("sync", BadFlag, &["sync", "vault", "vault"], 2).names(&["same store"]));
    t.push(
        row(
            "sync",
            BadFlag,
            &["--config", "@env-config", "sync", "env", "vault"],
            2,
        )
        .names(&["read-only"]),
    );
    t.push(
        row(
            "sync",
            Unavailable,
            &["--config", "@down-config", "sync", "team", "local"],
            6,
        )
        .names(&["team"]),
    );
    t.push(
        row("sync", WrongCredential, sync, 3)
            .env("TRESOR_KEY_FILE", "@other-key")
            .names(&["wrong key"]),
    );
    t.push(row("sync", ClosedStdout, sync, 0));

    t.push(row(
        "import",
        Ok,
        &["import", "json", "@import-json", "--dry-run"],
        0,
    ));
    t.push(
        row(
            "import",
            BadFlag,
            &["import", "json", "@import-json", "--bogus-flag"],
            2,
        )
        .names(&["--bogus-flag"]),
    );
    t.push(
        row(
            "import",
            BadFlag,
            &["import", "json", "@import-bad-json"],
            2,
        )
        .names(&["import-bad.json"]),
    );
    t.push(
        row(
            "import",
            Unavailable,
            &["import", "json", "@new:no-such.json"],
            6,
        )
        .names(&["no-such.json"]),
    );
    t.push(
        row(
            "import",
            WrongCredential,
            &["import", "json", "@import-json"],
            3,
        )
        .env("TRESOR_KEY_FILE", "@other-key")
        .names(&["wrong key"]),
    );
    t.push(row(
        "import",
        ClosedStdout,
        &["import", "json", "@import-json", "--dry-run"],
        0,
    ));
    t.push(row("export", Ok, &["export"], 0));
    t.push(row("export", BadFlag, &["export", "--bogus-flag"], 2).names(&["--bogus-flag"]));
    t.push(
        row("export", WrongCredential, &["export"], 3)
            .env("TRESOR_KEY_FILE", "@other-key")
            .names(&["wrong key"]),
    );
    t.push(row("export", ClosedStdout, &["export"], 0));

    t.push(row("scan", Ok, &["scan", "@folder"], 0));
    t.push(row("scan", BadFlag, &["scan", "@folder", "--bogus-flag"], 2).names(&["--bogus-flag"]));
    t.push(
        row("scan", Unavailable, &["scan", "@new:no-such-folder"], 6).names(&["no-such-folder"]),
    );
    t.push(row("scan", ClosedStdout, &["scan", "@folder"], 0));

    t.push(row("completions", Ok, &["completions", "bash"], 0));
    t.push(row("completions", BadFlag, &["completions", "tcsh-ish"], 2).names(&["tcsh-ish"]));
    t.push(row(
        "completions",
        ClosedStdout,
        &["completions", "bash"],
        0,
    ));

    t.push(row("help", Ok, &["--help"], 0).text_only());
    t.push(row("help", ClosedStdout, &["--help"], 0).text_only());
    t.push(row("help", BadFlag, &["nosuchcommand"], 2).names(&["nosuchcommand"]));
    t
}

trait RowExt {
    fn env_remove_key_file(self) -> Self;
}

impl RowExt for Row {
    /// Runs without the fixture's key file.
    fn env_remove_key_file(self) -> Self {
        self.env("TRESOR_KEY_FILE", "")
    }
}

/// Commands whose success is another test's business, and why.
const NO_OK_ROW: &[(&str, &str)] = &[(
    "unlock",
    "starts a session that outlives the run (tests/session.rs, tests/session_keyring.rs)",
)];

/// Commands `tresor --help` lists that have no rows, and why.
const EXEMPT: &[(&str, &str)] = &[(
    "agent",
    "started by `tresor unlock` with the key on stdin, never by hand (tests/session.rs)",
)];

/// The vault, files and texts the rows name with `@` words.
struct Fixture {
    t: Tresor,
    envelope: String,
    tampered_envelope: String,
}

impl Fixture {
    fn new() -> Self {
        let t = Tresor::with_key();
        t.run_in(&["set", "app/db"], b"v1").ok();
        t.run_in(&["set", "app/db"], b"v2").ok();
        for name in ["app/gone", "app/rm", "app/undel", "app/staged"] {
            t.run_in(&["set", name], b"x").ok();
        }
        t.run(&["rm", "app/gone"]).ok();
        t.run(&["rm", "app/undel"]).ok();
        t.run(&["key", "create", "app/k"]).ok();
        t.run(&["key", "create", "app/del-key"]).ok();
        t.run(&["key", "create", "app/age", "--type", "age"]).ok();
        t.run(&["key", "create", "app/age2", "--type", "age"]).ok();
        let envelope = t.run_in(&["key", "encrypt", "app/k"], b"hello").ok().out();
        let envelope = envelope.trim().to_string();
        // The last base64url character changed: the tag no longer matches.
        let mut tampered_envelope = envelope.clone();
        let last = tampered_envelope.pop().unwrap();
        tampered_envelope.push(if last == 'A' { 'B' } else { 'A' });

        t.write_key("other-key", base64(&[7u8; 32]).as_bytes());
        t.write("garbage", &filler(8192, 99));
        t.write("bad.toml", b"bogus = 1\n");
        // Declared secrets and references: one that resolves, one that does not.
        t.write(
            "env-store.toml",
            b"[[stores]]\nname = \"env\"\nkind = \"env\"\nprefix = \"TRESOR_TEST_MIG_\"\n",
        );
        t.write("import.json", b"{\"imp/a\": \"value-one\"}\n");
        t.write("import-bad.json", b"{\"imp/a\": \n");
        t.write("declared.toml", b"[secrets]\nDB = \"app/db\"\n");
        t.write("declared-missing.toml", b"[secrets]\nX = \"app/nope\"\n");
        t.write("ref.yaml", b"db: SEC/app/db\n");
        t.write("missing-ref.yaml", b"db: SEC/app/nope\n");
        // An OpenBao store on a port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        t.write(
            "down.toml",
            format!(
                "[[stores]]\nname = \"local\"\nkind = \"vault\"\npriority = 50\n\n\
                 [[stores]]\nname = \"team\"\nkind = \"openbao\"\n\
                 address = \"http://127.0.0.1:{port}\"\ntoken = \"not-a-token\"\n\
                 connect_timeout = \"300ms\"\ntimeout = \"1s\"\npriority = 100\n"
            )
            .as_bytes(),
        );
        std::fs::create_dir(t.path("folder")).unwrap();
        let plain = t.write("plain", &filler(300_000, 5));
        let age = t.path("file.age");
        t.run(&[
            "encrypt",
            "--key",
            "app/age",
            "-o",
            age.to_str().unwrap(),
            plain.to_str().unwrap(),
        ])
        .ok();
        let mut bad = std::fs::read(&age).unwrap();
        let at = bad.len() - 100;
        bad[at] ^= 0x40;
        t.write("tampered.age", &bad);
        t.write("pass-phrase", b"correct horse battery staple\n");
        let pp = t.path("pass-phrase");
        t.run(&[
            "encrypt",
            "--passphrase-file",
            pp.to_str().unwrap(),
            "-o",
            t.path("passphrase.age").to_str().unwrap(),
            plain.to_str().unwrap(),
        ])
        .ok();
        Self {
            t,
            envelope,
            tampered_envelope,
        }
    }

    /// An `@` word: a path or text of the fixture (`@new:NAME` is a path
    /// that does not exist yet, one per mode); anything else as it is.
    fn expand(&self, word: &str, mode: &str) -> String {
        let path = |rel: &str| self.t.path(rel).display().to_string();
        match word {
            "@other-key" => path("other-key"),
            "@garbage" => path("garbage"),
            "@bad-config" => path("bad.toml"),
            "@down-config" => path("down.toml"),
            "@declared" => path("declared.toml"),
            "@import-json" => path("import.json"),
            "@import-bad-json" => path("import-bad.json"),
            "@env-config" => path("env-store.toml"),
            "@declared-missing" => path("declared-missing.toml"),
            "@ref-yaml" => path("ref.yaml"),
            "@missing-ref-yaml" => path("missing-ref.yaml"),
            "@garbage/vault.db" => path("garbage/vault.db"),
            "@folder" => path("folder"),
            "@plain" => path("plain"),
            "@age-file" => path("file.age"),
            "@tampered-age-file" => path("tampered.age"),
            "@passphrase-file" => path("passphrase.age"),
            "@pass-phrase" => path("pass-phrase"),
            "@envelope" => format!("{}\n", self.envelope),
            "@tampered-envelope" => format!("{}\n", self.tampered_envelope),
            w if w.starts_with("@new:") => path(&format!("new-{mode}/{}", &w[5..])),
            w => {
                assert!(!w.starts_with('@'), "unknown fixture word {w}");
                w.to_string()
            }
        }
    }
}

/// One run of a row, in `mode` ("text" or "json").
fn run_row(fx: &Fixture, r: &Row, mode: &str) -> Out {
    let mut args: Vec<String> = Vec::new();
    if mode == "json" {
        args.push("--json".into());
    }
    args.extend(r.args.iter().map(|a| fx.expand(a, mode)));
    let mut run = fx.t.cmd(&args);
    for (k, v) in &r.env {
        if v.is_empty() {
            run = run.env_remove(k);
        } else {
            run = run.env(k, fx.expand(v, mode));
        }
    }
    std::fs::create_dir_all(fx.t.path(&format!("new-{mode}"))).unwrap();
    let stdin = r.stdin.map(|s| fx.expand(s, mode));
    if r.class != ClosedStdout {
        return match stdin {
            Some(s) => run.stdin(s.as_bytes()).run(),
            None => run.run(),
        };
    }
    // stdout: a pipe whose reader has gone before the first write.
    let mut cmd = run.into_command();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(Stdio::from(writer)).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    if let (Some(mut pipe), Some(s)) = (child.stdin.take(), stdin) {
        use std::io::Write;
        let _ = pipe.write_all(s.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    let o = Out {
        args,
        code: out.status.code().unwrap_or(-1),
        stdout: Vec::new(),
        stderr: out.stderr,
    };
    assert!(
        !o.err().contains("panicked") && o.code >= 0 && o.code != 101,
        "{:?} panicked or was killed on a closed stdout: {}\n{}",
        o.args,
        o.code,
        o.err()
    );
    o
}

#[test]
fn every_command_meets_the_exit_code_contract() {
    let fx = Fixture::new();
    let mut failures = Vec::new();
    for r in table() {
        let modes: &[&str] = if r.class == Ok || !r.json {
            &["text"]
        } else {
            &["text", "json"]
        };
        for mode in modes {
            let o = run_row(&fx, &r, mode);
            let what = format!("{} [{:?}, {mode}] tresor {:?}", r.command, r.class, o.args);
            if o.code != r.code {
                failures.push(format!(
                    "{what}: exit {} (want {})\n  {}",
                    o.code,
                    r.code,
                    o.err().trim()
                ));
                continue;
            }
            if r.code == 0 {
                continue;
            }
            let err = o.err();
            for name in &r.names {
                if !err.contains(name) {
                    failures.push(format!("{what}: stderr lacks {name:?}\n  {}", err.trim()));
                }
            }
            if err.trim().is_empty() {
                failures.push(format!("{what}: nothing on stderr"));
            }
            if *mode == "json" || r.args.first() == Some(&"--json") {
                match serde_json::from_str::<serde_json::Value>(err.trim()) {
                    Err(e) => failures.push(format!(
                        "{what}: stderr is not one JSON object ({e})\n  {err}"
                    )),
                    Result::Ok(v) => {
                        if v["error"]["exit_code"].as_i64() != Some(i64::from(r.code)) {
                            failures.push(format!("{what}: JSON exit_code is not {}: {v}", r.code));
                        }
                        if !v["error"]["message"].is_string() || !v["error"]["kind"].is_string() {
                            failures.push(format!("{what}: JSON error lacks message or kind: {v}"));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} broken promises:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The commands `tresor --help` (and each command group's help) lists.
fn listed_commands() -> Vec<String> {
    fn commands_in(help: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut inside = false;
        for line in help.lines() {
            if line.starts_with("Commands:") {
                inside = true;
                continue;
            }
            if inside {
                if !line.starts_with("  ") {
                    break;
                }
                let word = line.split_whitespace().next().unwrap_or_default();
                // Continuation lines of a description are indented further.
                if line.starts_with("  ") && !line.starts_with("   ") && word != "help" {
                    out.push(word.to_string());
                }
            }
        }
        out
    }
    let t = Tresor::new();
    let mut all = Vec::new();
    for top in commands_in(&t.run(&["--help"]).ok().out()) {
        let sub = t.run(&[top.as_str(), "--help"]).ok().out();
        let nested = commands_in(&sub);
        if nested.is_empty() {
            all.push(top);
        } else {
            all.extend(nested.into_iter().map(|s| format!("{top} {s}")));
        }
    }
    all
}

#[test]
fn every_command_has_rows() {
    let table = table();
    let listed = listed_commands();
    assert!(listed.len() > 30, "too few commands found: {listed:?}");
    let mut missing = Vec::new();
    for command in &listed {
        if EXEMPT.iter().any(|(c, _)| c == command) {
            continue;
        }
        let classes: Vec<Class> = table
            .iter()
            .filter(|r| r.command == command)
            .map(|r| r.class)
            .collect();
        let ok_elsewhere = NO_OK_ROW.iter().any(|(c, _)| c == command);
        if !(classes.contains(&Ok) || ok_elsewhere) || !classes.contains(&BadFlag) {
            missing.push(format!("{command}: {classes:?}"));
        }
    }
    assert!(
        missing.is_empty(),
        "commands without Ok and BadFlag rows in the exit-code table: {missing:#?}"
    );
    // And no row names a command that is not there.
    for r in &table {
        assert!(
            r.command == "help" || listed.iter().any(|c| c == r.command),
            "row for unknown command {}",
            r.command
        );
    }
}
