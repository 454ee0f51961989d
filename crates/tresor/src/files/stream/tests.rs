//! Unit tests of the parallel STREAM payload: every size around chunk and
//! batch edges, any worker count, the same bytes.

use super::*;

fn seal_all(data: &[u8], workers: usize, key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::new();
    let counts = run(Mode::Seal, key, &Sequential::new(data), &mut out, workers).unwrap();
    assert_eq!(counts.read, data.len() as u64);
    assert_eq!(counts.written, out.len() as u64);
    out
}

fn open_all(sealed: &[u8], workers: usize, key: &[u8; 32]) -> Result<Vec<u8>, StreamError> {
    let mut out = Vec::new();
    run(Mode::Open, key, &Sequential::new(sealed), &mut out, workers).map(|_| out)
}

/// Sealed size: full chunks, then the last (possibly empty) one.
fn sealed_len(n: usize) -> usize {
    let chunks = n.div_ceil(CHUNK).max(1);
    n + chunks * TAG
}

#[test]
fn sizes_and_worker_counts_round_trip_identically() {
    let key = [7u8; 32];
    let batch = BATCH_CHUNKS * CHUNK;
    for n in [
        0,
        1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        2 * CHUNK,
        batch - 1,
        batch,
        batch + 1,
        3 * batch + 5,
    ] {
        let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let one = seal_all(&data, 1, &key);
        assert_eq!(one.len(), sealed_len(n), "size {n}");
        for workers in [2, 3, 5] {
            assert_eq!(
                seal_all(&data, workers, &key),
                one,
                "size {n}, {workers} workers"
            );
            assert_eq!(open_all(&one, workers, &key).unwrap(), data);
        }
    }
}

#[test]
fn damage_is_detected_at_any_worker_count() {
    let key = [9u8; 32];
    let n = 3 * BATCH_CHUNKS * CHUNK + 100;
    let data = vec![1u8; n];
    let sealed = seal_all(&data, 2, &key);
    for workers in [1, 2, 3] {
        let mut flipped = sealed.clone();
        flipped[2 * BATCH_CHUNKS * SEALED + 5] ^= 1;
        assert!(matches!(
            open_all(&flipped, workers, &key),
            Err(StreamError::Auth { chunk }) if chunk == 2 * BATCH_CHUNKS as u64
        ));
        // Two chunks swapped.
        let mut swapped = sealed.clone();
        let (a, b) = swapped.split_at_mut(SEALED);
        a.swap_with_slice(&mut b[..SEALED]);
        assert!(matches!(
            open_all(&swapped, workers, &key),
            Err(StreamError::Auth { chunk: 0 })
        ));
        // Cut at a chunk boundary: the last chunk is gone.
        let cut = &sealed[..BATCH_CHUNKS * SEALED];
        assert!(matches!(
            open_all(cut, workers, &key),
            Err(StreamError::Truncated)
        ));
        // Cut inside a chunk, and nothing at all.
        let cut = &sealed[..sealed.len() - 1];
        assert!(matches!(
            open_all(cut, workers, &key),
            Err(StreamError::Auth { .. })
        ));
        assert!(matches!(
            open_all(&[], workers, &key),
            Err(StreamError::Truncated)
        ));
        // Bytes appended after the last chunk.
        let mut longer = sealed.clone();
        longer.extend([0u8; 20]);
        assert!(matches!(
            open_all(&longer, workers, &key),
            Err(StreamError::Auth { .. })
        ));
        // The wrong key.
        assert!(matches!(
            open_all(&sealed, workers, &[0u8; 32]),
            Err(StreamError::Auth { chunk: 0 })
        ));
    }
}

#[test]
fn an_empty_last_chunk_after_others_is_refused() {
    let key = [3u8; 32];
    // One full middle chunk, then an empty last one: sealed by hand.
    let data = vec![5u8; CHUNK];
    let mut sealed = seal_all(&data, 1, &key)[..0].to_vec();
    let k = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).unwrap());
    let mut chunk = data.clone();
    let tag = k
        .seal_in_place_separate_tag(nonce(0, false), Aad::empty(), &mut chunk)
        .unwrap();
    sealed.extend(&chunk);
    sealed.extend(tag.as_ref());
    let tag = k
        .seal_in_place_separate_tag(nonce(1, true), Aad::empty(), &mut [])
        .unwrap();
    sealed.extend(tag.as_ref());
    assert!(matches!(
        open_all(&sealed, 2, &key),
        Err(StreamError::EmptyLast { chunk: 1 })
    ));
}

#[test]
fn write_failures_stop_the_run() {
    struct Fails(usize);
    impl Write for Fails {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("disk full"));
            }
            self.0 -= 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let data = vec![0u8; 5 * BATCH_CHUNKS * CHUNK];
    for workers in [1, 2, 4] {
        let r = run(
            Mode::Seal,
            &[1; 32],
            &Sequential::new(&data[..]),
            &mut Fails(2),
            workers,
        );
        assert!(matches!(r, Err(StreamError::Write(_))), "{workers}");
    }
}

#[test]
fn positional_reads_match_sequential_ones() {
    use std::io::Seek;
    let key = [4u8; 32];
    let mut file = tempfile::tempfile().unwrap();
    let data: Vec<u8> = (0..(2 * BATCH_CHUNKS * CHUNK + 77))
        .map(|i| (i % 13) as u8)
        .collect();
    file.write_all(b"HEAD").unwrap();
    file.write_all(&data).unwrap();
    file.rewind().unwrap();
    let source = Positional {
        file: &file,
        start: 4,
    };
    let mut out = Vec::new();
    let counts = run(Mode::Seal, &key, &source, &mut out, 3).unwrap();
    assert_eq!(counts.read, data.len() as u64);
    assert_eq!(out, seal_all(&data, 1, &key));
}
