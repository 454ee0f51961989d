use std::os::unix::fs::PermissionsExt;

use super::folder::{Folder, pick};
use super::*;

fn name(n: &str) -> SecretName {
    SecretName::new(n).unwrap()
}

#[test]
fn variables_are_the_rest_of_the_name_upper_cased() {
    let cases = [
        ("openai/", "openai/api_key", "API_KEY"),
        ("openai", "openai/api_key", "API_KEY"),
        ("aws/", "aws/prod/secret-key", "PROD_SECRET_KEY"),
        ("", "db.prod/pass-word", "DB_PROD_PASS_WORD"),
        ("a/b/", "a/b/c.d-e/f", "C_D_E_F"),
    ];
    for (prefix, n, want) in cases {
        assert_eq!(
            variable_for(prefix, &name(n)).unwrap(),
            want,
            "{prefix} {n}"
        );
    }
    // Not a variable: starts with a digit.
    let e = variable_for("keys/", &name("keys/2fa")).unwrap_err();
    assert!(e.to_string().contains("keys/2fa"), "{e}");
    // Not under the prefix at all.
    assert!(variable_for("x/", &name("y/z")).is_err());
    // "open" is not a prefix of "openai/…": prefixes are folders.
    assert!(variable_for("open", &name("openai/key")).is_err());
}

#[test]
fn variable_names_follow_the_portable_rule() {
    for ok in ["A", "_X", "API_KEY_2", "lower"] {
        check_variable(ok).unwrap();
    }
    for bad in ["", "2X", "A-B", "A=B", "A B", "É"] {
        assert!(check_variable(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_plan_refuses_a_variable_twice() {
    let mut plan = Plan::new();
    let item = |v: &str, n: &str| Item {
        variable: v.into(),
        name: name(n),
        delivery: Delivery::Env,
        required: true,
        default: None,
    };
    plan.add(item("A", "x/a")).unwrap();
    let e = plan.add(item("A", "x/b")).unwrap_err();
    assert!(e.to_string().contains("A is given twice"), "{e}");
    assert!(plan.add(item("1A", "x/c")).is_err());
    assert_eq!(plan.items().len(), 1);
}

#[test]
fn exit_codes_are_as_a_shell_reports_them() {
    assert_eq!(Exit::Code(0).code(), 0);
    assert_eq!(Exit::Code(7).code(), 7);
    assert_eq!(Exit::Signal(15).code(), 143);
    assert_eq!(Exit::Signal(9).code(), 137);
}

#[test]
fn the_folder_is_memory_backed_where_one_exists() {
    let dir = tempfile::tempdir().unwrap();
    let shm = Path::new("/dev/shm");
    let b = pick(Some(dir.path()), shm, dir.path());
    if in_memory(shm) {
        // A runtime folder on disk is passed over for /dev/shm.
        assert_eq!(b.path, shm);
        assert!(b.in_memory);
        let b = pick(Some(shm), Path::new("/nonexistent"), dir.path());
        assert_eq!(b.path, shm);
    }
    // Nothing memory-backed: the temporary folder, and it says so.
    let b = pick(None, Path::new("/nonexistent"), dir.path());
    assert_eq!(b.path, dir.path());
    assert_eq!(b.in_memory, in_memory(dir.path()));
}

#[test]
fn folders_and_files_are_private_and_removed_on_drop() {
    let base = tempfile::tempdir().unwrap();
    let mut f = Folder::create(base.path()).unwrap();
    let path = f.path().to_path_buf();
    let file = f.write("TLS_KEY", b"value").unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"value");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&file), 0o600);
    // A second file of the same name is refused, not overwritten.
    assert!(f.write("TLS_KEY", b"other").is_err());
    // Something the program added goes too.
    std::fs::write(path.join("extra"), b"x").unwrap();
    drop(f);
    assert!(!path.exists());
}

#[test]
fn only_folders_of_dead_tresor_processes_are_removed() {
    let base = tempfile::tempdir().unwrap();
    // A PID that runs no process: a child that has exited and been reaped.
    let dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    let mut dead = dead;
    dead.wait().unwrap();
    let left = base
        .path()
        .join(format!("{FOLDER_PREFIX}{dead_pid}-0123456789ab"));
    std::fs::create_dir(&left).unwrap();
    std::fs::write(left.join("KEY"), b"secret").unwrap();
    // Ours (alive), another name, a bad suffix, a symbolic link: kept.
    let alive = base.path().join(format!(
        "{FOLDER_PREFIX}{}-0123456789ab",
        std::process::id()
    ));
    std::fs::create_dir(&alive).unwrap();
    let other = base.path().join("tresor-runner-1-0123456789ab");
    std::fs::create_dir(&other).unwrap();
    let bad = base.path().join(format!("{FOLDER_PREFIX}{dead_pid}-xyz"));
    std::fs::create_dir(&bad).unwrap();
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("keep"), b"k").unwrap();
    let link = base
        .path()
        .join(format!("{FOLDER_PREFIX}{dead_pid}-ba9876543210"));
    std::os::unix::fs::symlink(target.path(), &link).unwrap();

    assert_eq!(remove_leftover_folders(base.path()), 1);
    assert!(!left.exists());
    for kept in [&alive, &other, &bad] {
        assert!(kept.is_dir(), "{}", kept.display());
    }
    assert!(std::fs::symlink_metadata(&link).is_ok());
    assert!(target.path().join("keep").is_file(), "a link was followed");
}

#[test]
fn launch_delivers_values_and_files_and_reports_the_exit() {
    let base = tempfile::tempdir().unwrap();
    let out = base.path().join("out");
    let values = vec![
        Fetched {
            variable: "T_ENV".into(),
            name: name("t/env"),
            delivery: Delivery::Env,
            value: SecretValue::copy_from(b"env-value"),
        },
        Fetched {
            variable: "T_FILE".into(),
            name: name("t/file"),
            delivery: Delivery::File,
            value: SecretValue::copy_from(b"file-value"),
        },
    ];
    let script = format!(
        "printf '%s %s' \"$T_ENV\" \"$(cat \"$T_FILE\")\" > {}; exit 4",
        out.display()
    );
    let args: Vec<OsString> = vec!["-c".into(), script.into()];
    let mut warnings = Vec::new();
    let launched = launch(
        OsStr::new("sh"),
        &args,
        values,
        &Options::default(),
        &mut |w| warnings.push(w.to_string()),
    )
    .unwrap();
    assert_eq!(launched.exit, Exit::Code(4));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "env-value file-value"
    );
    let folder = launched.folder.expect("a folder for the file");
    assert!(!folder.exists());
    assert_eq!(warnings.is_empty(), launched.folder_in_memory);

    let e = launch(
        OsStr::new("no-such-program-4f9a"),
        &[],
        Vec::new(),
        &Options::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
}
