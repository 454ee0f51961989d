//! Keys and (when asked) values are locked into RAM while alive and
//! unlocked when dropped: the process's `VmLck` (Linux, /proc/self/status)
//! rises by at least a page while a key or a locked value lives and falls
//! back after. One test in its own binary, so nothing else locks memory
//! meanwhile.

#![cfg(target_os = "linux")]

use tresor_core::SecretValue;
use tresor_crypto::Key;

#[path = "../../tresor-core/tests/support/vm_lck.rs"]
mod vm_lck;
use vm_lck::vm_lck_kib;

/// RLIMIT_MEMLOCK's soft limit in bytes (u64::MAX when unlimited).
fn memlock_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) }, 0);
    r.rlim_cur
}

#[test]
fn keys_and_locked_values_stay_in_ram_while_alive() {
    // SAFETY: geteuid has no preconditions. Root locks past the limit.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root || memlock_limit() >= 256 * 1024,
        "RLIMIT_MEMLOCK is below 256 KiB: nothing can be locked here"
    );
    let base = vm_lck_kib();

    let key = Key::random();
    let with_key = vm_lck_kib();
    assert!(
        with_key >= base + 4,
        "a live key locked nothing: {base} -> {with_key} KiB"
    );
    drop(key);
    assert_eq!(vm_lck_kib(), base, "a dropped key's page stayed locked");

    // Derived keys are locked as well.
    let parent = Key::random();
    let child = parent.derive(b"salt", b"tresor mlock test");
    assert!(vm_lck_kib() >= base + 4);
    drop(child);
    drop(parent);
    assert_eq!(vm_lck_kib(), base);

    // Values only when value locking is on (the CLI turns it on).
    tresor_core::memory::set_lock_values(false);
    let unlocked = SecretValue::from(vec![0x5a; 64 * 1024]);
    assert_eq!(vm_lck_kib(), base, "a value was locked with locking off");
    drop(unlocked);
    tresor_core::memory::set_lock_values(true);
    let value = SecretValue::from(vec![0x5a; 64 * 1024]);
    let with_value = vm_lck_kib();
    assert!(
        with_value >= base + 64,
        "a 64 KiB locked value locked {} KiB",
        with_value - base
    );
    drop(value);
    assert_eq!(vm_lck_kib(), base, "a dropped value's pages stayed locked");
}
