//! Writing secrets to a path the user named: plaintext (`get --out`,
//! `decrypt -o`, `key decrypt --out`), recovery keys and key files. Every
//! such file goes through [`PrivateFile`], one path:
//!
//! - The data is written into a new file of mode 0600 in the target's
//!   folder: an unnamed `O_TMPFILE` where the filesystem supports it, else
//!   a new name (`.tresor-tmp-PID-RANDOM`, `O_CREAT|O_EXCL|O_NOFOLLOW`).
//! - On [`PrivateFile::commit`] it is fsynced, linked in and renamed over
//!   the target (or, for key files, linked only where nothing exists), and
//!   the folder is fsynced so the new name survives a power loss.
//! - An existing FIFO, device, socket or directory at the target is
//!   refused, never opened: plaintext is never written into a file someone
//!   else prepared. A symbolic link at the target is refused too: it is
//!   neither followed nor replaced.
//! - Dropped without `commit` (an error, a failed authentication), nothing
//!   is left: an unnamed file vanishes with its descriptor, a named one is
//!   removed. A named one is also removed when SIGINT, SIGTERM or SIGHUP
//!   ends the process, and leftovers of a process that died otherwise (a
//!   SIGKILL, a crash) are removed by the next write into that folder.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tresor_core::{Error, Result};

/// The name prefix of tresor's named temporary files; the full name is
/// `.tresor-tmp-PID-RANDOM` (the writing process's id, 12 hex digits).
pub const TEMP_PREFIX: &str = ".tresor-tmp-";

/// What to do with a file already at the target path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Replace a regular file by renaming over it; refuse anything else
    /// (a symbolic link included: it is neither followed nor replaced).
    Replace,
    /// Refuse whatever is there (key files are never overwritten).
    Refuse,
}

/// Writes `bytes` to `path` through a [`PrivateFile`], replacing a regular
/// file there.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = PrivateFile::create(path, Existing::Replace)?;
    file.write_all(bytes).map_err(|e| io_error(path, e))?;
    file.commit()
}

/// Writes `bytes` to a new file at `path` through a [`PrivateFile`];
/// fails if anything exists there.
pub fn create_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = PrivateFile::create(path, Existing::Refuse)?;
    file.write_all(bytes).map_err(|e| io_error(path, e))?;
    file.commit()
}

/// A private file being written (see the module docs). Nothing appears at
/// the target until [`PrivateFile::commit`].
pub struct PrivateFile {
    file: File,
    /// The target's folder, open: names are made relative to it.
    dir: File,
    dir_path: PathBuf,
    target: PathBuf,
    /// The target's last component.
    name: CString,
    existing: Existing,
    /// The temporary name, when the file has one.
    temp: Option<Temp>,
}

struct Temp {
    name: CString,
    /// Kept for removal on a terminating signal.
    _guard: Option<signals::Registered>,
}

impl PrivateFile {
    /// Starts a private file for `path`. Fails, before anything is written,
    /// if `path` names a folder, or something other than a regular file is
    /// there (or anything, with [`Existing::Refuse`]).
    pub fn create(path: &Path, existing: Existing) -> Result<Self> {
        Self::create_with(path, existing, !unnamed_disabled())
    }

