//! `tresor run`: values in the environment and in files, exit codes,
//! signals passed on, file folders removed (after a normal exit, a SIGTERM
//! to tresor, and a SIGKILL followed by a later run), an interactive
//! program on a terminal (Ctrl-C, and Ctrl-Z / `fg` under a real
//! interactive bash), and `--redact`. The programs run are `bash`
//! scripts that report what they saw.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::pty::{Expect, Running, Send, Stopped, Type, on_tty};
use common::*;

const VALUE: &str = "s3cret-Value-4f9a";

fn vault_with(values: &[(&str, &str)]) -> Tresor {
    let t = Tresor::with_key();
    for (name, value) in values {
        t.run_in(&["set", name], value.as_bytes()).ok();
    }
    t
}

fn run_args<'a>(before: &[&'a str], script: &'a str) -> Vec<&'a str> {
    let mut args = vec!["run"];
    args.extend_from_slice(before);
    args.extend_from_slice(&["--", "bash", "-c", script]);
    args
}

/// Starts `tresor ARGS` with stdout piped, and waits for the program's
/// first line (`ready …`).
fn start(t: &Tresor, args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>, String) {
    let mut cmd = t.cmd(args).into_command();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("ready"), "first line: {line:?}");
    (child, out, line.trim_end().to_string())
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill on a child of this test.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn values_reach_the_environment_and_the_exit_code_is_the_programs() {
    let t = vault_with(&[("db/pass", VALUE)]);
    let out = t
        .cmd(&run_args(
            &["--env", "DB_PASS=db/pass"],
            // The value, an inherited variable, and tresor's own command
            // line (the parent's), which must not hold the value.
            "echo \"db=$DB_PASS inherited=$KEEP\"; \
             tr '\\0' ' ' < /proc/$PPID/cmdline; echo; exit 7",
        ))
        .env("KEEP", "kept")
        .env("DB_PASS", "inherited-value-replaced")
        .run();
    out.code(7);
    let text = out.out();
    assert!(
        text.contains(&format!("db={VALUE} inherited=kept")),
        "{text}"
    );
    let cmdline = text.lines().nth(1).unwrap();
    assert!(cmdline.contains("DB_PASS=db/pass"), "{cmdline}");
    assert!(!cmdline.contains(VALUE), "{cmdline}");
    assert!(!out.err().contains(VALUE));

    t.run(&run_args(&[], "exit 0")).code(0);
    t.run(&run_args(&[], "exit 255")).code(255);
    // 128+N for a program ended by signal N.
    t.run(&run_args(&[], "kill -TERM $$")).code(128 + 15);
    t.run(&run_args(&[], "kill -KILL $$")).code(128 + 9);
    t.run(&run_args(&[], "kill -SEGV $$")).code(128 + 11);
}

#[test]
fn the_program_gets_no_descriptor_of_tresors() {
    let t = vault_with(&[("db/pass", VALUE)]);
    let list = "ls /proc/self/fd | sort -n | tr '\\n' ' '";
    let out = t.run(&run_args(&["--env", "A=db/pass"], list));
    out.ok();
    // Exactly what the same program gets when run without tresor (what
    // this test process passes down, and the one ls opens itself).
    let alone = clean_command("bash")
        .args(["-c", list])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.out(), String::from_utf8(alone.stdout).unwrap());
}

#[test]
fn a_missing_secret_stops_before_the_program_runs() {
    let t = vault_with(&[("db/pass", VALUE)]);
    let marker = t.path("ran");
    let script = format!("touch {}", marker.display());
    let out = t.run(&run_args(
        &["--env", "A=db/pass", "--env", "API_KEY=openai/key"],
        &script,
    ));
    out.code(1)
        .err_has(&["'openai/key'", "API_KEY", "not found"]);
    assert!(!marker.exists(), "the program ran");
    let json = t
        .run(&["--json", "run", "--env", "X=no/such", "--", "true"])
        .code(1)
        .err_json();
    assert_eq!(json["error"]["kind"], "not_found");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("(for X)")
    );
    // A command that does not exist is not found either.
    t.run(&["run", "--", "no-such-command-4f9a"])
        .code(1)
        .err_has(&["no-such-command-4f9a"]);
}

