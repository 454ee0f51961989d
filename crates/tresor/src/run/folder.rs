//! The private folder for secrets delivered as files, on a memory-backed
//! filesystem where one exists, and the removal of folders left by runs
//! that were killed before they could remove their own.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tresor_core::{Error, Result};

/// The name prefix of a run's folder: `tresor-run-PID-RANDOM` (the PID of
/// the `tresor` process, 12 hex digits).
pub const FOLDER_PREFIX: &str = "tresor-run-";

const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

pub(super) struct Base {
    pub path: PathBuf,
    pub in_memory: bool,
}

/// Where run folders go: `$XDG_RUNTIME_DIR` when it is memory-backed,
/// else `/dev/shm` when it is, else the temporary folder.
pub(super) fn base() -> Base {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    pick(xdg.as_deref(), Path::new("/dev/shm"), &std::env::temp_dir())
}

pub(super) fn pick(xdg: Option<&Path>, shm: &Path, temp: &Path) -> Base {
    for candidate in xdg.into_iter().chain([shm]) {
        if candidate.is_dir() && memory_backed(candidate) {
            return Base {
                path: candidate.to_path_buf(),
                in_memory: true,
            };
        }
    }
    Base {
        path: temp.to_path_buf(),
        in_memory: memory_backed(temp),
    }
}

/// Whether `path` is on tmpfs or ramfs.
pub(super) fn memory_backed(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct we own.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    let kind = s.f_type as i64;
    kind == TMPFS_MAGIC || kind == RAMFS_MAGIC
}

/// A run's private folder (0700), with its files (0600). Removed, files
/// and all, when dropped.
pub(super) struct Folder {
    path: PathBuf,
    dir: File,
    files: Vec<CString>,
}

impl Folder {
    /// A new folder `tresor-run-PID-RANDOM` in `base`.
    pub fn create(base: &Path) -> Result<Self> {
        let io_err = |e: io::Error| Error::Io {
            store: "run".into(),
            path: base.to_path_buf(),
            source: e,
        };
        loop {
            let mut random = [0u8; 6];
            getrandom::fill(&mut random).map_err(|e| io_err(io::Error::other(e.to_string())))?;
            let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let path = base.join(format!("{FOLDER_PREFIX}{}-{hex}", std::process::id()));
            // A name someone else made first is never used.
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(e)),
            }
            let dir = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(&path)
                .map_err(io_err)?;
            let folder = Self {
                path,
                dir,
                files: Vec::new(),
            };
            // Exactly 0700 whatever the umask, and ours.
            folder
                .dir
                .set_permissions(std::fs::Permissions::from_mode(0o700))
                .map_err(io_err)?;
            let meta = folder.dir.metadata().map_err(io_err)?;
            // SAFETY: getuid cannot fail.
            if meta.uid() != unsafe { libc::getuid() } {
                return Err(Error::UnsafePath {
                    path: folder.path.clone(),
                    problem: "the new folder is not owned by this user".into(),
                });
            }
            return Ok(folder);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` to a new 0600 file `name` in the folder; its path.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.path.join(name);
        let io_err = |e: io::Error| Error::Io {
            store: "run".into(),
            path: path.clone(),
            source: e,
        };
        let c = CString::new(name).map_err(|e| io_err(io::Error::other(e.to_string())))?;
        // SAFETY: a valid directory descriptor and a NUL-terminated name;
        // the descriptor returned is owned by the File.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(io_err(io::Error::last_os_error()));
        }
        self.files.push(c);
        let mut file = unsafe { File::from_raw_fd(fd) };
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io_err)?;
        file.write_all(bytes).map_err(io_err)?;
        Ok(path)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        for name in &self.files {
            // SAFETY: a valid descriptor and a NUL-terminated name.
            unsafe { libc::unlinkat(self.dir.as_raw_fd(), name.as_ptr(), 0) };
        }
        // Anything the program added is removed too.
        empty(&self.dir, &self.path);
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Removes every entry of the folder open as `dir` that is not a folder
/// (links are removed, never followed).
fn empty(dir: &File, path: &Path) {
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if let Ok(name) = CString::new(entry.file_name().as_bytes()) {
            // SAFETY: a valid descriptor and a NUL-terminated name.
            unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
        }
    }
}

/// Removes the run folders in `base` left by `tresor` processes that no
/// longer run (killed before they could remove them); returns how many.
/// Only folders owned by this user, named `tresor-run-PID-RANDOM` with a
/// PID that names no live process, are touched; a symbolic link is never
/// followed.
pub fn remove_leftover_folders(base: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(base) else {
        return 0;
    };
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = crate::fs::pid_in_name(FOLDER_PREFIX, name.as_bytes()) else {
            continue;
        };
        if pid == std::process::id() || crate::fs::process_alive(pid) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != uid {
            continue;
        }
        let Ok(dir) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&path)
        else {
            continue;
        };
        empty(&dir, &path);
        if std::fs::remove_dir(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}
