//! The age v1 payload (STREAM): ChaCha20-Poly1305 over 64 KiB chunks, nonce =
//! 11-byte big-endian chunk counter ‖ last-chunk flag, sealed and opened on
//! every core in constant memory.
//!
//! The work is cut into batches of [`BATCH_CHUNKS`] chunks (1 MiB of
//! plaintext). Worker `w` of `T` takes batches `w`, `w + T`, `w + 2T` …: it
//! reads a batch into its own buffer, seals or opens the chunks in place, and
//! writes the result when its turn comes (batches leave in order). A
//! [`Source`] that can read at any offset ([`Positional`], a regular file
//! through `pread`) lets the workers read at the same time; a stream such as a
//! pipe ([`Sequential`]) is read in turns as well, and only the cipher work
//! overlaps. Memory: one batch buffer per worker, whatever the file's size.
//!
//! Where the stream ends is found by reading, never from a file size: a
//! batch shorter than a full one, or a full one followed by end of input
//! (a one-byte probe), holds the last chunk.
//!
//! The cipher is ring's ChaCha20-Poly1305 (assembly on x86-64 and aarch64),
//! the fastest of the well-kept implementations measured here.

use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Condvar, Mutex, MutexGuard};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

/// Plaintext bytes in a chunk.
pub(crate) const CHUNK: usize = 64 * 1024;
/// Poly1305 tag bytes after each chunk.
pub(crate) const TAG: usize = 16;
/// Bytes of a sealed full chunk.
pub(crate) const SEALED: usize = CHUNK + TAG;
/// Chunks in a batch: the unit a worker reads, seals and writes.
pub(crate) const BATCH_CHUNKS: usize = 16;
/// Workers at most: bounds memory (one batch buffer, about 1 MiB, each).
pub(crate) const MAX_WORKERS: usize = 16;

/// The number of workers to use: every core, up to [`MAX_WORKERS`].
pub(crate) fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS)
}

/// What went wrong in the payload.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// Reading the input failed.
    Read(io::Error),
    /// Writing the output failed.
    Write(io::Error),
    /// A chunk failed authentication (altered, reordered, or not the
    /// last chunk where the stream ends).
    Auth { chunk: u64 },
    /// The last chunk is missing: the stream ends after a full chunk that
    /// authenticates only as a middle chunk, or right after the header.
    Truncated,
    /// The last chunk is empty although chunks came before it (the format
    /// forbids it).
    EmptyLast { chunk: u64 },
    /// The input ended earlier than it did when it was first read (it
    /// shrank while being encrypted).
    Shrank,
}

/// Where the payload comes from.
pub(crate) trait Source: Sync {
    /// Whether batches must be read in order, one after the other.
    fn ordered(&self) -> bool;
    /// Fills `dst` with the bytes at `offset` (counted from the start of the
    /// stream) until it is full or the input ends; returns how many.
    /// Ordered sources are called with increasing offsets only.
    fn fill(&self, offset: u64, dst: &mut [u8]) -> io::Result<usize>;
    /// Whether any byte follows `offset` (the end of what was filled).
    fn more(&self, offset: u64) -> io::Result<bool>;
}

/// A regular file read with `pread`, from `start` on.
pub(crate) struct Positional<'a> {
    pub(crate) file: &'a std::fs::File,
    pub(crate) start: u64,
}

