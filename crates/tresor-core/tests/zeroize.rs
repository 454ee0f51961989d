//! Secret values are wiped before their memory goes back to the allocator.
//!
//! This test binary installs a global allocator that wraps the system one
//! and, while armed, searches every buffer it frees (including the old buffer
//! of every `realloc`) for marker byte patterns before releasing it. Each test
//! builds [`SecretValue`]s full of a marker, drops them, and asserts that no
//! freed buffer held the marker. A positive control proves the detector sees
//! an ordinary `Vec` that is freed without wiping.
//!
//! The tests take one lock, so only one of them arms the detector at a time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use tresor_core::SecretValue;
use tresor_core::memory;

// ---------------------------------------------------------------------------
// The detecting allocator. It never allocates itself: markers live in static
// atomics and the search reads the freed buffer in place.

const MAX_MARKERS: usize = 8;
const MAX_MARKER_LEN: usize = 64;
const MIN_MARKER_LEN: usize = 16;

static ARMED: AtomicBool = AtomicBool::new(false);
static HITS: AtomicUsize = AtomicUsize::new(0);
static LAST_HIT_SIZE: AtomicUsize = AtomicUsize::new(0);
static MARKER_COUNT: AtomicUsize = AtomicUsize::new(0);
static MARKER_LENS: [AtomicUsize; MAX_MARKERS] = [const { AtomicUsize::new(0) }; MAX_MARKERS];
static MARKERS: [[AtomicU8; MAX_MARKER_LEN]; MAX_MARKERS] =
    [const { [const { AtomicU8::new(0) }; MAX_MARKER_LEN] }; MAX_MARKERS];

struct Detector;

#[global_allocator]
static GLOBAL: Detector = Detector;

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

static SERIAL: Mutex<()> = Mutex::new(());

/// Held for the whole of each test, so no other test frees its own copies of
/// a marker while this one is armed.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Disarms the detector when dropped, also on panic.
struct Armed;

/// Loads `markers` and starts searching freed buffers. `_serial` proves the
/// caller holds the test lock.
fn arm(_serial: &MutexGuard<'static, ()>, markers: &[&[u8]]) -> Armed {
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
    fn disarm(self) -> usize {
        ARMED.store(false, Ordering::SeqCst);
        HITS.load(Ordering::SeqCst)
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        ARMED.store(false, Ordering::SeqCst);
    }
}

fn assert_no_leak(hits: usize, what: &str) {
    assert_eq!(
        hits,
        0,
        "{what}: {hits} freed buffer(s) still held the secret (last one {} bytes)",
        LAST_HIT_SIZE.load(Ordering::SeqCst)
    );
}

// ---------------------------------------------------------------------------
// Inputs. The marker itself lives in static memory, never on the heap.

const MARKER: &[u8; 24] = b"tresor-zeroize-MARKER-7q";

/// `len` bytes of the marker repeated, in a Vec of exactly that capacity.
fn marker_vec(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    push_marker(&mut v, len);
    v
}

/// Appends `len` bytes of the repeated marker without reallocating.
fn push_marker(v: &mut Vec<u8>, len: usize) {
    assert!(v.capacity() - v.len() >= len);
    v.extend((0..len).map(|i| MARKER[i % MARKER.len()]));
}

/// Asserts that a value holds the repeated marker (and keeps the bytes live).
fn check(value: &SecretValue, len: usize) {
    let bytes = black_box(value.expose_secret());
    assert_eq!(bytes.len(), len);
    assert!(bytes.chunks(MARKER.len()).all(|c| MARKER.starts_with(c)));
}

const SIZES: &[usize] = &[24, 100, 4096, 200_000, tresor_core::DEFAULT_MAX_VALUE_LEN];

// ---------------------------------------------------------------------------
// The tests.

