//! Locked buffers that share a page: Linux does not count `mlock` calls, so
//! a plain `munlock` of the first buffer dropped would unlock the page the
//! second still lives on. `memory::lock`/`unlock` count the buffers per page;
//! the process's `VmLck` (/proc/self/status) shows what the kernel holds.
//! One test in its own binary, so nothing else locks memory meanwhile.

#![cfg(target_os = "linux")]

use tresor_core::memory;

#[path = "support/vm_lck.rs"]
mod vm_lck;
use vm_lck::vm_lck_kib;

#[test]
fn a_page_stays_locked_while_any_buffer_on_it_lives() {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
    let page_kib = (page / 1024) as u64;
    // Three pages of heap; `start` is the first page boundary inside it.
    let buf = vec![0u8; 3 * page];
    let start = buf.as_ptr().align_offset(page);
    let first = &buf[start..start + 64];
    let second = &buf[start + 128..start + 192];
    // A buffer across the next page boundary: two pages, the first shared.
    let straddling = &buf[start + page - 32..start + page + 32];

    let base = vm_lck_kib();
    assert!(memory::lock(first), "mlock of 64 bytes failed");
    assert!(memory::lock(second), "mlock of 64 bytes failed");
    assert_eq!(vm_lck_kib(), base + page_kib, "two buffers on one page");
    assert!(memory::lock(straddling), "mlock across a boundary failed");
    assert_eq!(vm_lck_kib(), base + 2 * page_kib);

    memory::unlock(first);
    assert_eq!(
        vm_lck_kib(),
        base + 2 * page_kib,
        "unlocking one buffer unlocked a page other live buffers are on"
    );
    memory::unlock(straddling);
    assert_eq!(
        vm_lck_kib(),
        base + page_kib,
        "the second page (only the straddling buffer's) stays locked"
    );
    memory::unlock(second);
    assert_eq!(vm_lck_kib(), base, "the last buffer's page stayed locked");

    // The same buffer locked twice (two owners of one address) needs two unlocks.
    assert!(memory::lock(first));
    assert!(memory::lock(first));
    memory::unlock(first);
    assert_eq!(vm_lck_kib(), base + page_kib);
    memory::unlock(first);
    assert_eq!(vm_lck_kib(), base);
}
