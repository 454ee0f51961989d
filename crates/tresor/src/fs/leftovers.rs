//! Temporary files left behind by processes that died before removing them
//! (a SIGKILL, a crash): found by name and removed by the next write.

use super::*;

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

pub(super) fn remove_leftovers_in(dir: &File, dir_path: &Path) -> usize {
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
pub(super) const LEGACY_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether `name` is an older tresor's temporary file: `.tresor-tmp-` and
/// six letters or digits (`encrypt -o` / `decrypt -o` of older versions).
pub(super) fn is_legacy_temp(name: &[u8]) -> bool {
    name.strip_prefix(TEMP_PREFIX.as_bytes())
        .is_some_and(|r| r.len() == 6 && r.iter().all(u8::is_ascii_alphanumeric))
}

/// The PID in a name `.tresor-tmp-PID-HEX12`.
pub(super) fn leftover_pid(name: &[u8]) -> Option<u32> {
    pid_in_name(TEMP_PREFIX, name)
}

/// The PID in a name `PREFIX` `PID-HEX12`: the naming of every temporary
/// thing tresor makes (files here, `tresor run`'s folders).
pub(crate) fn pid_in_name(prefix: &str, name: &[u8]) -> Option<u32> {
    let rest = name.strip_prefix(prefix.as_bytes())?;
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

/// Whether a process `pid` exists (one of another user counts).
pub(crate) fn process_alive(pid: u32) -> bool {
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
