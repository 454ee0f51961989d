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

mod leftovers;
mod signals;
#[cfg(test)]
mod tests;

pub use leftovers::remove_leftovers;
use leftovers::remove_leftovers_in;
pub(crate) use leftovers::{pid_in_name, process_alive};

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

/// How the problem of an output path [`check_target`] refuses begins
/// (callers that add their own remedy match on it).
pub const REFUSED_OUTPUT: &str = "refusing to write there";

/// The reason of the error a write gets when the reader at the other end
/// of a pipe has gone ([`write_error`]).
pub const READER_GONE: &str = "the reader closed the pipe before all of the output was written";

/// The error of a failed write to `target` (`stdout`, a path, `output`
/// for a writer the library cannot name): a reader that went away (a
/// closed pipe) is [`Error::Unavailable`] with [`READER_GONE`], said once;
/// anything else (a full disk, a file size limit) is [`Error::Io`].
pub fn write_error(target: &str, source: std::io::Error) -> Error {
    if source.kind() == std::io::ErrorKind::BrokenPipe {
        return Error::Unavailable {
            store: target.into(),
            reason: READER_GONE.into(),
        };
    }
    Error::Io {
        store: "output".into(),
        path: target.into(),
        source,
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
                "{REFUSED_OUTPUT}: it is a symbolic link{to}; tresor neither follows nor \
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
            "{REFUSED_OUTPUT}: it is {what}; secrets are written only into a new file \
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

fn io_error(path: &Path, source: io::Error) -> Error {
    Error::Io {
        store: "output".into(),
        path: path.to_path_buf(),
        source,
    }
}