impl Source for Positional<'_> {
    fn ordered(&self) -> bool {
        false
    }

    fn fill(&self, offset: u64, dst: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < dst.len() {
            match self
                .file
                .read_at(&mut dst[n..], self.start + offset + n as u64)
            {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn more(&self, offset: u64) -> io::Result<bool> {
        let mut one = [0u8; 1];
        Ok(self.fill(offset, &mut one)? == 1)
    }
}

/// A stream read in order (a pipe, stdin, a socket), with one byte of
/// look-ahead to see where it ends.
pub(crate) struct Sequential<R> {
    inner: Mutex<SequentialInner<R>>,
}

struct SequentialInner<R> {
    reader: R,
    peeked: Option<u8>,
}

impl<R: Read> Sequential<R> {
    pub(crate) fn new(reader: R) -> Self {
        Self {
            inner: Mutex::new(SequentialInner {
                reader,
                peeked: None,
            }),
        }
    }
}

impl<R: Read + Send> Source for Sequential<R> {
    fn ordered(&self) -> bool {
        true
    }

    fn fill(&self, _offset: u64, dst: &mut [u8]) -> io::Result<usize> {
        let mut inner = lock(&self.inner);
        let mut n = 0;
        if let (Some(b), Some(first)) = (inner.peeked, dst.first_mut()) {
            *first = b;
            inner.peeked = None;
            n = 1;
        }
        while n < dst.len() {
            match inner.reader.read(&mut dst[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn more(&self, _offset: u64) -> io::Result<bool> {
        let mut inner = lock(&self.inner);
        if inner.peeked.is_some() {
            return Ok(true);
        }
        let mut one = [0u8; 1];
        loop {
            match inner.reader.read(&mut one) {
                Ok(0) => return Ok(false),
                Ok(_) => {
                    inner.peeked = Some(one[0]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Seal (encrypt) or open (decrypt).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Seal,
    Open,
}

/// Byte counts of a run: payload bytes read and written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) read: u64,
    pub(crate) written: u64,
}

/// Seals or opens the whole payload from `source` into `out` with
/// `workers` threads, under the 32-byte payload key.
pub(crate) fn run<S: Source + ?Sized, W: Write + Send>(
    mode: Mode,
    payload_key: &[u8; 32],
    source: &S,
    out: &mut W,
    workers: usize,
) -> Result<Counts, StreamError> {
    // ring keeps the key schedule inside `LessSafeKey` and does not wipe it
    // on drop; the payload key is used for this one file only.
    let key =
        LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, payload_key).expect("a 32-byte key"));
    let shared = Shared {
        state: Mutex::new(State {
            next_read: 0,
            next_write: 0,
            stop: u64::MAX,
            error: None,
            counts: Counts::default(),
        }),
        turn: Condvar::new(),
        out: Mutex::new(out),
    };
    let workers = workers.clamp(1, MAX_WORKERS) as u64;
    if workers == 1 {
        worker(mode, &key, source, &shared, 0, 1);
    } else {
        std::thread::scope(|s| {
            for w in 0..workers {
                let (key, shared) = (&key, &shared);
                s.spawn(move || worker(mode, key, source, shared, w, workers));
            }
        });
    }
    let state = shared.state.into_inner().unwrap_or_else(|e| e.into_inner());
    match state.error {
        Some((batch, e)) if batch == state.stop => Err(e),
        _ => Ok(state.counts),
    }
}

struct Shared<'o, W> {
    state: Mutex<State>,
    /// Signalled whenever `next_read`, `next_write` or `stop` changes.
    turn: Condvar,
    out: Mutex<&'o mut W>,
}

struct State {
    /// The next batch an ordered source reads.
    next_read: u64,
    /// The next batch to be written.
    next_write: u64,
    /// The lowest batch that ended the stream or failed: no later batch is
    /// needed.
    stop: u64,
    /// The failure of the lowest failed batch.
    error: Option<(u64, StreamError)>,
    counts: Counts,
}

impl State {
    fn needed(&self, batch: u64) -> bool {
        batch <= self.stop
    }

    fn fail(&mut self, batch: u64, e: StreamError) {
        if self.error.as_ref().is_none_or(|(b, _)| batch < *b) {
            self.error = Some((batch, e));
        }
        self.stop = self.stop.min(batch);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked leaves consistent state behind (every update
    // is a single assignment), and the panic itself reaches the caller
    // through the thread scope.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bytes of one batch: plaintext for sealing, sealed chunks for opening.
fn batch_input_len(mode: Mode) -> usize {
    match mode {
        Mode::Seal => BATCH_CHUNKS * CHUNK,
        Mode::Open => BATCH_CHUNKS * SEALED,
    }
}

fn worker<S: Source + ?Sized, W: Write>(
    mode: Mode,
    key: &LessSafeKey,
    source: &S,
    shared: &Shared<'_, W>,
    first: u64,
    step: u64,
) {
    // Sized for sealing (chunks spaced SEALED apart) and opening alike.
    let mut buf = Zeroizing::new(vec![0u8; BATCH_CHUNKS * SEALED]);
    let mut batch = first;
    loop {
        // Read, in turn when the source needs it.
        if source.ordered() {
            let mut state = lock(&shared.state);
            while state.next_read != batch && state.needed(batch) {
                state = shared.turn.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if !state.needed(batch) {
                return;
            }
        } else if !lock(&shared.state).needed(batch) {
            return;
        }
        let read = read_batch(mode, source, batch, &mut buf);
        if source.ordered() {
            let mut state = lock(&shared.state);
            state.next_read = batch + 1;
            shared.turn.notify_all();
        }
        let (n, more) = match read {
            Ok(r) => r,
            Err(e) => return fail(shared, batch, StreamError::Read(e)),
        };
        if !more {
            let mut state = lock(&shared.state);
            state.stop = state.stop.min(batch);
            shared.turn.notify_all();
        }

        // Seal or open in place.
        let done = match mode {
            Mode::Seal => seal_batch(key, batch, &mut buf, n, more),
            Mode::Open => open_batch(key, batch, &mut buf, n, more),
        };
        let len = match done {
            Ok(len) => len,
            Err(e) => return fail(shared, batch, e),
        };

        // Write in turn.
        {
            let mut state = lock(&shared.state);
            while state.next_write != batch && state.needed(batch) {
                state = shared.turn.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if !state.needed(batch) {
                return;
            }
        }
        let written = lock(&shared.out).write_all(&buf[..len]);
        if let Err(e) = written {
            return fail(shared, batch, StreamError::Write(e));
        }
        {
            let mut state = lock(&shared.state);
            state.next_write = batch + 1;
            state.counts.read += n as u64;
            state.counts.written += len as u64;
            shared.turn.notify_all();
        }
        if !more {
            return;
        }
        batch += step;
    }
}

fn fail<W>(shared: &Shared<'_, W>, batch: u64, e: StreamError) {
    let mut state = lock(&shared.state);
    state.fail(batch, e);
    shared.turn.notify_all();
}

/// Reads batch `batch` into `buf` (for sealing, each chunk into its slot
/// `SEALED` bytes apart); returns the bytes read and whether input follows.
fn read_batch<S: Source + ?Sized>(
    mode: Mode,
    source: &S,
    batch: u64,
    buf: &mut [u8],
) -> io::Result<(usize, bool)> {
    let full = batch_input_len(mode);
    let offset = batch * full as u64;
    let n = match mode {
        Mode::Seal => {
            let mut n = 0;
            for slot in buf.chunks_mut(SEALED).take(BATCH_CHUNKS) {
                let got = source.fill(offset + n as u64, &mut slot[..CHUNK])?;
                n += got;
                if got < CHUNK {
                    break;
                }
            }
            n
        }
        Mode::Open => source.fill(offset, &mut buf[..full])?,
    };
    let more = n == full && source.more(offset + n as u64)?;
    Ok((n, more))
}

/// The STREAM nonce of chunk `counter`.
fn nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Seals the `n` plaintext bytes of a batch in place (chunk `i` in its slot
/// at `i * SEALED`, its tag right after it); returns the sealed length.
fn seal_batch(
    key: &LessSafeKey,
    batch: u64,
    buf: &mut [u8],
    n: usize,
    more: bool,
) -> Result<usize, StreamError> {
    if n == 0 && batch > 0 {
        // The previous batch was full and input followed it then.
        return Err(StreamError::Shrank);
    }
    let chunks = n.div_ceil(CHUNK).max(1);
    let mut len = 0;
    for i in 0..chunks {
        let plain = (n - i * CHUNK).min(CHUNK);
        let last = !more && i + 1 == chunks;
        let at = i * SEALED;
        let counter = batch * BATCH_CHUNKS as u64 + i as u64;
        let tag = key
            .seal_in_place_separate_tag(
                nonce(counter, last),
                Aad::empty(),
                &mut buf[at..at + plain],
            )
            .expect("a chunk is far below ChaCha20-Poly1305's length limit");
        buf[at + plain..at + plain + TAG].copy_from_slice(tag.as_ref());
        len = at + plain + TAG;
    }
    Ok(len)
}

/// Opens the `n` sealed bytes of a batch in place, moving each chunk's
/// plaintext to `i * CHUNK`; returns the plaintext length.
fn open_batch(
    key: &LessSafeKey,
    batch: u64,
    buf: &mut [u8],
    n: usize,
    more: bool,
) -> Result<usize, StreamError> {
    let first = batch * BATCH_CHUNKS as u64;
    let open = |buf: &mut [u8], i: usize, sealed: usize, last: bool| -> Option<usize> {
        let at = i * SEALED;
        key.open_within(
            nonce(first + i as u64, last),
            Aad::empty(),
            &mut buf[i * CHUNK..at + sealed],
            i * TAG..,
        )
        .ok()
        .map(|p| p.len())
    };
    if more {
        for i in 0..BATCH_CHUNKS {
            open(buf, i, SEALED, false).ok_or(StreamError::Auth {
                chunk: first + i as u64,
            })?;
        }
        return Ok(BATCH_CHUNKS * CHUNK);
    }
    // The stream ends in this batch.
    let (full, rem) = (n / SEALED, n % SEALED);
    if full == 0 && rem == 0 {
        return Err(StreamError::Truncated);
    }
    let (middle, last_len) = if rem > 0 {
        (full, rem)
    } else {
        (full - 1, SEALED)
    };
    for i in 0..middle {
        open(buf, i, SEALED, false).ok_or(StreamError::Auth {
            chunk: first + i as u64,
        })?;
    }
    let counter = first + middle as u64;
    if last_len < TAG {
        return Err(StreamError::Auth { chunk: counter });
    }
    // A failed open leaves the chunk unspecified: keep a full one to try
    // again as a middle chunk.
    let at = middle * SEALED;
    let copy = (last_len == SEALED).then(|| Zeroizing::new(buf[at..at + SEALED].to_vec()));
    match open(buf, middle, last_len, true) {
        Some(0) if counter > 0 => Err(StreamError::EmptyLast { chunk: counter }),
        Some(plain) => Ok(middle * CHUNK + plain),
        None => {
            if let Some(copy) = copy {
                buf[at..at + SEALED].copy_from_slice(&copy);
                // It opens as a middle chunk: the ones after it are gone.
                if open(buf, middle, SEALED, false).is_some() {
                    return Err(StreamError::Truncated);
                }
            }
            Err(StreamError::Auth { chunk: counter })
        }
    }
}

#[cfg(test)]
mod tests;