#[test]
fn bad_deliveries_are_usage_errors() {
    let t = vault_with(&[("db/pass", VALUE)]);
    t.run(&["run", "--env", "NOEQUALS", "--", "true"])
        .code(2)
        .err_has(&["VAR=NAME"]);
    t.run(&["run", "--env", "1BAD=db/pass", "--", "true"])
        .code(2)
        .err_has(&["environment variable"]);
    t.run(&[
        "run",
        "--env",
        "A=db/pass",
        "--file",
        "A=db/pass",
        "--",
        "true",
    ])
    .code(2)
    .err_has(&["A is given twice"]);
    t.run(&["run", "--env", "A=db/pass"]).code(2);
}

#[test]
fn prefix_names_variables_after_the_rest_of_the_name() {
    let t = vault_with(&[
        ("llm/api_key", "first-value"),
        ("llm/org.id", "org-second-value"),
        ("llm/prod/base-url", "https://example.invalid/v1"),
        ("other/x", "not-given"),
    ]);
    let out = t.run(&run_args(
        &["--prefix", "llm"],
        "echo \"$API_KEY|$ORG_ID|$PROD_BASE_URL|${X:-unset}\"",
    ));
    out.ok();
    assert_eq!(
        out.out().trim(),
        "first-value|org-second-value|https://example.invalid/v1|unset"
    );
    // Two names giving one variable: an error before anything runs.
    t.run_in(&["set", "llm/api-key"], b"another").ok();
    t.run(&run_args(&["--prefix", "llm/"], "true"))
        .code(2)
        .err_has(&["API_KEY is given twice"]);
}

#[test]
fn each_signal_is_passed_on_once_and_tresor_outlives_it() {
    let t = vault_with(&[("db/pass", VALUE)]);
    let log = t.path("signals.log");
    let script = format!(
        "for s in INT HUP QUIT USR1 USR2 WINCH; do trap \"echo $s >> {log}\" $s; done; \
         trap 'echo TERM >> {log}; exit 3' TERM; \
         echo ready; while :; do sleep 0.02; done",
        log = log.display()
    );
    let (mut child, _out, _) = start(&t, &run_args(&["--env", "A=db/pass"], &script));
    let names = ["INT", "HUP", "QUIT", "USR1", "USR2", "WINCH"];
    let sigs = [
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ];
    for (i, sig) in sigs.iter().enumerate() {
        signal(&child, *sig);
        let want = names[..=i].join("\n") + "\n";
        wait_for(names[i], || {
            std::fs::read_to_string(&log).unwrap_or_default() == want
        });
        // tresor itself is still running.
        assert!(
            child.try_wait().unwrap().is_none(),
            "tresor ended on {}",
            names[i]
        );
    }
    signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    let seen = std::fs::read_to_string(&log).unwrap();
    assert_eq!(seen, names.join("\n") + "\nTERM\n", "each exactly once");
}

#[test]
fn a_program_that_ignores_sigterm_keeps_running_and_tresor_waits() {
    let t = vault_with(&[("db/pass", VALUE)]);
    let go = t.path("go");
    let script = format!(
        "trap '' TERM; echo ready; while [ ! -e {go} ]; do sleep 0.02; done; \
         echo \"still here $A\"; exit 5",
        go = go.display()
    );
    let (mut child, mut out, _) = start(&t, &run_args(&["--file", "A=db/pass"], &script));
    signal(&child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "tresor did not wait");
    std::fs::write(&go, b"").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("still here /"), "{line}");
    assert_eq!(child.wait().unwrap().code(), Some(5));
    // Its file was there while it ran, and is gone now.
    let path = PathBuf::from(line.trim_end().strip_prefix("still here ").unwrap());
    assert!(!path.parent().unwrap().exists());
}

fn folder_of(line: &str) -> PathBuf {
    let path = Path::new(line.strip_prefix("ready ").unwrap());
    path.parent().unwrap().to_path_buf()
}

