//! The detecting allocator shared by the zeroize tests of tresor-core and
//! tresor-crypto (included with `#[path]`): it wraps the system allocator
//! and, while armed, searches every freed buffer for marker byte patterns.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
pub const MAX_MARKERS: usize = 8;
pub const MAX_MARKER_LEN: usize = 64;
pub const MIN_MARKER_LEN: usize = 16;

pub static ARMED: AtomicBool = AtomicBool::new(false);
pub static HITS: AtomicUsize = AtomicUsize::new(0);
pub static LAST_HIT_SIZE: AtomicUsize = AtomicUsize::new(0);
pub static MARKER_COUNT: AtomicUsize = AtomicUsize::new(0);
pub static MARKER_LENS: [AtomicUsize; MAX_MARKERS] = [const { AtomicUsize::new(0) }; MAX_MARKERS];
pub static MARKERS: [[AtomicU8; MAX_MARKER_LEN]; MAX_MARKERS] =
    [const { [const { AtomicU8::new(0) }; MAX_MARKER_LEN] }; MAX_MARKERS];

pub struct Detector;

#[global_allocator]
pub static GLOBAL: Detector = Detector;

// SAFETY: every allocation is delegated to `System` unchanged; `dealloc` only
// reads the buffer it is about to free before handing it back.
unsafe impl GlobalAlloc for Detector {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Acquire) {
            // SAFETY: `ptr` is live for `layout.size()` bytes until freed below.
            if unsafe { holds_marker(ptr, layout.size()) } {
                HITS.fetch_add(1, Ordering::SeqCst);
                LAST_HIT_SIZE.store(layout.size(), Ordering::SeqCst);
            }
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    // `realloc` is deliberately not overridden: the default allocates anew,
    // copies and calls `dealloc` on the old buffer, so a secret left behind
    // by a growing or shrinking buffer is searched too.
}

/// Whether `len` bytes at `ptr` contain any armed marker. Bytes are read
/// volatile, one at a time: the buffer may hold never-written capacity.
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes.
unsafe fn holds_marker(ptr: *const u8, len: usize) -> bool {
    // SAFETY: the caller guarantees `ptr..ptr + len` is readable.
    let byte = |i: usize| unsafe { std::ptr::read_volatile(ptr.add(i)) };
    let count = MARKER_COUNT.load(Ordering::Acquire);
    for m in 0..count {
        let mlen = MARKER_LENS[m].load(Ordering::Relaxed);
        if mlen == 0 || mlen > len {
            continue;
        }
        let marker = &MARKERS[m];
        let first = marker[0].load(Ordering::Relaxed);
        for start in 0..=len - mlen {
            if byte(start) == first
                && (1..mlen).all(|j| byte(start + j) == marker[j].load(Ordering::Relaxed))
            {
                return true;
            }
        }
    }
    false
}

// ---------------------------------------------------------------------------
// Arming, one test at a time.

pub static SERIAL: Mutex<()> = Mutex::new(());

/// Held for the whole of each test, so no other test frees its own copies of
/// a marker while this one is armed.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Disarms the detector when dropped, also on panic.
pub struct Armed;

/// Loads `markers` and starts searching freed buffers. `_serial` proves the
/// caller holds the test lock.
pub fn arm(_serial: &MutexGuard<'static, ()>, markers: &[&[u8]]) -> Armed {
    assert!(markers.len() <= MAX_MARKERS);
    ARMED.store(false, Ordering::SeqCst);
    MARKER_COUNT.store(0, Ordering::SeqCst);
    for (i, m) in markers.iter().enumerate() {
        assert!((MIN_MARKER_LEN..=MAX_MARKER_LEN).contains(&m.len()));
        for (slot, b) in MARKERS[i].iter().zip(m.iter()) {
            slot.store(*b, Ordering::Relaxed);
        }
        MARKER_LENS[i].store(m.len(), Ordering::Relaxed);
    }
    MARKER_COUNT.store(markers.len(), Ordering::SeqCst);
    HITS.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    Armed
}

impl Armed {
    /// Stops searching; returns how many freed buffers held a marker.
    pub fn disarm(self) -> usize {
        ARMED.store(false, Ordering::SeqCst);
        HITS.load(Ordering::SeqCst)
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        ARMED.store(false, Ordering::SeqCst);
    }
}

pub fn assert_no_leak(hits: usize, what: &str) {
    assert_eq!(
        hits,
        0,
        "{what}: {hits} freed buffer(s) still held the secret (last one {} bytes)",
        LAST_HIT_SIZE.load(Ordering::SeqCst)
    );
}
