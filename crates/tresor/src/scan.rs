//! `tresor scan`: finding stored secrets' values (and their encoded forms)
//! and known token shapes in files, the git index, or recent commits.
//!
//! A [`Scanner`] is built from values (usually every secret the manager
//! can list, [`Scanner::from_tresor`]): each value and its base64,
//! base64url, hex, URL-encoded and JSON-escaped forms become patterns of
//! one Aho-Corasick automaton, so a file is searched once whatever the
//! number of secrets. Token shapes are the presets' ([`rules::PRESETS`]
//! with a `shape`) and private-key PEM headers, searched by one regex.
//! A finding names the secret or the token kind and where it is
//! (`file:line:column`), never the value.
//!
//! Values are held in zeroizing buffers while the patterns are made. The
//! automaton keeps its own copies of the pattern bytes in its transition
//! tables (the `aho-corasick` crate offers no way to wipe them): they live
//! in this process's memory (locked out of core dumps by the CLI) until the
//! scanner is dropped, and are not wiped then.
//!
//! ```
//! use tresor::scan::{Options, Scanner};
//! use tresor::{SecretName, SecretValue};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("app.env"), "TOKEN=c2VjcmV0LXZhbHVlLTEyMw\n")?;
//! let secrets = vec![(SecretName::new("app/token")?, SecretValue::copy_from(b"secret-value-123"))];
//! let scanner = Scanner::new(secrets);
//! let report = scanner.scan_paths(&[dir.path().to_path_buf()], &Options::default())?;
//! let f = &report.findings[0];
//! assert_eq!((f.line, f.column, f.what.as_str(), f.encoding), (1, 7, "app/token", "base64"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;
use regex::bytes::Regex;
use serde::Serialize;
use zeroize::Zeroizing;

use tresor_core::rules::PRESETS;
use tresor_core::{Error, Result, SecretName, SecretValue, Selector};

use crate::Tresor;

mod git;

pub use git::{HOOK, install_hook};

/// Values shorter than this are not searched for: they would match
/// everywhere (`1234`, `true`).
pub const MIN_VALUE_LEN: usize = 8;
/// Files larger than this are skipped (and counted) unless
/// [`Options::max_file_size`] says otherwise.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;
/// How much of a file's start decides whether it is binary (a NUL byte).
const BINARY_PROBE: usize = 8192;
/// The kind of a private-key PEM header finding.
pub const PRIVATE_KEY: &str = "private-key";
const PRIVATE_KEY_SHAPE: &str = r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----";

/// How to scan.
#[derive(Clone, Debug)]
pub struct Options {
    /// Files larger than this many bytes are skipped and counted.
    pub max_file_size: u64,
    /// Honour `.gitignore`, `.ignore` and the git exclude files.
    pub ignore_files: bool,
    /// Look inside hidden files and folders (`.env`, `.config/…`); `.git`
    /// itself is never scanned.
    pub hidden: bool,
    /// Worker threads for the walk (0: one per core).
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            ignore_files: true,
            hidden: true,
            threads: 0,
        }
    }
}

/// What was found, and where. Never holds the value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The file (for `--history`, `COMMIT:path`; for `--staged`, the path
    /// in the index).
    pub path: String,
    /// Line, from 1.
    pub line: u64,
    /// Column in characters, from 1.
    pub column: u64,
    /// `secret` (a stored value) or `token` (a known shape).
    pub kind: &'static str,
    /// The secret's name, or the token kind (`github`, `private-key`, …).
    pub what: String,
    /// How the value appeared: `raw`, `base64`, `base64url`, `hex`,
    /// `url`, `json`; `shape` for tokens.
    pub encoding: &'static str,
}

/// A scan's findings and what it left out.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Every finding, sorted by path, line and column.
    pub findings: Vec<Finding>,
    /// Files searched.
    pub files: u64,
    /// Bytes searched.
    pub bytes: u64,
    /// Files skipped as binary (a NUL byte near the start).
    pub skipped_binary: u64,
    /// Files skipped as larger than the limit.
    pub skipped_large: u64,
    /// Files that could not be read (permissions, vanished), with why.
    pub unreadable: Vec<String>,
    /// Stored secrets searched for.
    pub secrets: usize,
    /// Stored secrets not searched for: shorter than [`MIN_VALUE_LEN`].
    pub secrets_too_short: usize,
}

