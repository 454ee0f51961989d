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

use std::hint::black_box;

use tresor_core::SecretValue;
use tresor_core::memory;

// ---------------------------------------------------------------------------
// The detecting allocator. It never allocates itself: markers live in static
// atomics and the search reads the freed buffer in place.

#[path = "support/detector.rs"]
mod detector;
use detector::*;

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
        assert!(value.expose_text().is_some());
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
