//! Redaction of secret values in a byte stream (`tresor run --redact`).
//!
//! A [`Redactor`] is built from named values. It looks for each value and
//! its encoded forms — base64 and base64url (padded and not), hex (lower
//! and upper case), URL-encoding (`%XX`, upper and lower case) and
//! JSON-escaped text (as serde writes it, and with every non-ASCII
//! character as `\uXXXX`) — and replaces each occurrence with
//! `[redacted:NAME]`. A [`Stream`] applies it to data arriving in pieces:
//! a value split across reads (or lines) is still found, because only a
//! tail that could be the start of a value is held back; everything before
//! it is passed on at once. A caller that waits for more data flushes the
//! held tail after a short pause ([`Stream::flush`]), so interactive output
//! is never held longer than that pause.
//!
//! Values shorter than [`MIN_LEN`] bytes are not redacted (a value such as
//! `1` or `on` would rewrite unrelated output); [`Redactor::skipped`] names
//! them so the caller can say so.
//!
//! # Memory
//!
//! The patterns (values and their encodings) and every buffer that holds
//! unfiltered data are [`Zeroizing`]: wiped when dropped. The matcher is
//! the `aho-corasick` crate's automaton, whose transition tables encode the
//! patterns byte by byte; the crate gives no way to wipe them, so they stay
//! in freed memory until it is reused. The process's other hardening (no
//! core dumps, not ptrace-able) covers them.
//!
//! ```
//! use tresor::redact::Redactor;
//!
//! let r = Redactor::new([("DB_PASSWORD", &b"hunter22"[..])]).unwrap();
//! let mut s = r.stream();
//! let mut out = Vec::new();
//! s.push(b"password is hun", &mut out);
//! s.push(b"ter22 (aHVudGVyMjI= in base64)\n", &mut out);
//! s.flush(&mut out);
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     "password is [redacted:DB_PASSWORD] ([redacted:DB_PASSWORD] in base64)\n"
//! );
//! ```

use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, Match, MatchKind, StartKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use tresor_core::{Error, Result};

/// Values shorter than this many bytes are not redacted.
pub const MIN_LEN: usize = 4;

/// The matcher for a set of named values (see the module docs).
pub struct Redactor {
    matcher: AhoCorasick,
    /// For each pattern of the matcher, in its order: the replacement.
    replacement: Vec<usize>,
    /// `[redacted:NAME]` for each name.
    texts: Vec<Vec<u8>>,
    /// Every pattern, sorted: a tail of the stream is held back when it is
    /// the start of one of them.
    sorted: Vec<Zeroizing<Vec<u8>>>,
    /// Which bytes start some pattern.
    first: [bool; 256],
    longest: usize,
    /// The length of the shortest pattern, at most 8: how many bytes the
    /// prefilter hashes.
    window: usize,
    /// Every how many positions the prefilter looks.
    stride: usize,
    /// One bit per hash of each pattern's `window` bytes at each offset
    /// below `stride`.
    starts: Vec<u64>,
    skipped: Vec<String>,
}