#[test]
fn files_are_private_and_removed_after_a_normal_exit() {
    let t = vault_with(&[("tls/key", VALUE), ("db/pass", "second-value")]);
    let out = t.run(&run_args(
        &["--file", "TLS_KEY=tls/key", "--file", "DB=db/pass"],
        "cat \"$TLS_KEY\"; echo; cat \"$DB\"; echo; \
         stat -c '%a %U' \"$TLS_KEY\" \"$DB\" \"$(dirname \"$TLS_KEY\")\"; echo \"$TLS_KEY\"",
    ));
    out.ok();
    let text = out.out();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], VALUE);
    assert_eq!(lines[1], "second-value");
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let me = me.trim();
    assert_eq!(lines[2], format!("600 {me}"));
    assert_eq!(lines[3], format!("600 {me}"));
    assert_eq!(lines[4], format!("700 {me}"));
    let file = Path::new(lines[5]);
    let folder = file.parent().unwrap();
    let name = folder.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("tresor-run-"), "{name}");
    assert!(!folder.exists(), "{} was left", folder.display());
    // On tmpfs here (the test machine has /dev/shm): no warning.
    if tresor::run::files_base().1 {
        assert!(!out.err().contains("memory-backed"), "{}", out.err());
    }
}

#[test]
fn files_are_removed_when_tresor_gets_sigterm() {
    let t = vault_with(&[("tls/key", VALUE)]);
    let (mut child, _out, line) = start(
        &t,
        &run_args(
            &["--file", "TLS_KEY=tls/key"],
            "echo \"ready $TLS_KEY\"; while :; do sleep 0.02; done",
        ),
    );
    let folder = folder_of(&line);
    assert!(folder.is_dir());
    signal(&child, libc::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(128 + 15));
    assert!(!folder.exists(), "{} was left", folder.display());
}

#[test]
fn a_folder_left_by_a_killed_tresor_is_removed_by_the_next_run() {
    let t = vault_with(&[("tls/key", VALUE)]);
    let (mut child, _out, line) = start(
        &t,
        &run_args(
            &["--file", "TLS_KEY=tls/key"],
            "echo \"ready $TLS_KEY\"; while :; do sleep 0.02; done",
        ),
    );
    let folder = folder_of(&line);
    // tresor and its program (in tresor's process group) killed outright.
    let pgid = child.id() as libc::pid_t;
    // SAFETY: kill on the test's own child's process group.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    child.wait().unwrap();
    assert!(
        folder.join("TLS_KEY").is_file(),
        "nothing was left to clean up"
    );
    // Any later run (even one without files) removes it.
    t.run(&["run", "--", "true"]).ok();
    assert!(!folder.exists(), "{} was left", folder.display());
}

#[test]
fn an_interactive_program_has_the_terminal() {
    let t = vault_with(&[("db/pass", VALUE)]);
    let key = t.key.display().to_string();
    // Reads hidden input, then counts Ctrl-C: the terminal sends SIGINT to
    // the whole foreground group, and tresor must neither die of it nor
    // pass it on a second time.
    let script = "[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo on-a-tty; \
                  stty -echo; printf 'Password: '; read p; echo; echo \"got $p with $A\"; \
                  n=0; trap 'n=$((n+1))' INT; echo armed; \
                  while [ $n -lt 1 ]; do sleep 0.02; done; sleep 0.3; \
                  stty echo; echo \"ints=$n\"; exit 42";
    let run = on_tty(
        &t,
        &[BIN, "run", "--env", "A=db/pass", "--", "bash", "-c", script],
        &[("TRESOR_KEY_FILE", &key)],
        &[
            Expect("on-a-tty"),
            Expect("Password: "),
            Send("typed-123\n"),
            Expect(&format!("got typed-123 with {VALUE}")),
            Expect("armed"),
            Send("\x03"),
            Expect("ints=1"),
        ],
    );
    assert_eq!(run.exit, 42, "{}", run.text());
}