    fn create_with(path: &Path, existing: Existing, unnamed: bool) -> Result<Self> {
        let name = path
            .file_name()
            .filter(|n| *n != OsStr::new(".") && *n != OsStr::new(".."))
            .ok_or_else(|| Error::UnsafePath {
                path: path.to_path_buf(),
                problem: "not a file path (it names a folder); give a file name".into(),
            })?;
        check_target(path, existing)?;
        let dir_path = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&dir_path)
            .map_err(|e| io_error(&dir_path, e))?;
        remove_leftovers_in(&dir, &dir_path);
        let name = CString::new(name.as_bytes()).map_err(|_| Error::UnsafePath {
            path: path.to_path_buf(),
            problem: "the path holds a NUL byte".into(),
        })?;
        // Absolute, for the signal handler (the working folder may change).
        let dir_path = std::path::absolute(&dir_path).unwrap_or(dir_path);
        let (file, temp) = match unnamed.then(|| open_unnamed(&dir)).flatten() {
            Some(file) => (file, None),
            None => {
                let (file, temp) =
                    open_named(&dir, &dir_path).map_err(|e| io_error(&dir_path, e))?;
                (file, Some(temp))
            }
        };
        Ok(Self {
            file,
            dir,
            dir_path,
            target: path.to_path_buf(),
            name,
            existing,
            temp,
        })
    }

    /// The path the file is written to.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Syncs the data, puts the file at its path (renamed over a regular
    /// file there, or linked only where nothing is, per [`Existing`]), and
    /// syncs the folder.
    pub fn commit(mut self) -> Result<()> {
        let target = self.target.clone();
        self.file.sync_all().map_err(|e| io_error(&target, e))?;
        let temp = match self.temp.take() {
            Some(temp) => temp,
            None => {
                let fd = CString::new(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
                    .expect("no NUL in a number");
                if self.existing == Existing::Refuse {
                    // Linked straight to its name: fails if anything is there.
                    return link_at(&fd, &self.dir, &self.name, true)
                        .map_err(|e| self.commit_error(e))
                        .and_then(|()| self.sync_dir());
                }
                // Linked under a temporary name, then renamed over the
                // target: link(2) never replaces.
                let name = temp_name().map_err(|e| io_error(&self.dir_path, e))?;
                let guard = signals::register(&self.dir_path, &name);
                link_at(&fd, &self.dir, &name, true).map_err(|e| io_error(&self.dir_path, e))?;
                Temp {
                    name,
                    _guard: guard,
                }
            }
        };
        let placed = match self.existing {
            Existing::Replace => rename_at(&self.dir, &temp.name, &self.name),
            Existing::Refuse => link_at(&temp.name, &self.dir, &self.name, false)
                .and_then(|()| unlink_at(&self.dir, &temp.name)),
        };
        if let Err(e) = placed {
            let _ = unlink_at(&self.dir, &temp.name);
            return Err(self.commit_error(e));
        }
        drop(temp);
        self.sync_dir()
    }

    fn commit_error(&self, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::AlreadyExists {
            return Error::UnsafePath {
                path: self.target.clone(),
                problem: "a file appeared there while it was being written; it was left as it is"
                    .into(),
            };
        }
        io_error(&self.target, e)
    }

    fn sync_dir(&self) -> Result<()> {
        sync_dir(&self.dir).map_err(|e| io_error(&self.dir_path, e))
    }
}

impl PrivateFile {
    /// Sets the new file's permission bits (0600 unless changed): for a
    /// file that replaces one whose mode is kept.
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        self.file
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| io_error(&self.target, e))
    }
}

impl Write for PrivateFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for PrivateFile {
    fn drop(&mut self) {
        // Not committed: a named temporary file is removed (an unnamed one
        // vanishes when its descriptor closes).
        if let Some(temp) = self.temp.take() {
            let _ = unlink_at(&self.dir, &temp.name);
        }
    }
}

/// Refuses a target that is not a new path or a regular file (a symbolic
/// link is refused, neither followed nor replaced), or any existing one with
/// [`Existing::Refuse`]: the check [`PrivateFile::create`] makes, for
/// callers that want to fail before other work.
pub fn check_target(path: &Path, existing: Existing) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(path, e)),
    };
    let kind = meta.file_type();
    if existing == Existing::Refuse {
        return Err(Error::Exists {
            path: path.to_path_buf(),
        });
    }
    if kind.is_file() {
        return Ok(());
    }
    if kind.is_symlink() {
        // Neither followed nor replaced: following would write where the
        // link's owner chose, and replacing would swap out a link the user
        // may not own in spirit (as root, `--out /dev/stdout` with stdout
        // redirected to a file would replace the system's `/dev/stdout`).
        let to = std::fs::read_link(path)
            .map(|t| format!(" (to {})", t.display()))
            .unwrap_or_default();
        return Err(Error::UnsafePath {
            path: path.to_path_buf(),
            problem: format!(
                "refusing to write there: it is a symbolic link{to}; tresor neither follows nor \
                 replaces links at an output path (give the path it points to, or remove the \
                 link)"
            ),
        });
    }
    use std::os::unix::fs::FileTypeExt;
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Err(Error::UnsafePath {
        path: path.to_path_buf(),
        problem: format!(
            "refusing to write there: it is {what}; secrets are written only into a new file \
             renamed into place (remove it or choose another path)"
        ),
    })
}