/// The compiled search: stored values and their encodings, token shapes.
pub struct Scanner {
    values: Option<AhoCorasick>,
    /// Per pattern: the secret's name and the encoding.
    labels: Vec<(String, &'static str)>,
    shapes: Regex,
    /// Per shape: its kind and its own regex (which one matched).
    kinds: Vec<(&'static str, Regex)>,
    secrets: usize,
    too_short: usize,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("secrets", &self.secrets)
            .field("patterns", &self.labels.len())
            .finish_non_exhaustive()
    }
}

impl Scanner {
    /// A scanner for these values (and the token shapes).
    pub fn new(secrets: impl IntoIterator<Item = (SecretName, SecretValue)>) -> Self {
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut labels = Vec::new();
        let (mut count, mut too_short) = (0, 0);
        for (name, value) in secrets {
            let raw = value.expose_secret();
            if raw.len() < MIN_VALUE_LEN {
                too_short += 1;
                continue;
            }
            count += 1;
            for (encoding, form) in encoded_forms(raw) {
                if !patterns.iter().any(|p| **p == *form) {
                    patterns.push(form);
                    labels.push((name.to_string(), encoding));
                }
            }
        }
        let values = (!patterns.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(patterns.iter().map(|p| p.as_slice()))
                // Only a pattern set beyond the automaton's size limits
                // fails, which values of at most the vault's value size in
                // any realistic number do not reach.
                .expect("the automaton of stored values builds")
        });
        let mut sources: Vec<(&'static str, &'static str)> = PRESETS
            .iter()
            .filter_map(|p| p.shape.map(|s| (p.name, s)))
            .collect();
        sources.push((PRIVATE_KEY, PRIVATE_KEY_SHAPE));
        let all = sources
            .iter()
            .map(|(_, s)| format!("(?:{s})"))
            .collect::<Vec<_>>()
            .join("|");
        // The shapes are constants, compiled by this module's tests.
        let shapes = Regex::new(&all).expect("token shapes compile (tested)");
        let kinds = sources
            .iter()
            .map(|(k, s)| {
                (
                    *k,
                    Regex::new(&format!("^(?:{s})")).expect("shape compiles"),
                )
            })
            .collect();
        Self {
            values,
            labels,
            shapes,
            kinds,
            secrets: count,
            too_short,
        }
    }

