//! `tresor scan`: a planted stored value (and its base64 form) in a
//! git-staged file, nothing in a clean tree, binary and huge files skipped,
//! `.gitignore` honoured, history, and the pre-commit hook.

mod common;

use std::path::Path;
use std::process::Command;

use common::Tresor;

const VALUE: &str = "planted-secret-Value-0042!";

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A vault holding app/token, and a git repository in `repo/`.
fn setup() -> Tresor {
    let t = Tresor::with_key();
    t.run_in(&["set", "app/token"], VALUE.as_bytes()).ok();
    t.run_in(&["set", "app/pin"], b"1234").ok();
    std::fs::create_dir(t.path("repo")).unwrap();
    git(&t.path("repo"), &["init", "-q"]);
    t.write("repo/README.md", b"# a clean project\n");
    git(&t.path("repo"), &["add", "."]);
    git(&t.path("repo"), &["commit", "-qm", "init"]);
    t
}

fn scan_in(t: &Tresor, dir: &str, args: &[&str]) -> common::Out {
    let mut cmd = t.cmd(&[&["scan"], args].concat()).into_command();
    cmd.current_dir(t.path(dir));
    let out = cmd.output().unwrap();
    let out = common::Out {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: out.stderr,
    };
    assert!(
        !out.out().contains(VALUE) && !out.err().contains(VALUE),
        "the value leaked"
    );
    assert!(!out.err().contains("panicked"));
    out
}

#[test]
fn a_staged_value_and_its_base64_are_found_and_a_clean_tree_passes() {
    let t = setup();
    scan_in(&t, "repo", &["--staged"]).ok();
    scan_in(&t, "repo", &[]).ok().err_has(&[
        "0 findings",
        "against 1 stored secret (1 shorter than 8 bytes not searched)",
    ]);

    let b64 = common::base64(VALUE.as_bytes());
    t.write(
        "repo/src/config.py",
        format!("# settings\nTOKEN = \"{VALUE}\"\n").as_bytes(),
    );
    t.write(
        "repo/deploy.yaml",
        format!("a: 1\nb:\n  token: {b64}\n").as_bytes(),
    );
    // Only what is staged counts for --staged.
    scan_in(&t, "repo", &["--staged"]).ok();
    git(&t.path("repo"), &["add", "src/config.py", "deploy.yaml"]);
    // The working copy may differ: the index is what gets committed.
    t.write("repo/src/config.py", b"# fixed in the working copy only\n");
    let out = scan_in(&t, "repo", &["--staged"]);
    out.code(1);
    assert_eq!(
        out.out(),
        "deploy.yaml:3:10: secret 'app/token' (base64)\nsrc/config.py:2:10: secret 'app/token' (raw)\n"
    );
    let json = scan_in(&t, "repo", &["--staged", "--json"]);
    let report = json.code(1).json();
    assert_eq!(report["findings"].as_array().unwrap().len(), 2);
    assert_eq!(report["findings"][0]["what"], "app/token");
    assert_eq!(report["findings"][0]["encoding"], "base64");
    assert_eq!(report["secrets_too_short"], 1);

    // --history: the lines recent commits added.
    git(&t.path("repo"), &["commit", "-qm", "leak"]);
    let out = scan_in(&t, "repo", &["--history", "1"]);
    out.code(1);
    assert!(
        out.out()
            .contains(":src/config.py:2:10: secret 'app/token' (raw)"),
        "{}",
        out.out()
    );
    scan_in(&t, "repo", &["--history", "0"]).ok();
}

#[test]
fn token_shapes_are_found_without_the_vault() {
    let t = Tresor::new();
    t.write(
        "w/k.txt",
        b"aws = AKIAIOSFODNN7EXAMPLE\n-----BEGIN OPENSSH PRIVATE KEY-----\n",
    );
    let out = scan_in(&t, "w", &[]);
    out.code(1).err_has(&["no vault at", "token shapes only"]);
    assert_eq!(
        out.out(),
        "k.txt:1:7: token: aws-access-key-id\nk.txt:2:1: token: private-key\n"
    );
    scan_in(&t, "w", &["--shapes-only", "--json"]).code(1);
}

#[test]
fn binary_huge_and_ignored_files_are_skipped_and_counted() {
    let t = setup();
    t.write("repo/data.bin", &[VALUE.as_bytes(), &[0u8; 16]].concat());
    t.write(
        "repo/big.txt",
        format!("{VALUE}\n{}", "x".repeat(4096)).as_bytes(),
    );
    t.write("repo/.gitignore", b"build/\n");
    t.write("repo/build/out.txt", VALUE.as_bytes());
    let out = scan_in(&t, "repo", &["--max-size", "1K"]);
    out.ok()
        .err_has(&["0 findings", "skipped 1 binary, 1 larger than 1024 bytes"]);
    let out = scan_in(&t, "repo", &["--max-size", "1K", "--no-ignore", "--json"]);
    let report = out.code(1).json();
    assert_eq!(report["findings"][0]["path"], "build/out.txt");
    assert_eq!(
        (
            report["skipped_binary"].as_u64(),
            report["skipped_large"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // A path named explicitly; a missing one is unavailable (exit 6), as a
    // missing input is for every command.
    scan_in(&t, "repo", &["big.txt"]).code(1);
    scan_in(&t, "repo", &["missing"])
        .code(6)
        .err_has(&["missing"]);
    scan_in(&t, "repo", &["--max-size", "lots"]).code(2);
}

#[test]
fn the_pre_commit_hook_is_installed_once_and_refuses_a_leaking_commit() {
    let t = setup();
    let out = scan_in(&t, "repo", &["--install-hook"]);
    out.ok().err_has(&["installed", "pre-commit"]);
    let hook = t.path("repo/.git/hooks/pre-commit");
    let text = std::fs::read_to_string(&hook).unwrap();
    assert!(text.starts_with("#!/bin/sh") && text.contains("exec tresor scan --staged"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&hook).unwrap().permissions().mode() & 0o777,
        0o755
    );
    scan_in(&t, "repo", &["--install-hook"])
        .ok()
        .err_has(&["already"]);
    // Someone else's hook is never replaced.
    std::fs::write(&hook, "#!/bin/sh\necho mine\n").unwrap();
    scan_in(&t, "repo", &["--install-hook"])
        .code(2)
        .err_has(&["already exists"]);
    assert_eq!(
        std::fs::read_to_string(&hook).unwrap(),
        "#!/bin/sh\necho mine\n"
    );
}