/// The detector works: an ordinary Vec freed with the marker in it is seen,
/// small or large, at any offset, and so is the old buffer of a Vec that grew.
#[test]
fn positive_control_detector_sees_unwiped_buffers() {
    let serial = serial();
    for &len in SIZES {
        let armed = arm(&serial, &[MARKER]);
        let mut v = Vec::with_capacity(len + 7);
        v.extend_from_slice(&[0; 7]);
        push_marker(&mut v, len);
        drop(black_box(v));
        let hits = armed.disarm();
        assert_eq!(hits, 1, "detector missed a plain Vec of {len} bytes");
    }

    let armed = arm(&serial, &[MARKER]);
    let mut grown = Vec::with_capacity(MARKER.len());
    grown.extend_from_slice(MARKER);
    grown.push(0); // reallocates: the old buffer is freed holding the marker
    let grown = black_box(grown);
    let hits = armed.disarm();
    assert_eq!(hits, 1, "detector missed the old buffer of a realloc");
    drop(grown);

    // Wiped before freeing: no hit.
    let armed = arm(&serial, &[MARKER]);
    let mut v = marker_vec(4096);
    zeroize::Zeroize::zeroize(black_box(&mut v));
    drop(v);
    assert_eq!(armed.disarm(), 0, "a wiped Vec must not count");
}

/// `From<Vec<u8>>` with an exact-capacity Vec (the boxed slice is taken over).
#[test]
fn from_vec_is_wiped_on_drop() {
    let serial = serial();
    for &len in SIZES {
        let armed = arm(&serial, &[MARKER]);
        let value = SecretValue::from(marker_vec(len));
        check(&value, len);
        drop(value);
        assert_no_leak(armed.disarm(), &format!("From<Vec> of {len} bytes"));
    }
}

/// `From<Vec<u8>>` with spare capacity: the copy path, whose source Vec must
/// be wiped as well as the value.
#[test]
fn from_vec_with_spare_capacity_is_wiped() {
    let serial = serial();
    for &len in SIZES {
        let armed = arm(&serial, &[MARKER]);
        let mut bytes = Vec::with_capacity(len + 100);
        push_marker(&mut bytes, len);
        assert!(bytes.capacity() > bytes.len());
        let value = SecretValue::from(bytes);
        check(&value, len);
        drop(value);
        assert_no_leak(
            armed.disarm(),
            &format!("From<Vec> with spare capacity, {len} bytes"),
        );
    }
}

/// `From<String>`.
#[test]
fn from_string_is_wiped_on_drop() {
    let serial = serial();
    for &len in SIZES {
        let armed = arm(&serial, &[MARKER]);
        let text = String::from_utf8(marker_vec(len)).unwrap();
        let value = SecretValue::from(text);
        check(&value, len);
        assert!(value.as_text().is_some());
        drop(value);
        assert_no_leak(armed.disarm(), &format!("From<String> of {len} bytes"));
    }
}

/// `copy_from` and `clone`: every copy is wiped.
#[test]
fn copy_from_and_clone_are_wiped_on_drop() {
    let serial = serial();
    let armed = arm(&serial, &[MARKER]);
    let value = SecretValue::copy_from(MARKER);
    let copy = value.clone();
    check(&value, MARKER.len());
    check(&copy, MARKER.len());
    assert!(value == copy);
    drop(value);
    drop(copy);
    assert_no_leak(armed.disarm(), "copy_from / clone of the marker");

    for &len in SIZES {
        // The source buffer is the test's own: it wipes itself.
        let source = zeroize::Zeroizing::new(marker_vec(len));
        let armed = arm(&serial, &[MARKER]);
        let value = SecretValue::copy_from(&source);
        let copies: Vec<SecretValue> = (0..3).map(|_| value.clone()).collect();
        for c in &copies {
            check(c, len);
        }
        drop(copies);
        drop(value);
        drop(source);
        assert_no_leak(armed.disarm(), &format!("copy_from / clone of {len} bytes"));
    }
}

/// With value locking on (mlock / munlock), values are wiped all the same.
#[test]
fn locked_values_are_wiped_on_drop() {
    let serial = serial();
    let armed = arm(&serial, &[MARKER]);
    memory::set_lock_values(true);
    for &len in SIZES {
        let value = SecretValue::from(marker_vec(len));
        let copy = value.clone();
        check(&copy, len);
        drop(value);
        drop(copy);
    }
    memory::set_lock_values(false);
    assert_no_leak(armed.disarm(), "locked values");
}