    /// A scanner for every secret the manager can list (each store that
    /// lists, through its current version), and the token shapes.
    pub fn from_tresor(tresor: &mut Tresor) -> Result<Self> {
        let listing = tresor.list("")?;
        // One batch per store (a vault answers its batch in one
        // transaction), in the order the stores first appear.
        let mut batches: Vec<(String, Vec<(SecretName, Selector)>)> = Vec::new();
        for entry in listing.entries {
            let request = (entry.info.name, Selector::default());
            match batches.iter_mut().find(|(s, _)| *s == entry.store) {
                Some((_, names)) => names.push(request),
                None => batches.push((entry.store, vec![request])),
            }
        }
        let mut secrets = Vec::new();
        for (store, requests) in batches {
            for answer in tresor.get_many_from(&store, &requests) {
                match answer {
                    Ok(found) => secrets.push((found.secret.name, found.secret.value)),
                    // Listed, then gone or without a current version: nothing to find.
                    Err(Error::NotFound { .. } | Error::Deleted { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Self::new(secrets))
    }

    /// Only the token shapes: no stored values.
    pub fn shapes_only() -> Self {
        Self::new(Vec::new())
    }

    /// Scans files and folders (folders walked, `.gitignore` honoured as
    /// `options` says, on several threads). A missing path is an error.
    pub fn scan_paths(&self, paths: &[PathBuf], options: &Options) -> Result<Report> {
        for p in paths {
            // A missing input is unavailable (exit 6), as for every command.
            if let Err(source) = std::fs::symlink_metadata(p) {
                return Err(Error::Io {
                    store: "scan".into(),
                    path: p.clone(),
                    source,
                });
            }
        }
        let Some((first, rest)) = paths.split_first() else {
            return Ok(self.empty_report());
        };
        let mut walk = ignore::WalkBuilder::new(first);
        for p in rest {
            walk.add(p);
        }
        walk.hidden(!options.hidden)
            .git_ignore(options.ignore_files)
            .git_global(options.ignore_files)
            .git_exclude(options.ignore_files)
            .ignore(options.ignore_files)
            .parents(options.ignore_files)
            // .gitignore applies outside a git repository too.
            .require_git(false)
            .follow_links(false)
            .threads(options.threads)
            .filter_entry(|e| e.file_name() != ".git");
        let total = Mutex::new(self.empty_report());
        walk.build_parallel().run(|| {
            // Each worker keeps its own part, merged when the walk drops
            // the worker's closure at its end.
            let mut part = Part {
                total: &total,
                report: Report::default(),
                buf: Vec::new(),
            };
            Box::new(move |entry| {
                if let Ok(e) = entry
                    && e.file_type().is_some_and(|t| t.is_file())
                {
                    let Part { report, buf, .. } = &mut part;
                    self.scan_file(e.path(), options, buf, report);
                }
                ignore::WalkState::Continue
            })
        });
        let mut report = total.into_inner().unwrap_or_else(|p| p.into_inner());
        report.sort();
        Ok(report)
    }

    /// Scans one buffer, reporting findings under `path`; `first_line` is
    /// the line number of its first line.
    pub fn scan_bytes(&self, path: &str, bytes: &[u8], first_line: u64, out: &mut Vec<Finding>) {
        let mut hits: Vec<(usize, &'static str, String, &'static str)> = Vec::new();
        if let Some(ac) = &self.values {
            for m in ac.find_iter(bytes) {
                let (name, encoding) = &self.labels[m.pattern().as_usize()];
                hits.push((m.start(), "secret", name.clone(), encoding));
            }
        }
        for m in self.shapes.find_iter(bytes) {
            let at = &bytes[m.start()..];
            let Some((kind, _)) = self.kinds.iter().find(|(_, r)| r.is_match(at)) else {
                continue;
            };
            // An Anthropic key also looks like an OpenAI one: the longer
            // prefix names it.
            let kind = if *kind == "openai" && at.starts_with(b"sk-ant-") {
                "anthropic"
            } else {
                kind
            };
            // A stored value found at the same place says more.
            if !hits.iter().any(|h| h.0 == m.start() && h.1 == "secret") {
                hits.push((m.start(), "token", kind.to_string(), "shape"));
            }
        }
        if hits.is_empty() {
            return;
        }
        hits.sort_by_key(|h| h.0);
        // Line and column by counting forward once.
        let (mut line, mut line_start, mut pos) = (first_line, 0usize, 0usize);
        for (offset, kind, what, encoding) in hits {
            for nl in memchr::memchr_iter(b'\n', &bytes[pos..offset]) {
                line += 1;
                line_start = pos + nl + 1;
            }
            pos = offset;
            let column = String::from_utf8_lossy(&bytes[line_start..offset])
                .chars()
                .count() as u64
                + 1;
            out.push(Finding {
                path: path.to_string(),
                line,
                column,
                kind,
                what,
                encoding,
            });
        }
    }

    fn empty_report(&self) -> Report {
        Report {
            secrets: self.secrets,
            secrets_too_short: self.too_short,
            ..Report::default()
        }
    }

    /// Reads and scans one file into `report`, skipping binary and large
    /// files. `buf` is reused between files (one allocation per thread).
    fn scan_file(&self, path: &Path, options: &Options, buf: &mut Vec<u8>, report: &mut Report) {
        let file = std::fs::File::open(path).and_then(|f| f.metadata().map(|m| (f, m)));
        let (file, meta) = match file {
            Ok(x) => x,
            Err(e) => {
                report.unreadable.push(format!("{}: {e}", path.display()));
                return;
            }
        };
        if meta.len() > options.max_file_size {
            report.skipped_large += 1;
            return;
        }
        buf.clear();
        // Read at most the limit (a file that grows meanwhile is cut there).
        if let Err(e) = file.take(options.max_file_size).read_to_end(buf) {
            zeroize::Zeroize::zeroize(buf.as_mut_slice());
            report.unreadable.push(format!("{}: {e}", path.display()));
            return;
        }
        if memchr::memchr(0, &buf[..buf.len().min(BINARY_PROBE)]).is_some() {
            report.skipped_binary += 1;
        } else {
            report.files += 1;
            report.bytes += buf.len() as u64;
            let shown = path
                .strip_prefix("./")
                .unwrap_or(path)
                .display()
                .to_string();
            self.scan_bytes(&shown, buf, 1, &mut report.findings);
        }
        // The buffer held file contents, which may be secrets: wiped as far
        // as this file filled it.
        zeroize::Zeroize::zeroize(buf.as_mut_slice());
    }
}

impl Report {
    fn sort(&mut self) {
        self.findings
            .sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
        self.unreadable.sort();
    }
}

/// One walker thread's findings and counts.
struct Part<'a> {
    total: &'a Mutex<Report>,
    report: Report,
    buf: Vec<u8>,
}

impl Drop for Part<'_> {
    fn drop(&mut self) {
        merge(
            &mut self.total.lock().unwrap_or_else(|p| p.into_inner()),
            &mut self.report,
        );
    }
}

fn merge(total: &mut Report, part: &mut Report) {
    total.findings.append(&mut part.findings);
    total.files += std::mem::take(&mut part.files);
    total.bytes += std::mem::take(&mut part.bytes);
    total.skipped_binary += std::mem::take(&mut part.skipped_binary);
    total.skipped_large += std::mem::take(&mut part.skipped_large);
    total.unreadable.append(&mut part.unreadable);
}

/// The forms a value may take in a file: as it is, base64 and base64url
/// (without padding, so the padded form matches too), hex (lower and
/// upper case), URL-encoded and JSON-escaped (where they differ from it).
fn encoded_forms(raw: &[u8]) -> Vec<(&'static str, Zeroizing<Vec<u8>>)> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut forms = vec![("raw", Zeroizing::new(raw.to_vec()))];
    forms.push((
        "base64",
        Zeroizing::new(STANDARD_NO_PAD.encode(raw).into_bytes()),
    ));
    forms.push((
        "base64url",
        Zeroizing::new(URL_SAFE_NO_PAD.encode(raw).into_bytes()),
    ));
    let mut hex = Zeroizing::new(Vec::with_capacity(raw.len() * 2));
    for b in raw {
        hex.extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
    }
    let upper = Zeroizing::new(hex.to_ascii_uppercase());
    forms.push(("hex", hex));
    forms.push(("hex", upper));
    let mut url = Zeroizing::new(Vec::with_capacity(raw.len() * 3));
    for &b in raw {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            url.push(b);
        } else {
            url.extend_from_slice(&[
                b'%',
                HEX_UPPER[(b >> 4) as usize],
                HEX_UPPER[(b & 15) as usize],
            ]);
        }
    }
    forms.push(("url", url));
    if let Ok(text) = std::str::from_utf8(raw) {
        let json = Zeroizing::new(serde_json::to_string(text).unwrap_or_default());
        let inner = json.as_bytes();
        if inner.len() >= 2 {
            forms.push(("json", Zeroizing::new(inner[1..inner.len() - 1].to_vec())));
        }
    }
    // Forms equal to the raw value (or each other) are searched once, as the
    // first: `raw` wins.
    let mut out: Vec<(&'static str, Zeroizing<Vec<u8>>)> = Vec::new();
    for (encoding, form) in forms {
        if !out.iter().any(|(_, f)| **f == *form) {
            out.push((encoding, form));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests;