/// log2 of the prefilter's bits: 2^22 bits, 512 KiB.
const START_BITS: u32 = 22;
/// The prefilter's longest stride: more sets too many bits.
const MAX_STRIDE: usize = 16;

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.sorted.len())
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor for `values`, each a name (shown in the replacement) and
    /// the value's bytes. A value given under two names is replaced with
    /// the first.
    pub fn new<'a, N: AsRef<str>>(values: impl IntoIterator<Item = (N, &'a [u8])>) -> Result<Self> {
        let mut texts = Vec::new();
        let mut skipped = Vec::new();
        // (pattern, name index); duplicates keep the first name.
        let mut patterns: Vec<(Zeroizing<Vec<u8>>, usize)> = Vec::new();
        for (name, value) in values {
            let name = name.as_ref();
            if value.len() < MIN_LEN {
                skipped.push(name.to_string());
                continue;
            }
            let index = texts.len();
            texts.push(format!("[redacted:{name}]").into_bytes());
            for form in forms(value) {
                patterns.push((form, index));
            }
        }
        // Sorted by bytes, then by the order given: the first of equal
        // patterns wins.
        patterns.sort_by(|a, b| a.0.as_slice().cmp(b.0.as_slice()).then(a.1.cmp(&b.1)));
        patterns.dedup_by(|later, earlier| later.0 == earlier.0);
        let mut first = [false; 256];
        for (p, _) in &patterns {
            first[usize::from(p[0])] = true;
        }
        let longest = patterns.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
        let shortest = patterns.iter().map(|(p, _)| p.len()).min().unwrap_or(1);
        let window = shortest.min(8);
        let stride = (shortest - window + 1).min(MAX_STRIDE);
        let mut starts = vec![
            0u64;
            if patterns.is_empty() {
                1
            } else {
                1 << (START_BITS - 6)
            }
        ];
        for (p, _) in &patterns {
            for at in 0..stride {
                let h = start_hash(&p[at..at + window]);
                starts[h >> 6] |= 1 << (h & 63);
            }
        }
        // Searches are anchored at the positions the prefilter lets
        // through: an unanchored automaton over thousands of patterns ran
        // at tens of MB/s here, the prefilter at hundreds.
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(StartKind::Anchored)
            .kind(Some(kind_for(&patterns)))
            .build(patterns.iter().map(|(p, _)| p.as_slice()))
            .map_err(|e| Error::Validation(format!("too many values to redact: {e}")))?;
        let replacement = patterns.iter().map(|(_, i)| *i).collect();
        let sorted = patterns.into_iter().map(|(p, _)| p).collect();
        Ok(Self {
            matcher,
            replacement,
            texts,
            sorted,
            first,
            longest,
            window,
            stride,
            starts,
            skipped,
        })
    }

    /// The names whose values are too short to redact ([`MIN_LEN`]).
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// How many patterns (values and encoded forms) are looked for.
    pub fn patterns(&self) -> usize {
        self.sorted.len()
    }

    /// A stream to filter through this redactor.
    pub fn stream(&self) -> Stream<'_> {
        Stream {
            redactor: self,
            held: Zeroizing::new(Vec::with_capacity(self.longest)),
            buf: Zeroizing::new(Vec::new()),
        }
    }

    /// `data` with every value replaced, as one piece.
    pub fn redact(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        let mut s = self.stream();
        s.push(data, &mut out);
        s.flush(&mut out);
        out
    }

    /// The leftmost-longest match starting in `from..until` of `buf`.
    ///
    /// Every pattern is at least `window + stride - 1` bytes long, so an
    /// occurrence starting at `p` covers the one position `q` in
    /// `p..p + stride` that is a multiple of `stride`, with `window` of its
    /// bytes there: only those positions are hashed, and a hit is checked
    /// with an anchored search at each start it could belong to, in order.
    fn next_match(&self, buf: &[u8], from: usize, until: usize) -> Option<Match> {
        let (w, stride) = (self.window, self.stride);
        if buf.len() < w || from >= until {
            return None;
        }
        let mask = if w == 8 { !0 } else { (1u64 << (8 * w)) - 1 };
        let last = (until + stride - 1).min(buf.len() - w + 1);
        let mut q = from.div_ceil(stride) * stride;
        while q < last {
            let word = match buf.get(q..q + 8) {
                Some(eight) => u64::from_le_bytes(eight.try_into().expect("eight bytes")),
                None => {
                    let mut word = [0u8; 8];
                    word[..w].copy_from_slice(&buf[q..q + w]);
                    u64::from_le_bytes(word)
                }
            };
            let h = mix(word & mask);
            if self.starts[h >> 6] & (1 << (h & 63)) != 0 {
                let low = (q + 1).saturating_sub(stride).max(from);
                for p in low..(q + 1).min(until) {
                    let found = self
                        .matcher
                        .find(Input::new(buf).range(p..).anchored(Anchored::Yes));
                    if found.is_some() {
                        return found;
                    }
                }
            }
            q += stride;
        }
        None
    }

    /// Whether `tail` is a proper prefix of some pattern (shorter than it).
    fn starts_pattern(&self, tail: &[u8]) -> bool {
        if !self.first[usize::from(tail[0])] {
            return false;
        }
        // The first pattern above `tail` starts with it if any longer one
        // does (patterns are sorted and distinct).
        let i = self.sorted.partition_point(|p| p.as_slice() <= tail);
        self.sorted.get(i).is_some_and(|p| p.starts_with(tail))
    }

    /// The earliest position at or after `from` where the rest of `buf`
    /// could be the start of a pattern; `buf.len()` if none.
    fn hold_from(&self, buf: &[u8], from: usize) -> usize {
        let low = from.max(buf.len().saturating_sub(self.longest.saturating_sub(1)));
        (low..buf.len())
            .find(|&i| self.starts_pattern(&buf[i..]))
            .unwrap_or(buf.len())
    }
}

/// The prefilter's bit for a pattern's (or a position's) first bytes.
fn start_hash(bytes: &[u8]) -> usize {
    let mut word = [0u8; 8];
    word[..bytes.len()].copy_from_slice(bytes);
    mix(u64::from_le_bytes(word))
}

fn mix(word: u64) -> usize {
    (word.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - START_BITS)) as usize
}