/// Job control as if the program ran alone: an interactive `bash -i` on a
/// pseudo-terminal runs `tresor run`; Ctrl-Z stops tresor and the program
/// together (the shell reports the job stopped, and both are in state T),
/// `fg` resumes both (the program reads the terminal again, tresor waits
/// for it), and Ctrl-C reaches the program, whose exit code the shell sees.
#[test]
fn ctrl_z_stops_tresor_and_the_program_together_and_fg_resumes_both() {
    let t = vault_with(&[("db/pass", VALUE)]);
    let key = t.key.display().to_string();
    // The program: writes its PID and its parent's (tresor's), then reads
    // the terminal; once it has a line it reports its parent's state
    // (running or sleeping, not stopped); Ctrl-C ends it with 5.
    t.write(
        "child.sh",
        b"echo \"$$ $PPID\" > pids\n\
          trap 'echo int-seen; exit 5' INT\n\
          echo ready\n\
          read a\n\
          for i in 1 2 3 4 5 6 7 8 9 10; do s=$(cut -d\" \" -f3 /proc/$PPID/stat); \
          [ \"$s\" != T ] && break; sleep 0.05; done\n\
          [ \"$s\" = T ] && s=stopped || s=running\n\
          echo \"got $a with $A, parent $s\"\n\
          echo armed\n\
          read b\n\
          echo no-int; exit 1\n",
    );
    // What the shell sees of both after Ctrl-Z.
    let states = "for p in $(cat pids); do cut -d' ' -f3 /proc/$p/stat; done | tr -d '\\n'; \
                  echo ':end'\n";
    // Lines for the shell are sent once its line editor has the terminal
    // (echo off), so none is typed while it is still setting it up.
    let run = on_tty(
        &t,
        &["/bin/bash", "--norc", "--noprofile", "-i"],
        &[("TRESOR_KEY_FILE", &key), ("T", BIN), ("PS1", "prompt> ")],
        &[
            Expect("prompt> "),
            Send("$T run --env A=db/pass -- bash ./child.sh\n"),
            Expect("ready"),
            // Ctrl-Z: the terminal stops the whole foreground job. The
            // shell reports the job stopped once tresor is; the program
            // stops as soon as it is scheduled, and until it has, its
            // pending read of the terminal would take the next line typed.
            Type("\x1a"),
            Expect("Stopped"),
            Stopped("pids"),
            Expect("prompt> "),
            Send(states),
            Expect("TT:end"),
            Expect("prompt> "),
            // `fg` hands the terminal back and continues both; the line is
            // typed once neither is stopped, and the program reads it.
            Send("fg\n"),
            Running("pids"),
            Type("typed-after-fg\n"),
            Expect(&format!("got typed-after-fg with {VALUE}, parent running")),
            Expect("armed"),
            // Ctrl-C: the program's trap runs; tresor passes on its exit code.
            Type("\x03"),
            Expect("int-seen"),
            Expect("prompt> "),
            Send("echo \"rc=$?\"\n"),
            Expect("rc=5"),
            Send("exit\n"),
        ],
    );
    assert_eq!(run.exit, 0, "{}", run.text());
}

#[test]
fn redact_replaces_values_and_encodings_in_stdout_and_stderr() {
    let t = vault_with(&[("api/key", VALUE), ("short", "ab")]);
    let out = t.run(&run_args(
        &["--env", "K=api/key", "--env", "S=short", "--redact"],
        // The value whole, split across two writes and lines, base64, hex,
        // on stderr, and a value too short to redact.
        "echo \"plain $K\"; printf 's3cret-Va'; printf 'lue-4f9a\\n'; \
         printf '%s' \"$K\" | base64; printf '%s' \"$K\" | od -An -tx1 | tr -d ' \\n'; echo; \
         echo \"err $K\" >&2; echo \"short $S\"",
    ));
    out.ok();
    let text = out.out();
    assert!(!text.contains(VALUE), "{text}");
    assert!(!text.contains("czNjcmV0LVZhbHVlLTRmOWE"), "{text}");
    assert_eq!(text.matches("[redacted:api/key]").count(), 4, "{text}");
    assert!(text.contains("short ab"), "{text}");
    assert!(
        out.err().contains("err [redacted:api/key]"),
        "{}",
        out.err()
    );
    assert!(
        out.err().contains("'short' is shorter than 4 bytes"),
        "{}",
        out.err()
    );
}

