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

/// Tries to lock the pages holding `bytes` into RAM. Returns whether it did.
pub fn lock(bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return false;
    }
    #[cfg(unix)]
    {
        // SAFETY: mlock only reads the address range, which `bytes` keeps valid.
        unsafe { libc::mlock(bytes.as_ptr().cast(), bytes.len()) == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Unlocks pages locked by [`lock`].
pub fn unlock(bytes: &[u8]) {
    #[cfg(unix)]
    if !bytes.is_empty() {
        // SAFETY: as for mlock. Pages shared with another locked buffer stay
        // resident only as long as the kernel's counting allows; that is
        // acceptable for a best-effort measure.
        unsafe {
            libc::munlock(bytes.as_ptr().cast(), bytes.len());
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
