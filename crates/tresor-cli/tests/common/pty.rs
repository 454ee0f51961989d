//! Running a program on a fresh pseudo-terminal that `pty_driver.py`
//! drives (its controlling terminal and stdio), for tests of prompts and
//! of interactive programs under `tresor run`. Needs `python3`.

use super::*;

const DRIVER: &str = include_str!("pty_driver.py");

/// One program run on a pseudo-terminal.
pub struct TtyRun {
    pub exit: i32,
    pub transcript: Vec<u8>,
}

impl TtyRun {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.transcript).into_owned()
    }
}

pub enum Step<'a> {
    /// Waits for the text (after the previous match).
    Expect(&'a str),
    /// Types the text once the terminal's echo is off (a hidden prompt).
    Send(&'a str),
    /// Types the text at once (a shell's command line, a control key).
    Type(&'a str),
    /// Waits until every process whose PID the named file (in the test's
    /// folder) lists is stopped (state T).
    Stopped(&'a str),
    /// Waits until none of those processes is stopped.
    Running(&'a str),
}
pub use Step::{Expect, Running, Send, Stopped, Type};

/// Runs `argv` on a fresh pty in `t`'s folder with `t`'s environment
/// (vault, HOME, XDG folders; no credential) plus `extra`.
pub fn on_tty(t: &Tresor, argv: &[&str], extra: &[(&str, &str)], steps: &[Step<'_>]) -> TtyRun {
    let mut env = serde_json::Map::new();
    env.insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
    env.insert("TRESOR_VAULT".into(), t.vault.display().to_string().into());
    env.insert("HOME".into(), t.dir.path().display().to_string().into());
    let xdg = t.path("xdg").display().to_string();
    env.insert("XDG_DATA_HOME".into(), xdg.into());
    let xdg_config = t.path("xdg-config").display().to_string();
    env.insert("XDG_CONFIG_HOME".into(), xdg_config.into());
    env.insert("TERM".into(), "dumb".into());
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    let steps: Vec<serde_json::Value> = steps
        .iter()
        .map(|s| match s {
            Expect(text) => serde_json::json!(["expect", text]),
            Send(text) => serde_json::json!(["send", text]),
            Type(text) => serde_json::json!(["type", text]),
            Stopped(file) => serde_json::json!(["stopped", file]),
            Running(file) => serde_json::json!(["running", file]),
        })
        .collect();
    let spec = serde_json::json!({
        "argv": argv,
        "env": env,
        "cwd": t.dir.path(),
        "timeout": 60,
        "steps": steps,
    });
    let out = clean_command("python3")
        .arg("-c")
        .arg(DRIVER)
        .arg(spec.to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("python3 runs the pty driver (scripts/test installs it)");
    assert!(
        out.status.success(),
        "pty driver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let transcript = unbase64(report["transcript"].as_str().unwrap());
    let run = TtyRun {
        exit: i32::try_from(report["exit"].as_i64().unwrap()).unwrap(),
        transcript,
    };
    assert!(
        report["error"].is_null(),
        "{argv:?} on a terminal: {}\ntranscript:\n{}",
        report["error"],
        run.text()
    );
    run
}