/// Whether unnamed temporary files are turned off (tests of the named
/// fallback: `TRESOR_TEST_NAMED_TEMP=1`).
fn unnamed_disabled() -> bool {
    std::env::var_os("TRESOR_TEST_NAMED_TEMP").is_some_and(|v| v == "1")
}

/// An unnamed file in `dir` (`O_TMPFILE`, 0600), or `None` where the
/// kernel or filesystem has none, or `/proc` (needed to link it) is missing.
fn open_unnamed(dir: &File) -> Option<File> {
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    // SAFETY: a valid directory descriptor and a NUL-terminated path; the
    // returned descriptor is owned by the File.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c".".as_ptr(),
            libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    };
    // EOPNOTSUPP, EISDIR (no O_TMPFILE in the kernel), EINVAL: the fallback.
    (fd >= 0).then(|| unsafe { File::from_raw_fd(fd) })
}

/// A new named file in `dir`: `O_CREAT|O_EXCL|O_NOFOLLOW`, 0600.
fn open_named(dir: &File, dir_path: &Path) -> io::Result<(File, Temp)> {
    loop {
        let name = temp_name()?;
        let guard = signals::register(dir_path, &name);
        // SAFETY: as in `open_unnamed`.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if fd >= 0 {
            let file = unsafe { File::from_raw_fd(fd) };
            return Ok((
                file,
                Temp {
                    name,
                    _guard: guard,
                },
            ));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(e);
        }
    }
}

/// `.tresor-tmp-PID-RANDOM`.
fn temp_name() -> io::Result<CString> {
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(CString::new(format!("{TEMP_PREFIX}{}-{hex}", std::process::id())).expect("no NUL"))
}

