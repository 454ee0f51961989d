//! Unit tests of private files: modes, refusals, leftovers, signals.

use super::leftovers::leftover_pid;
use super::*;
use std::cell::Cell;
use std::os::unix::fs::PermissionsExt;

thread_local! {
    pub(super) static DIR_SYNCS: Cell<usize> = const { Cell::new(0) };
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn writes_0600_replaces_regular_files_and_syncs_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    let before = DIR_SYNCS.with(Cell::get);
    write_private(&path, b"one").unwrap();
    assert_eq!(DIR_SYNCS.with(Cell::get), before + 1);
    write_private(&path, b"two").unwrap();
    assert_eq!(DIR_SYNCS.with(Cell::get), before + 2);
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(names(dir.path()), ["out"]);
    // A key file is never overwritten.
    let e = create_private(&path, b"three").unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
    create_private(&dir.path().join("key"), b"k").unwrap();
    assert_eq!(DIR_SYNCS.with(Cell::get), before + 3);
    assert_eq!(names(dir.path()), ["key", "out"]);
}

#[test]
fn uncommitted_files_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    std::fs::write(&path, b"old").unwrap();
    let mut f = PrivateFile::create(&path, Existing::Replace).unwrap();
    f.write_all(b"secret prefix").unwrap();
    drop(f);
    assert_eq!(names(dir.path()), ["out"]);
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
}

#[test]
fn fifos_devices_folders_and_symlinks_are_refused() {
    // Only paths inside the test's own folder: a regression must not be
    // able to replace a system file (an earlier version of this test
    // named `/dev/stdout` and, as root with stdout redirected to a file,
    // replaced it).
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let to_null = dir.path().join("to-null");
    std::os::unix::fs::symlink("/dev/null", &to_null).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, b"keep").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let mut cases = vec![
        (fifo.clone(), "FIFO"),
        (to_null.clone(), "a symbolic link (to /dev/null)"),
        (link.clone(), "a symbolic link"),
        (dangling.clone(), "a symbolic link"),
        (dir.path().to_path_buf(), "a directory"),
        (dir.path().join("."), "a directory"),
        (PathBuf::from("/"), "not a file path"),
    ];
    // A device of the test's own, where the test may make one (root).
    let dev = dir.path().join("null");
    let cdev = CString::new(dev.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid path; (1, 3) is the null device.
    if unsafe { libc::mknod(cdev.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) } == 0 {
        cases.push((dev, "device"));
    } else {
        assert_ne!(
            unsafe { libc::geteuid() },
            0,
            "root could not make a device node"
        );
    }
    for (path, needle) in &cases {
        let e = write_private(path, b"secret").unwrap_err();
        assert!(
            matches!(e, Error::UnsafePath { .. } | Error::Exists { .. }),
            "{e}"
        );
        assert!(e.to_string().contains(needle), "{path:?}: {e}");
    }
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let e = write_private(&sub, b"secret").unwrap_err();
    assert!(e.to_string().contains("directory"), "{e}");
    // Links stay links, their targets untouched; nothing is created.
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read(&elsewhere).unwrap(), b"keep");
    assert!(!dir.path().join("nowhere").exists());
    // A regular file is replaced.
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"old").unwrap();
    write_private(&plain, b"secret").unwrap();
    assert_eq!(std::fs::read(&plain).unwrap(), b"secret");
}

#[test]
fn leftovers_of_dead_processes_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let leftover = format!("{TEMP_PREFIX}{dead}-0123456789ab");
    let live = format!("{TEMP_PREFIX}{}-0123456789ab", std::process::id());
    let other = ".tresor-tmp-notours";
    // An older version's name: removed once idle for an hour.
    let (legacy_old, legacy_new) = (".tresor-tmp-Ab3dE9", ".tresor-tmp-Zy1xW2");
    for n in [&leftover, &live, other, legacy_old, legacy_new] {
        std::fs::write(dir.path().join(n), b"plaintext prefix").unwrap();
    }
    let hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    File::options()
        .write(true)
        .open(dir.path().join(legacy_old))
        .unwrap()
        .set_modified(hours_ago)
        .unwrap();
    // A link with the pattern is not followed or removed.
    let link = format!("{TEMP_PREFIX}{dead}-ba9876543210");
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join(&link)).unwrap();
    write_private(&dir.path().join("out"), b"x").unwrap();
    let mut want = vec![
        live.clone(),
        link.clone(),
        other.to_string(),
        legacy_new.to_string(),
        "out".into(),
    ];
    want.sort();
    assert_eq!(names(dir.path()), want);
    assert_eq!(remove_leftovers(dir.path()), 0);
}

#[test]
fn the_named_fallback_writes_the_same_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    for existing in [Existing::Replace, Existing::Refuse] {
        let mut f = PrivateFile::create_with(&path, existing, false).unwrap();
        let name = f.temp.as_ref().unwrap().name.to_str().unwrap().to_string();
        assert_eq!(leftover_pid(name.as_bytes()), Some(std::process::id()));
        assert!(names(dir.path()).contains(&name));
        let mode = f.file.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        f.write_all(b"secret prefix").unwrap();
        drop(f);
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
        let before = DIR_SYNCS.with(Cell::get);
        let mut f = PrivateFile::create_with(&path, existing, false).unwrap();
        f.write_all(b"whole").unwrap();
        f.commit().unwrap();
        assert_eq!(DIR_SYNCS.with(Cell::get), before + 1);
        assert_eq!(names(dir.path()), ["out"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn leftover_names_are_recognised_exactly() {
    assert_eq!(leftover_pid(b".tresor-tmp-42-0123456789ab"), Some(42));
    for n in [
        &b".tresor-tmp-42-0123456789a"[..],
        b".tresor-tmp--0123456789ab",
        b".tresor-tmp-4x-0123456789ab",
        b".tresor-tmp-abcdef",
        b"tresor-tmp-42-0123456789ab",
    ] {
        assert_eq!(leftover_pid(n), None, "{}", String::from_utf8_lossy(n));
    }
}