/// The automaton only checks the starts the prefilter lets through
/// (anchored): a DFA for a small set, a contiguous NFA (a fraction of a
/// DFA's memory and build time) for thousands of patterns.
fn kind_for(patterns: &[(Zeroizing<Vec<u8>>, usize)]) -> AhoCorasickKind {
    let bytes: usize = patterns.iter().map(|(p, _)| p.len()).sum();
    if bytes <= 4096 {
        AhoCorasickKind::DFA
    } else {
        AhoCorasickKind::ContiguousNFA
    }
}

/// A value and its encoded forms, each once.
fn forms(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out: Vec<Zeroizing<Vec<u8>>> = vec![Zeroizing::new(value.to_vec())];
    let mut add = |form: Zeroizing<Vec<u8>>| {
        if !out.iter().any(|o| **o == *form) {
            out.push(form);
        }
    };
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        add(Zeroizing::new(engine.encode(value).into_bytes()));
    }
    add(hex(value, b"0123456789abcdef"));
    add(hex(value, b"0123456789ABCDEF"));
    add(url_encoded(value, b"0123456789ABCDEF"));
    add(url_encoded(value, b"0123456789abcdef"));
    if let Ok(text) = std::str::from_utf8(value) {
        for ascii in [false, true] {
            add(json_escaped(text, ascii));
        }
    }
    out
}

fn hex(value: &[u8], digits: &[u8; 16]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() * 2));
    for &b in value {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 15)]);
    }
    out
}

/// Percent-encoding of every byte but the unreserved ones (RFC 3986).
fn url_encoded(value: &[u8], digits: &[u8; 16]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() * 3));
    for &b in value {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[
                b'%',
                digits[usize::from(b >> 4)],
                digits[usize::from(b & 15)],
            ]);
        }
    }
    out
}

/// The text as a JSON string's contents (no quotes): `"` `\` and control
/// characters escaped as serde_json writes them; with `ascii`, every
/// character beyond ASCII as `\uXXXX` (UTF-16, lower-case hex), as
/// Python's `json.dumps` writes it.
fn json_escaped(text: &str, ascii: bool) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() + 8));
    let mut unit = [0u16; 2];
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 || (ascii && !c.is_ascii()) => {
                for u in c.encode_utf16(&mut unit) {
                    out.extend_from_slice(format!("\\u{u:04x}").as_bytes());
                }
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out
}

/// Data being filtered through a [`Redactor`], piece by piece.
pub struct Stream<'r> {
    redactor: &'r Redactor,
    /// The tail held back: the start of some pattern.
    held: Zeroizing<Vec<u8>>,
    /// Scratch: the held tail and the new piece together.
    buf: Zeroizing<Vec<u8>>,
}

impl Stream<'_> {
    /// Filters `input`, appending to `out` everything that can no longer
    /// become part of a value; a tail that could is held back until the
    /// next push or [`Stream::flush`].
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let r = self.redactor;
        if r.sorted.is_empty() {
            out.extend_from_slice(input);
            return;
        }
        let buf = if self.held.is_empty() {
            input
        } else {
            self.buf.clear();
            self.buf.extend_from_slice(&self.held);
            self.buf.extend_from_slice(input);
            &self.buf[..]
        };
        let mut hold = r.hold_from(buf, 0);
        let mut pos = 0;
        while pos < hold {
            // A match that starts before the held tail is final: no longer
            // pattern can start at or before it (it would have been held).
            let Some(m) = r.next_match(buf, pos, hold) else {
                break;
            };
            out.extend_from_slice(&buf[pos..m.start()]);
            out.extend_from_slice(&r.texts[r.replacement[m.pattern().as_usize()]]);
            pos = m.end();
            if pos > hold {
                hold = r.hold_from(buf, pos);
            }
        }
        out.extend_from_slice(&buf[pos..hold]);
        let tail = Zeroizing::new(buf[hold..].to_vec());
        self.held = tail;
        self.buf.clear();
    }

    /// Whether a tail is held back (and a flush is due after a pause).
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Passes on the held tail as it is: no more data is coming soon (or
    /// at all), so it is not the start of a value after all.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        // The tail may still hold a whole shorter value.
        let r = self.redactor;
        let held = std::mem::take(&mut self.held);
        let mut pos = 0;
        while let Some(m) = r.next_match(&held, pos, held.len()) {
            out.extend_from_slice(&held[pos..m.start()]);
            out.extend_from_slice(&r.texts[r.replacement[m.pattern().as_usize()]]);
            pos = m.end();
        }
        out.extend_from_slice(&held[pos..]);
    }
}

#[cfg(test)]
mod tests;