#[test]
fn redacted_output_is_passed_on_promptly_and_the_exit_code_kept() {
    let t = vault_with(&[("api/key", VALUE)]);
    // The program waits for its input after each prompt: output held back
    // would never arrive.
    let mut cmd = t
        .cmd(&run_args(
            &["--env", "K=api/key", "--redact"],
            "printf 'name? '; read n; printf \"hello $n, s3c\"; read m; echo \"$K bye\"; exit 9",
        ))
        .into_command();
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut read_until = |want: &str| {
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&got).ends_with(want) {
            use std::io::Read;
            assert_eq!(
                stdout.read(&mut byte).unwrap(),
                1,
                "{:?}",
                String::from_utf8_lossy(&got)
            );
            got.push(byte[0]);
        }
        String::from_utf8(got).unwrap()
    };
    read_until("name? ");
    use std::io::Write;
    stdin.write_all(b"ann\n").unwrap();
    // "s3c" could start the value: held back only briefly.
    assert_eq!(read_until("hello ann, s3c"), "hello ann, s3c");
    stdin.write_all(b"\n").unwrap();
    assert_eq!(read_until("bye\n"), "[redacted:api/key] bye\n");
    assert_eq!(child.wait().unwrap().code(), Some(9));
}

const DECLARED: &str = r#"
[secrets]
API_KEY = "app/api_key"
LOG_LEVEL = { name = "app/log_level", default = "info" }
OPTIONAL = { name = "app/optional", required = false }
TLS_KEY = { name = "app/tls", as_file = true }

[[stores]]
name = "local"
kind = "vault"

[profiles.ci]
stores = ["local"]

[profiles.ci.secrets]
API_KEY = "ci/api_key"
"#;

fn declared_project() -> Tresor {
    let t = vault_with(&[
        ("app/api_key", VALUE),
        ("app/tls", "-----BEGIN KEY-----"),
        ("ci/api_key", "ci-value-77"),
        ("other/key", "explicit-value"),
    ]);
    t.write("tresor.toml", DECLARED.as_bytes());
    t.run(&["config", "trust"]).ok();
    t
}

#[test]
fn declared_secrets_reach_the_program_as_values_and_files() {
    let t = declared_project();
    let show = "echo \"$API_KEY|$LOG_LEVEL|${OPTIONAL-unset}|$(cat \"$TLS_KEY\")|$TLS_KEY\"";
    let out = t.run(&run_args(&[], show));
    out.ok();
    let text = out.out();
    let fields: Vec<&str> = text.trim().split('|').collect();
    assert_eq!(
        fields[..4],
        [VALUE, "info", "unset", "-----BEGIN KEY-----"],
        "{text}"
    );
    assert!(fields[4].contains("tresor-run-"), "{text}");
    assert!(!Path::new(fields[4]).exists());
    // The profile's declaration, and an explicit variable over a declared one.
    let out = t.run(&run_args(&["--profile", "ci"], "echo \"$API_KEY\""));
    assert_eq!(out.ok().out().trim(), "ci-value-77");
    let out = t.run(&run_args(
        &["--env", "API_KEY=other/key"],
        "echo \"$API_KEY\"",
    ));
    assert_eq!(out.ok().out().trim(), "explicit-value");
    // --no-declared: only what is named.
    let out = t.run(&run_args(
        &["--no-declared"],
        "echo \"${API_KEY-unset}|${TLS_KEY-unset}\"",
    ));
    assert_eq!(out.ok().out().trim(), "unset|unset");
}

#[test]
fn a_missing_declared_secret_stops_the_run_naming_each() {
    let t = declared_project();
    t.run(&["rm", "app/api_key"]).ok();
    t.run(&["rm", "app/tls"]).ok();
    let marker = t.path("ran");
    let script = format!("touch {}", marker.display());
    t.run(&run_args(&[], &script)).code(1).err_has(&[
        "API_KEY",
        "'app/api_key'",
        "TLS_KEY",
        "'app/tls'",
    ]);
    assert!(!marker.exists(), "the program ran");
    // Without the declarations it runs.
    t.run(&run_args(&["--no-declared"], &script)).ok();
    assert!(marker.exists());
}
