//! Memory hygiene: locking secret buffers into RAM and keeping the process
//! out of core dumps.
//!
//! Locking is best effort: `RLIMIT_MEMLOCK` is often 8 MiB for ordinary users,
//! so key-sized buffers lock and a large value may not. A failure to lock is
//! not an error; the buffer is still wiped on drop.

use std::sync::atomic::{AtomicBool, Ordering};

static LOCK_VALUES: AtomicBool = AtomicBool::new(false);

/// Chooses whether [`SecretValue`](crate::SecretValue)s are locked into RAM
/// too (keys always are). Locking costs two system calls per value, about a
/// fifth of an in-process `get`, so it is off by default for the library; the
/// CLI, which handles one value per process, turns it on.
pub fn set_lock_values(on: bool) {
    LOCK_VALUES.store(on, Ordering::Relaxed);
}

/// Whether values are locked into RAM (see [`set_lock_values`]).
pub fn lock_values() -> bool {
    LOCK_VALUES.load(Ordering::Relaxed)
}

/// How many live [`lock`]ed buffers touch each page (by page address).
///
/// Linux does not count `mlock` calls: one `munlock` unlocks a page however
/// many buffers on it were locked. Two small secrets (two 32-byte keys, say)
/// often share a page, so unlocking the first one dropped would unlock the
/// page the second one still lives on. [`lock`] and [`unlock`] therefore
/// count the buffers on each page and `munlock` a page only when its last
/// buffer goes.
#[cfg(unix)]
static LOCKED_PAGES: std::sync::Mutex<Option<std::collections::HashMap<usize, usize>>> =
    std::sync::Mutex::new(None);

/// The system's page size (4 KiB when it cannot be read).
#[cfg(unix)]
fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(size)
            .ok()
            .filter(|s| s.is_power_of_two())
            .unwrap_or(4096)
    })
}

/// The addresses of the pages `bytes` touches (non-empty `bytes`).
#[cfg(unix)]
fn pages(bytes: &[u8]) -> impl Iterator<Item = usize> {
    let page = page_size();
    let start = bytes.as_ptr() as usize & !(page - 1);
    let end = bytes.as_ptr() as usize + bytes.len();
    (start..end).step_by(page)
}

/// Tries to lock the pages holding `bytes` into RAM. Returns whether it did;
/// when it did, the caller must call [`unlock`] with the same bytes (same
/// address, same length) before freeing or moving them.
pub fn lock(bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return false;
    }
    #[cfg(unix)]
    {
        let mut counts = LOCKED_PAGES.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: mlock only reads the address range, which `bytes` keeps valid.
        let locked = unsafe { libc::mlock(bytes.as_ptr().cast(), bytes.len()) == 0 };
        if locked {
            let counts = counts.get_or_insert_with(Default::default);
            for page in pages(bytes) {
                *counts.entry(page).or_insert(0) += 1;
            }
        }
        locked
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Unlocks what [`lock`] locked for `bytes`: each page whose last locked
/// buffer this was. Pages another live locked buffer shares stay locked.
pub fn unlock(bytes: &[u8]) {
    #[cfg(unix)]
    if !bytes.is_empty() {
        let page = page_size();
        let mut guard = LOCKED_PAGES.lock().unwrap_or_else(|e| e.into_inner());
        let Some(counts) = guard.as_mut() else {
            return;
        };
        // Runs of consecutive pages left with no locked buffer: one munlock each.
        let mut run: Option<(usize, usize)> = None;
        let release = |from: usize, len: usize| {
            // SAFETY: munlock only changes the residency of pages of this
            // process's own mapping, which `bytes` keeps mapped; it neither
            // reads nor writes them.
            unsafe {
                libc::munlock(from as *const libc::c_void, len);
            }
        };
        for addr in pages(bytes) {
            let last = match counts.get_mut(&addr) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                // Counted once, or not at all (a buffer that was never
                // locked, which callers do not pass): nothing else holds it.
                _ => {
                    counts.remove(&addr);
                    true
                }
            };
            run = match (run, last) {
                (Some((from, len)), true) if from + len == addr => Some((from, len + page)),
                (Some((from, len)), true) => {
                    release(from, len);
                    Some((addr, page))
                }
                (None, true) => Some((addr, page)),
                (Some((from, len)), false) => {
                    release(from, len);
                    None
                }
                (None, false) => None,
            };
        }
        if let Some((from, len)) = run {
            release(from, len);
        }
    }
}

/// Turns off core dumps for this process and marks it undumpable, so no
/// crash or `ptrace` by another user's process can copy secrets out of it.
pub fn harden_process() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain system calls on this process with valid arguments.
        unsafe {
            if libc::setrlimit(libc::RLIMIT_CORE, &zero) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            #[cfg(target_os = "linux")]
            if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// The name of the OS user running this process, for audit entries.
pub fn os_user() -> String {
    #[cfg(unix)]
    {
        // SAFETY: getuid cannot fail; getpwuid_r writes into our buffers only.
        unsafe {
            let uid = libc::getuid();
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut buf = vec![0 as libc::c_char; 4096];
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            if libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) == 0
                && !result.is_null()
                && !pwd.pw_name.is_null()
            {
                let name = std::ffi::CStr::from_ptr(pwd.pw_name);
                return name.to_string_lossy().into_owned();
            }
            format!("uid:{uid}")
        }
    }
    #[cfg(not(unix))]
    {
        std::env::var("USERNAME").unwrap_or_else(|_| "unknown".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_buffers_lock_and_unlock() {
        let buf = vec![7u8; 64];
        if lock(&buf) {
            unlock(&buf);
        }
        assert!(!lock(&[]));
    }

    #[test]
    fn os_user_is_not_empty() {
        assert!(!os_user().is_empty());
    }
}
