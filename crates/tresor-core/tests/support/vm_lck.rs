//! The process's locked memory as the kernel counts it, for the tests of
//! `mlock` (tresor-core's tests/mlock_pages.rs, tresor-crypto's
//! tests/mlock.rs, which include this file by path).

/// The process's locked memory, in KiB (`VmLck` in /proc/self/status).
pub fn vm_lck_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmLck:"))
        .expect("VmLck in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
