//! Removal of named temporary files when SIGINT, SIGTERM or SIGHUP ends the
//! process. The handler only calls `unlink(2)` on paths registered in
//! advance, then lets the signal end the process as it would have.

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
