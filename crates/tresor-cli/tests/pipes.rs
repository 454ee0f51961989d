//! A reader that stops early (`| head`): for data (a value, an envelope,
//! an age file) an error, exit 6, said once; for listings not an error.
//! Every printing command on a closed stdout is in tests/exit_contract.rs.

mod common;

use common::*;

/// Runs `script` under bash with the binary as $TRESOR in `t`'s folder and
/// environment; returns stdout and stderr.
fn sh(t: &Tresor, script: &str) -> (String, String) {
    // The environment a run of `t` gets (vault, key file, HOME, XDG).
    let cmd = t.cmd::<&str>(&[]).into_command();
    let mut bash = clean_command("bash");
    bash.args(["-c", script])
        .env("TRESOR", BIN)
        .current_dir(t.dir.path());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => bash.env(k, v),
            None => bash.env_remove(k),
        };
    }
    let out = bash.output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn data_cut_short_is_one_error_and_listings_are_not() {
    let t = Tresor::with_key();
    t.run(&["key", "create", "f/age", "--type", "age"]).ok();
    t.write("big", &filler(4 << 20, 3));
    for i in 0..300 {
        t.run_in(&["set", &format!("many/{i:03}")], b"v").ok();
    }
    t.run_in(&["set", "big/value"], &filler(200_000, 9)).ok();
    let (out, err) = sh(
        &t,
        r#"
        "$TRESOR" encrypt --key f/age big | head -c 1 > /dev/null; echo "encrypt ${PIPESTATUS[0]}"
        "$TRESOR" get big/value | head -c 1 > /dev/null; echo "get ${PIPESTATUS[0]}"
        "$TRESOR" ls | head -n 1 > /dev/null; echo "ls ${PIPESTATUS[0]}"
        "$TRESOR" completions bash | head -n 1 > /dev/null; echo "completions ${PIPESTATUS[0]}"
        "$TRESOR" audit log | head -n 1 > /dev/null; echo "audit ${PIPESTATUS[0]}"
        "#,
    );
    for line in ["encrypt 6", "get 6", "ls 0", "completions 0", "audit 0"] {
        assert!(out.contains(line), "{line}:\n{out}\n{err}");
    }
    // One error line each for the two data commands, with one prefix.
    assert_eq!(err.matches("tresor: error:").count(), 2, "{err}");
    assert_eq!(
        err.matches("tresor: error: stdout is unavailable: the reader closed the pipe")
            .count(),
        2,
        "{err}"
    );
    assert!(!err.contains("output: output"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The rule is in --help.
#[test]
fn help_states_the_pipe_rule() {
    let t = Tresor::new();
    let help = t.run(&["--help"]).ok().out();
    assert!(help.contains("Pipes:") && help.contains("exit 6"), "{help}");
}