/// `linkat(2)`: `from` relative to the working folder (`follow`: through
/// the /proc link of an unnamed file) or to `dir`, to `name` in `dir`.
fn link_at(from: &CStr, dir: &File, name: &CStr, follow: bool) -> io::Result<()> {
    let (from_dir, flags) = if follow {
        (libc::AT_FDCWD, libc::AT_SYMLINK_FOLLOW)
    } else {
        (dir.as_raw_fd(), 0)
    };
    // SAFETY: valid descriptors and NUL-terminated names.
    let rc = unsafe {
        libc::linkat(
            from_dir,
            from.as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn rename_at(dir: &File, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: valid descriptors and NUL-terminated names.
    let rc =
        unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn unlink_at(dir: &File, name: &CStr) -> io::Result<()> {
    // SAFETY: a valid descriptor and a NUL-terminated name.
    let rc = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// fsync(2) of the folder, so a rename or link in it survives a power loss.
fn sync_dir(dir: &File) -> io::Result<()> {
    dir.sync_all()?;
    #[cfg(test)]
    tests::DIR_SYNCS.with(|n| n.set(n.get() + 1));
    Ok(())
}

/// Removes tresor's temporary files left in `dir` by processes that no
/// longer run (killed before they could clean up); returns how many.
/// Only regular files owned by this user are touched, named
/// `.tresor-tmp-PID-RANDOM` with a PID that names no live process, or
/// `.tresor-tmp-XXXXXX` (older versions) untouched for an hour.
pub fn remove_leftovers(dir: &Path) -> usize {
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
    {
        Ok(d) => remove_leftovers_in(&d, dir),
        Err(_) => 0,
    }
}

fn remove_leftovers_in(dir: &File, dir_path: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir_path) else {
        return 0;
    };
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let legacy = is_legacy_temp(file_name.as_bytes());
        if !legacy {
            let Some(pid) = leftover_pid(file_name.as_bytes()) else {
                continue;
            };
            if pid == std::process::id() || process_alive(pid) {
                continue;
            }
        }
        // Not followed: a symbolic link or anything else is left alone.
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.file_type().is_file() || meta.uid() != uid {
            continue;
        }
        // A name without a PID: only once no one has written it for an hour.
        let idle = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > LEGACY_IDLE);
        if legacy && !idle {
            continue;
        }
        let Ok(name) = CString::new(file_name.as_bytes()) else {
            continue;
        };
        if unlink_at(dir, &name).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// How long a temporary file of an older tresor (no PID in its name) must
/// have been left untouched before it counts as a leftover.
const LEGACY_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether `name` is an older tresor's temporary file: `.tresor-tmp-` and
/// six letters or digits (`encrypt -o` / `decrypt -o` of older versions).
fn is_legacy_temp(name: &[u8]) -> bool {
    name.strip_prefix(TEMP_PREFIX.as_bytes())
        .is_some_and(|r| r.len() == 6 && r.iter().all(u8::is_ascii_alphanumeric))
}

/// The PID in a name `.tresor-tmp-PID-HEX12`.
fn leftover_pid(name: &[u8]) -> Option<u32> {
    let rest = name.strip_prefix(TEMP_PREFIX.as_bytes())?;
    let dash = rest.iter().position(|&b| b == b'-')?;
    let (pid, random) = (&rest[..dash], &rest[dash + 1..]);
    if pid.is_empty()
        || !pid.iter().all(u8::is_ascii_digit)
        || random.len() != 12
        || !random.iter().all(u8::is_ascii_hexdigit)
    {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn io_error(path: &Path, source: io::Error) -> Error {
    Error::Io {
        store: "output".into(),
        path: path.to_path_buf(),
        source,
    }
}

/// Removal of named temporary files when SIGINT, SIGTERM or SIGHUP ends the
/// process. The handler only calls `unlink(2)` on paths registered in
/// advance, then lets the signal end the process as it would have.
mod signals {
    use std::ffi::{CStr, CString};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::Once;
    use std::sync::atomic::{AtomicPtr, Ordering};

    const SLOTS: usize = 16;
    const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
    static PATHS: [AtomicPtr<libc::c_char>; SLOTS] =
        [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];
    static INSTALL: Once = Once::new();

    /// A registered path; unregistered (and freed) on drop.
    pub(super) struct Registered(usize);

    impl Drop for Registered {
        fn drop(&mut self) {
            let p = PATHS[self.0].swap(std::ptr::null_mut(), Ordering::SeqCst);
            if !p.is_null() {
                // SAFETY: made by CString::into_raw in `register_path`.
                drop(unsafe { CString::from_raw(p) });
            }
        }
    }

    /// Registers `name` in the folder `dir` (an absolute path).
    pub(super) fn register(dir: &Path, name: &CStr) -> Option<Registered> {
        let mut full = dir.as_os_str().as_bytes().to_vec();
        full.push(b'/');
        full.extend_from_slice(name.to_bytes());
        register_path(CString::new(full).ok()?)
    }

    fn register_path(path: CString) -> Option<Registered> {
        INSTALL.call_once(install);
        let raw = path.into_raw();
        for (i, slot) in PATHS.iter().enumerate() {
            if slot
                .compare_exchange(
                    std::ptr::null_mut(),
                    raw,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
            {
                return Some(Registered(i));
            }
        }
        // More files at once than slots: this one is left to the cleanup
        // of a later run.
        // SAFETY: made by into_raw above and not shared.
        drop(unsafe { CString::from_raw(raw) });
        None
    }

    fn install() {
        for sig in SIGNALS {
            // SAFETY: sigaction with a zeroed struct and an async-signal-safe
            // handler; a signal the process ignores (nohup) stays ignored.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction != libc::SIG_DFL
                {
                    continue;
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut action.sa_mask);
                action.sa_flags = libc::SA_RESTART;
                libc::sigaction(sig, &action, std::ptr::null_mut());
            }
        }
    }

    extern "C" fn on_signal(sig: libc::c_int) {
        for slot in &PATHS {
            let p = slot.swap(std::ptr::null_mut(), Ordering::SeqCst);
            if !p.is_null() {
                // SAFETY: unlink is async-signal-safe; the string is leaked
                // (the process is ending).
                unsafe { libc::unlink(p) };
            }
        }
        // SAFETY: back to the default action, then the signal again: it
        // ends the process as if no handler had run.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

#[cfg(test)]
mod tests {
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
}
