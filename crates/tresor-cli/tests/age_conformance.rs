//! age conformance: `tresor decrypt` reads age v1 files exactly as the
//! specification (age-encryption.org/v1) says, and agrees with stock Go
//! `age -d` (the Debian package `age`, 1.1.1) on every file the generator
//! below writes: a few hundred malformed and borderline files, one family
//! per rule of the specification, plus systematic mutations of good files
//! (byte flips, truncations, inserted spaces and newlines, padding, split
//! and joined lines), most of them with the header MAC made anew so that
//! the parser, not the MAC, has to decide.
//!
//! Where stock age is laxer than the specification, tresor follows the
//! specification: those cases are listed in [`SPEC_OVER_AGE`] with the
//! rule, and the test checks that age still accepts them (so the list stays
//! true) and that tresor refuses them.
//!
//! Passphrase (scrypt) files: stock age reads a passphrase only from a
//! terminal, so each one runs on a pseudo-terminal (python3's pty module)
//! that types the passphrase when age turns the echo off to ask for it.
//!
//! Needs `age` and `python3`; fails, never skips, without them.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use age::secrecy::SecretString;
use age_core::format::{FileKey, Stanza};
use base64::Engine;
use common::*;
use hmac::{Hmac, KeyInit, Mac};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use sha2::Sha256;

const PASSPHRASE: &str = "conformance passphrase one";
const CHUNK: usize = 64 * 1024;
const INTRO: &str = "age-encryption.org/v1\n";

/// Cases where stock age 1.1.1 accepts what the specification refuses, and
/// tresor refuses: (name prefix, the rule).
const SPEC_OVER_AGE: &[(&str, &str)] = &[
    (
        "scrypt-beside-x25519",
        "\"an scrypt stanza, if present, MUST be the only stanza in the header\"; age -d -i \
         only checks that when it tries a passphrase",
    ),
    (
        "x25519-malformed-after-match",
        "\"the identity implementation ... MUST otherwise reject any stanza that has more or \
         less than two arguments, or where the second argument is not a canonical base64 \
         encoding of a 32-byte value ... body length is exactly 32 bytes\"; age stops at the \
         first stanza that opens and never looks at later ones; tresor checks the shape of \
         every X25519 stanza before trying a key",
    ),
];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// A stanza as age writes it: its line, then its body wrapped at 64
/// columns, always ending with a line shorter than 64 (empty if need be).
fn stanza_text(args: &str, body: &[u8]) -> String {
    let encoded = b64(body);
    let mut s = format!("-> {args}\n");
    let mut rest = encoded.as_str();
    while rest.len() >= 64 {
        s.push_str(&rest[..64]);
        s.push('\n');
        rest = &rest[64..];
    }
    s.push_str(rest);
    s.push('\n');
    s
}

fn stanza_of(st: &Stanza) -> String {
    let mut args = vec![st.tag.clone()];
    args.extend(st.args.iter().cloned());
    stanza_text(&args.join(" "), &st.body)
}

/// The file key, and the recipients the generator wraps it to.
struct Keys {
    file_key: [u8; 16],
    ours: age::x25519::Recipient,
    theirs: age::x25519::Recipient,
}

impl Keys {
    fn fk(&self) -> FileKey {
        FileKey::new(Box::new(self.file_key))
    }

    fn x25519(&self, to: &age::x25519::Recipient) -> Stanza {
        use age::Recipient;
        to.wrap_file_key(&self.fk()).unwrap().0.remove(0)
    }

    fn scrypt(&self, passphrase: &str, log_n: u8) -> Stanza {
        use age::Recipient;
        let mut r = age::scrypt::Recipient::new(SecretString::from(passphrase.to_string()));
        r.set_work_factor(log_n);
        r.wrap_file_key(&self.fk()).unwrap().0.remove(0)
    }

    /// HMAC-SHA256 under HKDF(file key, "header") of everything through `---`.
    fn mac(&self, through_dashes: &[u8]) -> Vec<u8> {
        let key = age_core::primitives::hkdf(&[], b"header", &self.file_key);
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        m.update(through_dashes);
        m.finalize().into_bytes().to_vec()
    }

    /// The nonce and STREAM chunks (plaintext, last flag), sealed in order.
    fn payload(&self, nonce: &[u8; 16], chunks: &[(&[u8], bool)]) -> Vec<u8> {
        let key = age_core::primitives::hkdf(nonce, b"payload", &self.file_key);
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).unwrap());
        let mut out = nonce.to_vec();
        for (i, (plain, last)) in chunks.iter().enumerate() {
            let mut n = [0u8; 12];
            n[3..11].copy_from_slice(&(i as u64).to_be_bytes());
            n[11] = u8::from(*last);
            let mut buf = plain.to_vec();
            key.seal_in_place_append_tag(Nonce::assume_unique_for_key(n), Aad::empty(), &mut buf)
                .unwrap();
            out.extend(buf);
        }
        out
    }

    /// The payload of `plain` as age writes it.
    fn payload_of(&self, plain: &[u8]) -> Vec<u8> {
        let nonce = [0x4e; 16];
        if plain.is_empty() {
            return self.payload(&nonce, &[(&[], true)]);
        }
        let parts: Vec<&[u8]> = plain.chunks(CHUNK).collect();
        let chunks: Vec<(&[u8], bool)> = parts
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, i + 1 == parts.len()))
            .collect();
        self.payload(&nonce, &chunks)
    }

    /// A whole file: `head` (the version line and the stanzas), a MAC line
    /// with the right MAC, and `payload`.
    fn file(&self, head: &str, payload: &[u8]) -> Vec<u8> {
        let mut bytes = head.as_bytes().to_vec();
        bytes.extend(b"---");
        let mac = self.mac(&bytes);
        bytes.extend(format!(" {}\n", b64(&mac)).as_bytes());
        bytes.extend(payload);
        bytes
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `-i IDENTITY` on both sides.
    Identity,
    /// The passphrase: `--passphrase-file` for tresor, typed on a pty for age.
    Passphrase,
}

/// What the specification says of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// Decrypts, to the generator's plaintext.
    Accept,
    /// Refused, with this tresor exit code (4 damaged, 3 wrong key, 2 refused input).
    Refuse(i32),
    /// A mutation: tresor must agree with age (and refuse with 2, 3 or 4).
    Either,
}

struct Case {
    name: String,
    mode: Mode,
    spec: Spec,
    bytes: Vec<u8>,
    plain: Vec<u8>,
}

/// Everything the generator writes.
struct Gen {
    keys: Keys,
    plain: Vec<u8>,
    cases: Vec<Case>,
}

impl Gen {
    fn push(&mut self, name: impl Into<String>, mode: Mode, spec: Spec, bytes: Vec<u8>) {
        self.push_plain(name, mode, spec, bytes, self.plain.clone());
    }

    fn push_plain(
        &mut self,
        name: impl Into<String>,
        mode: Mode,
        spec: Spec,
        bytes: Vec<u8>,
        plain: Vec<u8>,
    ) {
        let name = name.into();
        assert!(
            self.cases.iter().all(|c| c.name != name),
            "duplicate case {name}"
        );
        self.cases.push(Case {
            name,
            mode,
            spec,
            bytes,
            plain,
        });
    }

    /// A file of the version line and `stanzas`, MACed, with the usual payload.
    fn head(&self, stanzas: &str) -> Vec<u8> {
        self.keys.file(
            &format!("{INTRO}{stanzas}"),
            &self.keys.payload_of(&self.plain),
        )
    }

    fn x(&mut self, name: &str, spec: Spec, stanzas: &str) {
        let bytes = self.head(stanzas);
        self.push(name, Mode::Identity, spec, bytes);
    }

    fn p(&mut self, name: &str, spec: Spec, stanzas: &str) {
        let bytes = self.head(stanzas);
        self.push(name, Mode::Passphrase, spec, bytes);
    }
}

/// Changes the last character of a base64 text to the next one in the
/// alphabet: same length, set trailing bits when the text leaves some.
fn bump_last(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (head, last) = text.split_at(text.len() - 1);
    let at = ALPHABET
        .iter()
        .position(|&c| c == last.as_bytes()[0])
        .unwrap();
    format!("{head}{}", ALPHABET[(at + 1) % 64] as char)
}

/// The stanza line of `text` with `args` for its arguments, body kept.
fn with_args(stanza: &str, args: &str) -> String {
    let (_, body) = stanza.split_once('\n').unwrap();
    format!("-> {args}\n{body}")
}

/// Its body lines replaced by `body` (already wrapped, with line feeds).
fn with_body(stanza: &str, body: &str) -> String {
    let (line, _) = stanza.split_once('\n').unwrap();
    format!("{line}\n{body}")
}

/// The arguments of a stanza's line.
fn args_of(stanza: &str) -> Vec<String> {
    let (line, _) = stanza.split_once('\n').unwrap();
    line[3..].split(' ').map(str::to_string).collect()
}

fn generate(ours_id: &age::x25519::Identity) -> Gen {
    let keys = Keys {
        file_key: *b"conformance-fk16",
        ours: ours_id.to_public(),
        theirs: age::x25519::Identity::generate().to_public(),
    };
    let mut g = Gen {
        keys,
        plain: filler(1000, 14),
        cases: Vec::new(),
    };
    use Mode::{Identity, Passphrase};
    use Spec::{Accept, Either, Refuse};

    let ours = stanza_of(&g.keys.x25519(&g.keys.ours));
    let theirs = stanza_of(&g.keys.x25519(&g.keys.theirs));
    let grease = stanza_text("grease-x ?~!# z", &[0x5a; 50]);
    // Ours last: age tries every X25519 stanza before it, so it sees each.
    let base = format!("{grease}{theirs}{ours}");
    let share = args_of(&ours)[1].clone();
    let ours_body = ours.lines().nth(1).unwrap().to_string();

    // Good files.
    g.x("good-base", Accept, &base);
    g.x("good-only-ours", Accept, &ours);
    g.x("good-unknown-after", Accept, &format!("{ours}{grease}"));
    for len in [0, 1, 2, 3, 47, 48, 49, 95, 96, 97, 200] {
        let unknown = stanza_text("example.com/enigma a b", &vec![0xa5; len]);
        g.x(
            &format!("good-unknown-body-{len}"),
            Accept,
            &format!("{unknown}{ours}"),
        );
    }
    let vchars: String = (33u8..=126).map(char::from).collect();
    g.x(
        "good-every-visible-char-in-args",
        Accept,
        &format!("{}{ours}", stanza_text(&format!("t {vchars}"), b"x")),
    );
    g.x(
        "good-lowercase-x25519-is-another-type",
        Accept,
        &format!("{}{ours}", with_args(&theirs, &format!("x25519 {share}"))),
    );
    g.x("wrong-key-theirs-only", Refuse(3), &theirs);
    g.x("wrong-key-unknown-only", Refuse(3), &grease);
    g.x("no-stanza", Refuse(4), "");

    // Stanza bodies: always a final line shorter than 64 columns.
    g.x(
        "body-missing-unknown",
        Refuse(4),
        &format!("-> grease\n{ours}"),
    );
    g.x(
        "body-missing-before-mac",
        Refuse(4),
        &format!("{ours}-> grease\n"),
    );
    g.x(
        "body-missing-x25519",
        Refuse(4),
        &format!("-> X25519 {share}\n"),
    );
    for len in [48, 96] {
        let full = stanza_text("grease", &vec![0x33; len]);
        let without_final = full.strip_suffix("\n\n").unwrap().to_string() + "\n";
        g.x(
            &format!("body-{len}-without-final-line"),
            Refuse(4),
            &format!("{without_final}{ours}"),
        );
        g.x(
            &format!("body-{len}-without-final-line-before-mac"),
            Refuse(4),
            &format!("{ours}{without_final}"),
        );
        g.x(
            &format!("body-{len}-two-final-lines"),
            Refuse(4),
            &format!("{full}\n{ours}"),
        );
    }
    let (a, b) = ours_body.split_at(20);
    g.x(
        "body-x25519-split-in-two-short-lines",
        Refuse(4),
        &with_body(&ours, &format!("{a}\n{b}\n")),
    );
    g.x(
        "body-short-line-then-full-line",
        Refuse(4),
        &format!("-> grease\n{}\n{}\n{ours}", b64(&[1; 45]), b64(&[2; 48])),
    );
    for len in [49, 50, 51] {
        // One line of 66 to 68 columns.
        let line = b64(&vec![0x44; len]);
        g.x(
            &format!("body-line-of-{}-columns", line.len()),
            Refuse(4),
            &format!("-> grease\n{line}\n{ours}"),
        );
    }
    g.x(
        "body-line-of-65-columns",
        Refuse(4),
        &format!("-> grease\n{}A\n\n{ours}", b64(&[0x44; 48])),
    );
    // Canonical base64: no padding, no set trailing bits, nothing else.
    g.x(
        "body-padded-x25519",
        Refuse(4),
        &with_body(&ours, &format!("{ours_body}=\n")),
    );
    g.x(
        "body-padded-one-byte",
        Refuse(4),
        &format!("-> grease\nWg==\n{ours}"),
    );
    g.x(
        "good-body-one-byte",
        Accept,
        &format!("-> grease\nWg\n{ours}"),
    );
    g.x(
        "body-trailing-bits-one-byte",
        Refuse(4),
        &format!("-> grease\nWh\n{ours}"),
    );
    g.x(
        "body-trailing-bits-two-bytes",
        Refuse(4),
        &format!("-> grease\nWhB\n{ours}"),
    );
    g.x(
        "body-trailing-bits-x25519",
        Refuse(4),
        &with_body(&ours, &format!("{}\n", bump_last(&ours_body))),
    );
    g.x(
        "body-length-1-mod-4",
        Refuse(4),
        &format!("-> grease\nWhBcD\n{ours}"),
    );
    for (what, bad) in [
        ("space", " "),
        ("tab", "\t"),
        ("dash", "-"),
        ("underscore", "_"),
        ("cr", "\r"),
        ("nul", "\0"),
        ("high", "\u{e9}"),
    ] {
        g.x(
            &format!("body-char-{what}-inside"),
            Refuse(4),
            &with_body(
                &ours,
                &format!("{}{bad}{}\n", &ours_body[..20], &ours_body[20..]),
            ),
        );
        g.x(
            &format!("body-char-{what}-at-end"),
            Refuse(4),
            &with_body(&ours, &format!("{ours_body}{bad}\n")),
        );
    }

    // Stanza lines: "-> ", arguments of visible ASCII, single spaces.
    g.x(
        "line-no-space-after-arrow",
        Refuse(4),
        &format!("{}{ours}", grease.replacen("-> ", "->", 1)),
    );
    g.x(
        "line-double-space",
        Refuse(4),
        &format!("{}{ours}", grease.replacen("-> ", "->  ", 1)),
    );
    g.x(
        "line-space-between-args-doubled",
        Refuse(4),
        &format!("{}{ours}", grease.replacen(" ?~!#", "  ?~!#", 1)),
    );
    g.x(
        "line-trailing-space",
        Refuse(4),
        &format!("{}{ours}", grease.replacen(" z\n", " z \n", 1)),
    );
    g.x("line-arrow-only", Refuse(4), &format!("->\n\n{ours}"));
    g.x(
        "line-arrow-space-only",
        Refuse(4),
        &format!("-> \n\n{ours}"),
    );
    for (what, bad) in [
        ("tab", "\t"),
        ("del", "\u{7f}"),
        ("high", "\u{e9}"),
        ("cr", "\r"),
        ("nul", "\0"),
    ] {
        g.x(
            &format!("line-arg-char-{what}"),
            Refuse(4),
            &format!(
                "{}{ours}",
                grease.replacen("?~!#", &format!("?~{bad}!#"), 1)
            ),
        );
    }
    g.x(
        "line-crlf",
        Refuse(4),
        &format!("{}{ours}", grease.replacen(" z\n", " z\r\n", 1)),
    );

    // X25519 stanzas: one argument of 32 bytes, a 32-byte body.
    let x_extra = with_args(&ours, &format!("X25519 {share} extra"));
    let x_none = with_args(&ours, "X25519");
    let x_canon = with_args(&ours, &format!("X25519 {}", bump_last(&share)));
    let x_padded = with_args(&ours, &format!("X25519 {share}="));
    let x_short = with_args(&ours, &format!("X25519 {}", b64(&[9; 31])));
    let x_long = with_args(&ours, &format!("X25519 {}", b64(&[9; 33])));
    let x_body31 = with_body(&ours, &format!("{}\n", b64(&[7; 31])));
    let x_body33 = with_body(&ours, &format!("{}\n", b64(&[7; 33])));
    let x_body0 = with_body(&ours, "\n");
    for (name, bad) in [
        ("extra-argument", &x_extra),
        ("no-argument", &x_none),
        ("share-not-canonical", &x_canon),
        ("share-padded", &x_padded),
        ("share-31-bytes", &x_short),
        ("share-33-bytes", &x_long),
        ("body-31-bytes", &x_body31),
        ("body-33-bytes", &x_body33),
        ("body-empty", &x_body0),
    ] {
        g.x(&format!("x25519-{name}"), Refuse(4), bad);
        g.x(
            &format!("x25519-{name}-before-match"),
            Refuse(4),
            &format!("{bad}{ours}"),
        );
        g.x(
            &format!("x25519-malformed-after-match-{name}"),
            Refuse(4),
            &format!("{ours}{bad}"),
        );
    }
    // Low-order shares: the shared secret is all zeros whatever the key.
    let low_order: [[u8; 32]; 4] = [
        [0; 32],
        {
            let mut p = [0; 32];
            p[0] = 1;
            p
        },
        {
            // p - 1
            let mut p = [0xff; 32];
            p[0] = 0xec;
            p[31] = 0x7f;
            p
        },
        {
            // p
            let mut p = [0xff; 32];
            p[0] = 0xed;
            p[31] = 0x7f;
            p
        },
    ];
    for (i, point) in low_order.iter().enumerate() {
        let zero = with_args(&theirs, &format!("X25519 {}", b64(point)));
        g.x(
            &format!("x25519-low-order-{i}"),
            Refuse(4),
            &format!("{zero}{ours}"),
        );
        // As age: the stanzas after the one that opens are not tried.
        g.x(
            &format!("x25519-low-order-{i}-after-match"),
            Accept,
            &format!("{ours}{zero}"),
        );
    }

    // scrypt stanzas, with an identity: alone or refused.
    let scrypt10 = stanza_of(&g.keys.scrypt(PASSPHRASE, 10));
    g.x(
        "scrypt-beside-x25519-after",
        Refuse(4),
        &format!("{ours}{scrypt10}"),
    );
    g.x(
        "scrypt-beside-x25519-before",
        Refuse(4),
        &format!("{scrypt10}{ours}"),
    );
    g.x("scrypt-with-identity", Refuse(3), &scrypt10);

    // The MAC line: "--- " and 43 characters of canonical base64.
    let good = g.head(&base);
    let mac_at = good.windows(4).position(|w| w == b"\n---").unwrap() + 1;
    let mac_end = mac_at + good[mac_at..].iter().position(|&b| b == b'\n').unwrap();
    let mac_line = String::from_utf8(good[mac_at..mac_end].to_vec()).unwrap();
    let mac = mac_line[4..].to_string();
    for (name, line) in [
        ("no-space", format!("---{mac}")),
        ("two-spaces", format!("---  {mac}")),
        ("trailing-space", format!("--- {mac} ")),
        ("padded", format!("--- {mac}=")),
        ("short", format!("--- {}", &mac[..42])),
        ("long", format!("--- {mac}A")),
        ("not-canonical", format!("--- {}", bump_last(&mac))),
        ("crlf", format!("--- {mac}\r")),
        ("four-dashes", format!("---- {mac}")),
        ("missing", String::new()),
        ("empty", "--- ".to_string()),
    ] {
        let mut bytes = good[..mac_at].to_vec();
        bytes.extend(line.as_bytes());
        bytes.extend(&good[mac_end..]);
        g.push(format!("mac-{name}"), Identity, Refuse(4), bytes);
    }
    let mut wrong = good.clone();
    wrong[mac_at + 10] ^= 1;
    g.push("mac-wrong", Identity, Refuse(4), wrong);

    // The version line.
    for (name, intro, code) in [
        ("v2", "age-encryption.org/v2\n", 2),
        ("space", "age-encryption.org/v1 \n", 2),
        ("crlf", "age-encryption.org/v1\r\n", 2),
        ("upper", "age-encryption.org/V1\n", 2),
        ("none", "", 2),
        ("bom", "\u{feff}age-encryption.org/v1\n", 2),
        ("blank-line-after", "age-encryption.org/v1\n\n", 4),
    ] {
        let mut bytes = intro.as_bytes().to_vec();
        bytes.extend(&good[INTRO.len()..]);
        g.push(format!("version-{name}"), Identity, Refuse(code), bytes);
    }

    // The payload: 64 KiB chunks, the last one flagged and never empty
    // unless the whole plaintext is; nothing after it.
    let nonce = [0x4e; 16];
    let head = format!("{INTRO}{ours}");
    let full = filler(CHUNK, 3);
    let twice = filler(2 * CHUNK, 4);
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK] {
        let plain = filler(len, len as u64);
        let bytes = g.keys.file(&head, &g.keys.payload_of(&plain));
        g.push_plain(format!("payload-{len}"), Identity, Accept, bytes, plain);
    }
    let payloads: Vec<(&str, Vec<u8>)> = vec![
        (
            "empty-last-chunk",
            g.keys.payload(&nonce, &[(&full, false), (&[], true)]),
        ),
        ("no-chunk", nonce.to_vec()),
        ("nonce-cut", nonce[..8].to_vec()),
        ("nothing", Vec::new()),
        (
            "unflagged-last",
            g.keys.payload(&nonce, &[(&g.plain, false)]),
        ),
        (
            "unflagged-full-last",
            g.keys.payload(&nonce, &[(&full, false)]),
        ),
        (
            "flagged-then-more",
            g.keys.payload(&nonce, &[(&full, true), (&g.plain, true)]),
        ),
        (
            "two-flagged-empty",
            g.keys.payload(&nonce, &[(&[], true), (&[], true)]),
        ),
        (
            "trailing-byte",
            [g.keys.payload_of(&g.plain), vec![0]].concat(),
        ),
        (
            "trailing-16",
            [g.keys.payload_of(&g.plain), vec![0x11; 16]].concat(),
        ),
        (
            "trailing-after-full-last",
            [g.keys.payload_of(&full), vec![0x22; 5]].concat(),
        ),
        (
            "trailing-after-two-full",
            [g.keys.payload_of(&twice), vec![0x22; 1]].concat(),
        ),
        ("last-chunk-cut", {
            let mut p = g.keys.payload_of(&g.plain);
            p.pop();
            p
        }),
        ("full-last-chunk-cut", {
            let mut p = g.keys.payload_of(&full);
            p.pop();
            p
        }),
        ("second-chunk-missing", {
            let mut p = g.keys.payload_of(&twice);
            p.truncate(16 + CHUNK + 16);
            p
        }),
        ("tag-only", {
            let mut p = g.keys.payload_of(&g.plain);
            p.truncate(16 + 16);
            p
        }),
    ];
    for (name, payload) in payloads {
        let bytes = g.keys.file(&head, &payload);
        g.push(format!("payload-{name}"), Identity, Refuse(4), bytes);
    }

    // Mutations of the good file, its MAC made anew: the parser decides.
    let lines: Vec<String> = format!("{INTRO}{base}")
        .split_inclusive('\n')
        .map(str::to_string)
        .collect();
    let remac = |g: &mut Gen, name: String, lines: &[String]| {
        let bytes = g.keys.file(&lines.concat(), &g.keys.payload_of(&g.plain));
        g.push(name, Identity, Either, bytes);
    };
    for i in 0..lines.len() {
        let line = lines[i].trim_end_matches('\n');
        let mid = line.len() / 2;
        let mut edits: Vec<(&str, Vec<String>)> = vec![
            ("space-first", vec![format!(" {line}\n")]),
            ("space-last", vec![format!("{line} \n")]),
            (
                "space-middle",
                vec![format!("{} {}\n", &line[..mid], &line[mid..])],
            ),
            ("blank-after", vec![format!("{line}\n"), "\n".into()]),
            ("deleted", vec![]),
            ("twice", vec![format!("{line}\n"), format!("{line}\n")]),
            ("pad-1", vec![format!("{line}=\n")]),
            ("pad-2", vec![format!("{line}==\n")]),
            (
                "split",
                vec![format!("{}\n", &line[..mid]), format!("{}\n", &line[mid..])],
            ),
            ("joined", vec![line.to_string()]),
            ("crlf", vec![format!("{line}\r\n")]),
            (
                "star",
                vec![format!("{}*{}\n", &line[..mid], &line[mid + 1..])],
            ),
            (
                "tab",
                vec![format!("{}\t{}\n", &line[..mid], &line[mid + 1..])],
            ),
        ];
        if !line.is_empty() {
            edits.push(("bump-last", vec![format!("{}\n", bump_last(line))]));
            edits.push(("cut-last", vec![format!("{}\n", &line[..line.len() - 1])]));
        }
        for (what, replacement) in edits {
            let mut mutated = lines.clone();
            mutated.splice(i..=i, replacement);
            remac(&mut g, format!("remac-line{i}-{what}"), &mutated);
        }
    }
    let text = lines.concat();
    for at in (0..text.len()).step_by(3) {
        for bit in [0x01u8, 0x20] {
            let mut bytes = text.clone().into_bytes();
            bytes[at] ^= bit;
            if bytes[at] >= 0x80 {
                continue;
            }
            let mutated = String::from_utf8(bytes).unwrap();
            if at % 9 == 0 || bit == 0x01 {
                remac(&mut g, format!("remac-flip-{at}-{bit:02x}"), &[mutated]);
            }
        }
    }
    // Mutations of the whole good file as it is (MAC kept).
    let big = g
        .keys
        .file(&format!("{INTRO}{base}"), &g.keys.payload_of(&twice));
    let header_len = big.windows(4).position(|w| w == b"\n---").unwrap() + 1;
    let header_len = header_len + big[header_len..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut cuts: Vec<usize> = big[..header_len]
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .flat_map(|(i, _)| [i, i + 1])
        .collect();
    cuts.extend([
        10,
        header_len + 8,
        header_len + 16,
        header_len + 17,
        header_len + 16 + CHUNK,
        header_len + 16 + CHUNK + 16,
        header_len + 16 + CHUNK + 17,
        big.len() - 16,
        big.len() - 1,
    ]);
    for cut in cuts {
        g.push_plain(
            format!("raw-cut-{cut}"),
            Identity,
            Either,
            big[..cut].to_vec(),
            twice.clone(),
        );
    }
    let mut flips: Vec<usize> = (0..header_len).step_by(11).collect();
    flips.extend([
        header_len,
        header_len + 15,
        header_len + 16,
        header_len + 16 + CHUNK,
        header_len + 16 + CHUNK + 15,
        header_len + 16 + CHUNK + 16,
        big.len() - 17,
        big.len() - 1,
    ]);
    for at in flips {
        let mut bytes = big.clone();
        bytes[at] ^= 0x04;
        g.push_plain(
            format!("raw-flip-{at}"),
            Identity,
            Either,
            bytes,
            twice.clone(),
        );
    }
    for (name, extra) in [("append-byte", vec![0u8]), ("append-newline", vec![b'\n'])] {
        g.push_plain(
            format!("raw-{name}"),
            Identity,
            Either,
            [big.clone(), extra].concat(),
            twice.clone(),
        );
    }

    // Passphrase files: one scrypt stanza, a 16-byte salt, a decimal work
    // factor without leading zeros, a 32-byte body.
    let salt = args_of(&scrypt10)[1].clone();
    let scrypt_body = scrypt10.lines().nth(1).unwrap().to_string();
    g.p("scrypt-good", Accept, &scrypt10);
    let empty = g
        .keys
        .file(&format!("{INTRO}{scrypt10}"), &g.keys.payload_of(&[]));
    g.push_plain("scrypt-good-empty", Passphrase, Accept, empty, Vec::new());
    for (name, factor) in [
        ("leading-zero", "010"),
        ("zero", "0"),
        ("plus", "+10"),
        ("minus", "-10"),
        ("exponent", "1e1"),
        ("decimal-point", "10.0"),
        ("hex", "0xa"),
        ("letter", "a"),
    ] {
        g.p(
            &format!("scrypt-factor-{name}"),
            Refuse(4),
            &with_args(&scrypt10, &format!("scrypt {salt} {factor}")),
        );
    }
    g.p(
        "scrypt-factor-23",
        Refuse(2),
        &with_args(&scrypt10, &format!("scrypt {salt} 23")),
    );
    g.p(
        "scrypt-factor-huge",
        Refuse(2),
        &with_args(&scrypt10, &format!("scrypt {salt} 99999999999999999999999")),
    );
    g.p(
        "scrypt-factor-64",
        Refuse(2),
        &with_args(&scrypt10, &format!("scrypt {salt} 64")),
    );
    g.p(
        "scrypt-factor-11-wrong",
        Refuse(3),
        &with_args(&scrypt10, &format!("scrypt {salt} 11")),
    );
    for (name, args) in [
        ("salt-15", format!("scrypt {} 10", b64(&[3; 15]))),
        ("salt-17", format!("scrypt {} 10", b64(&[3; 17]))),
        ("salt-padded", format!("scrypt {salt}== 10")),
        (
            "salt-not-canonical",
            format!("scrypt {} 10", bump_last(&salt)),
        ),
        ("no-factor", format!("scrypt {salt}")),
        ("no-salt", "scrypt 10".to_string()),
        ("extra", format!("scrypt {salt} 10 x")),
        ("trailing-space", format!("scrypt {salt} 10 ")),
    ] {
        g.p(
            &format!("scrypt-{name}"),
            Refuse(4),
            &with_args(&scrypt10, &args),
        );
    }
    g.p(
        "scrypt-body-31",
        Refuse(4),
        &with_body(&scrypt10, &format!("{}\n", b64(&[5; 31]))),
    );
    g.p(
        "scrypt-body-33",
        Refuse(4),
        &with_body(&scrypt10, &format!("{}\n", b64(&[5; 33]))),
    );
    g.p(
        "scrypt-body-not-canonical",
        Refuse(4),
        &with_body(&scrypt10, &format!("{}\n", bump_last(&scrypt_body))),
    );
    g.p(
        "scrypt-no-body-line",
        Refuse(4),
        &format!("-> scrypt {salt} 10\n"),
    );
    g.p("scrypt-twice", Refuse(4), &format!("{scrypt10}{scrypt10}"));
    g.p(
        "scrypt-beside-unknown",
        Refuse(4),
        &format!("{scrypt10}{grease}"),
    );
    let other = stanza_of(&g.keys.scrypt("another passphrase", 10));
    g.p("scrypt-wrong-passphrase", Refuse(3), &other);
    g.p("scrypt-x25519-file", Refuse(3), &ours);
    let scrypt_text = format!("{INTRO}{scrypt10}");
    for at in (INTRO.len()..scrypt_text.len()).step_by(4) {
        let mut bytes = scrypt_text.clone().into_bytes();
        bytes[at] ^= 0x01;
        let mutated = String::from_utf8(bytes).unwrap();
        let bytes = g.keys.file(&mutated, &g.keys.payload_of(&g.plain));
        g.push(format!("scrypt-remac-flip-{at}"), Passphrase, Either, bytes);
    }
    g
}

/// One program's verdict on a case.
#[derive(Debug)]
struct Verdict {
    exit: i32,
    output: Option<Vec<u8>>,
    stderr: String,
}

/// Runs stock `age -d` on passphrase files, each on its own pty, typing
/// the passphrase when age asks for it (echo off); files it refuses before
/// asking are never typed to.
const AGE_ON_A_PTY: &str = r#"
import json, os, pty, select, sys, termios, time
spec = json.loads(sys.argv[1])
results = []
for case in spec["cases"]:
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(spec["age"], [spec["age"], "-d", "-o", case["out"], case["file"]])
        finally:
            os._exit(127)
    sent = False
    out = bytearray()
    deadline = time.time() + 60
    while True:
        if not sent:
            try:
                off = not (termios.tcgetattr(fd)[3] & termios.ECHO)
            except termios.error:
                off = False
            if off:
                os.write(fd, (spec["passphrase"] + "\n").encode())
                sent = True
        r, _, _ = select.select([fd], [], [], 0.02)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                break
            out.extend(chunk)
        if time.time() > deadline:
            os.kill(pid, 9)
            break
    _, status = os.waitpid(pid, 0)
    results.append({"exit": os.waitstatus_to_exitcode(status), "asked": sent,
                    "transcript": out.decode("utf-8", "replace")})
print(json.dumps(results))
"#;

fn which(program: &str) -> String {
    let out = clean_command("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    let path = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        !path.is_empty(),
        "`{program}` is missing: install the Debian package `{program}` (scripts/test does as root)"
    );
    path
}

fn read_output(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

#[test]
fn tresor_accepts_exactly_what_stock_age_and_the_spec_accept() {
    use age::secrecy::ExposeSecret;
    let t = Tresor::new();
    let age = which("age");
    which("python3");
    let identity = age::x25519::Identity::generate();
    let g = generate(&identity);
    let id_file = t.write_key(
        "identity.txt",
        format!("{}\n", identity.to_string().expose_secret()).as_bytes(),
    );
    let pass_file = t.write("passphrase.txt", format!("{PASSPHRASE}\n").as_bytes());
    let dir = t.path("cases");
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = g
        .cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let path = dir.join(format!("{i:03}-{}.age", c.name));
            std::fs::write(&path, &c.bytes).unwrap();
            path
        })
        .collect();
    let out_of = |i: usize, who: &str| dir.join(format!("{i:03}.{who}.out"));

    // Stock age.
    let mut by_age: BTreeMap<usize, Verdict> = BTreeMap::new();
    let mut on_pty = Vec::new();
    for (i, c) in g.cases.iter().enumerate() {
        match c.mode {
            Mode::Identity => {
                let out = clean_command(&age)
                    .arg("-d")
                    .arg("-i")
                    .arg(&id_file)
                    .arg("-o")
                    .arg(out_of(i, "age"))
                    .arg(&files[i])
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                let exit = out.status.code().unwrap_or(-1);
                by_age.insert(
                    i,
                    Verdict {
                        exit,
                        output: (exit == 0)
                            .then(|| read_output(&out_of(i, "age")).unwrap_or_default()),
                        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                    },
                );
            }
            Mode::Passphrase => on_pty.push(i),
        }
    }
    let spec = serde_json::json!({
        "age": age,
        "passphrase": PASSPHRASE,
        "cases": on_pty.iter().map(|&i| serde_json::json!({
            "file": files[i],
            "out": out_of(i, "age"),
        })).collect::<Vec<_>>(),
    });
    let out = clean_command("python3")
        .arg("-c")
        .arg(AGE_ON_A_PTY)
        .arg(spec.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the pty driver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut asked = 0;
    for (&i, r) in on_pty.iter().zip(&results) {
        let exit = i32::try_from(r["exit"].as_i64().unwrap()).unwrap();
        asked += usize::from(r["asked"].as_bool().unwrap());
        by_age.insert(
            i,
            Verdict {
                exit,
                output: (exit == 0).then(|| read_output(&out_of(i, "age")).unwrap_or_default()),
                stderr: r["transcript"].as_str().unwrap().to_string(),
            },
        );
    }

    // tresor.
    let mut problems = Vec::new();
    let mut accepted = (0, 0);
    let mut over_age = 0;
    for (i, c) in g.cases.iter().enumerate() {
        let out_path = out_of(i, "tresor");
        let file = files[i].display().to_string();
        let target = out_path.display().to_string();
        let credential = match c.mode {
            Mode::Identity => ["-i".to_string(), id_file.display().to_string()],
            Mode::Passphrase => [
                "--passphrase-file".to_string(),
                pass_file.display().to_string(),
            ],
        };
        let args = [
            "decrypt",
            &credential[0],
            &credential[1],
            "-o",
            &target,
            &file,
        ];
        let out = t
            .cmd(&args)
            .into_command()
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let exit = out.status.code().unwrap_or(-1);
        let ours = Verdict {
            exit,
            output: read_output(&out_path),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let theirs = &by_age[&i];
        accepted.0 += usize::from(theirs.exit == 0);
        accepted.1 += usize::from(ours.exit == 0);
        let mut wrong = |why: String| {
            problems.push(format!(
                "{} ({:?}): {why}\n  tresor: exit {}: {}\n  age: exit {}: {}",
                c.name,
                c.mode,
                ours.exit,
                ours.stderr.trim(),
                theirs.exit,
                theirs.stderr.trim()
            ));
        };
        let spec_over_age = SPEC_OVER_AGE.iter().any(|(p, _)| c.name.starts_with(p));
        if spec_over_age {
            over_age += 1;
            if theirs.exit != 0 {
                wrong("listed as accepted by age against the spec, but age refused it".into());
            }
        } else if (ours.exit == 0) != (theirs.exit == 0) {
            wrong("tresor and age disagree".into());
        }
        match c.spec {
            Spec::Accept if ours.exit != 0 => wrong("the spec accepts it".into()),
            Spec::Refuse(code) if ours.exit != code => {
                wrong(format!("the spec refuses it: tresor should exit {code}"));
            }
            Spec::Either if ours.exit != 0 && ![2, 3, 4].contains(&ours.exit) => {
                wrong("refused with an unexpected exit code".into());
            }
            _ => {}
        }
        if ours.exit == 0 {
            if ours.output.as_deref() != Some(&c.plain[..]) {
                wrong("tresor accepted it but wrote another plaintext".into());
            }
            if theirs.exit == 0 && theirs.output != ours.output {
                wrong("tresor and age wrote different plaintexts".into());
            }
        } else {
            if ours.output.is_some() {
                wrong("tresor refused it but left an output file".into());
            }
            if ours.stderr.contains("panicked") || !ours.stderr.contains("error") {
                wrong("tresor refused it without a clear error".into());
            }
        }
        // Refused to stdout: nothing written there either.
        if matches!(c.spec, Spec::Refuse(_)) && c.mode == Mode::Identity {
            let out = t
                .cmd(&["decrypt", "-i", &credential[1], &file])
                .into_command()
                .stdin(Stdio::null())
                .output()
                .unwrap();
            if !out.stdout.is_empty() || out.status.success() {
                wrong("refused, yet something went to stdout".into());
            }
        }
    }
    eprintln!(
        "age conformance: {} cases ({} with a passphrase on a pty, {} of them typed to); \
         age accepted {}, tresor accepted {}; {} cases where tresor follows the spec over \
         age; {} problems",
        g.cases.len(),
        on_pty.len(),
        asked,
        accepted.0,
        accepted.1,
        over_age,
        problems.len()
    );
    assert!(
        g.cases.len() >= 300,
        "the generator wrote only {}",
        g.cases.len()
    );
    // Typed to: every passphrase file age got as far as asking about.
    assert!(asked >= 5, "age asked for a passphrase only {asked} times");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// A passphrase file whose scrypt stanza claims work factor `claimed`
/// (its body made at 2^`made`, so a file claiming more than it was made
/// with opens with no passphrase); returns the file and its plaintext.
fn passphrase_file(claimed: &str, made: u8) -> (Vec<u8>, Vec<u8>) {
    let keys = Keys {
        file_key: *b"work-factor-fk16",
        ours: age::x25519::Identity::generate().to_public(),
        theirs: age::x25519::Identity::generate().to_public(),
    };
    let stanza = stanza_of(&keys.scrypt(PASSPHRASE, made));
    let salt = args_of(&stanza)[1].clone();
    let stanza = with_args(&stanza, &format!("scrypt {salt} {claimed}"));
    let plain = b"work factor\n".to_vec();
    let file = keys.file(&format!("{INTRO}{stanza}"), &keys.payload_of(&plain));
    (file, plain)
}

#[test]
fn a_work_factor_above_22_is_refused_before_any_memory_is_allocated() {
    let t = Tresor::new();
    let pass = t.write("pass", format!("{PASSPHRASE}\n").as_bytes());
    let (file, _) = passphrase_file("23", 10);
    let sealed = t.write("big.age", &file);
    let out = t.path("big.out");
    // 2^23 needs 8 GiB: under a 2 GiB address-space limit an attempt to
    // allocate it would abort; the refusal comes first, with exit code 2.
    let script = format!(
        "ulimit -v 2097152; exec '{BIN}' decrypt --passphrase-file '{}' -o '{}' '{}'",
        pass.display(),
        out.display(),
        sealed.display()
    );
    let result = clean_command("sh")
        .args(["-c", &script])
        .env("TRESOR_VAULT", &t.vault)
        .env("HOME", t.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    for needle in [
        "scrypt work factor of 2^23",
        "above the limit of 2^22",
        "8 GiB",
        "--max-work-factor 23",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing: {stderr}");
    }
    assert!(!out.exists());
    // The JSON error names the family and carries the same hint.
    let o = t.run(&[
        "--json",
        "decrypt",
        "--passphrase-file",
        &pass.display().to_string(),
        &sealed.display().to_string(),
    ]);
    o.code(2);
    let e = o.err_json();
    assert!(
        e["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("--max-work-factor 23")),
        "{e}"
    );
}

#[test]
fn max_work_factor_raises_and_lowers_the_limit() {
    let t = Tresor::new();
    let pass = t.write("pass", format!("{PASSPHRASE}\n").as_bytes());
    let pass = pass.display().to_string();
    let (file, plain) = passphrase_file("12", 12);
    let sealed = t.write("f.age", &file).display().to_string();
    // The default (22) reads it; a limit of 11 refuses it and names 12.
    let o = t.run(&["decrypt", "--passphrase-file", &pass, &sealed]);
    o.ok();
    assert_eq!(o.stdout, plain);
    t.run(&[
        "decrypt",
        "--passphrase-file",
        &pass,
        "--max-work-factor",
        "11",
        &sealed,
    ])
    .code(2)
    .err_has(&["2^12", "above the limit of 2^11", "--max-work-factor 12"]);
    // A raised limit is taken by the parser: 23 reads a 2^12 file as before
    // (a real 2^23 file would then take 8 GiB and half a minute).
    let o = t.run(&[
        "decrypt",
        "--passphrase-file",
        &pass,
        "--max-work-factor",
        "23",
        &sealed,
    ]);
    o.ok();
    assert_eq!(o.stdout, plain);
    // A file claiming 2^13, made at 2^12: within the limit it gets past the
    // limit to the key, which does not open (exit 3); below, the limit stops
    // it first (exit 2).
    let (claims, _) = passphrase_file("13", 12);
    let claims = t.write("claims.age", &claims).display().to_string();
    t.run(&["decrypt", "--passphrase-file", &pass, &claims])
        .code(3);
    t.run(&[
        "decrypt",
        "--passphrase-file",
        &pass,
        "--max-work-factor",
        "12",
        &claims,
    ])
    .code(2)
    .err_has(&["--max-work-factor 13"]);
    // Out of range.
    for bad in ["0", "64", "x"] {
        t.run(&[
            "decrypt",
            "--passphrase-file",
            &pass,
            "--max-work-factor",
            bad,
            &sealed,
        ])
        .code(2);
    }
}

#[test]
fn on_a_terminal_a_refused_header_is_refused_before_the_passphrase_is_asked() {
    use common::pty::{Expect, Send, on_tty};
    let t = Tresor::new();
    let (big, _) = passphrase_file("23", 10);
    let big = t.write("big.age", &big).display().to_string();
    let (zero, _) = passphrase_file("012", 12);
    let zero = t.write("zero.age", &zero).display().to_string();
    for (args, needle) in [
        (
            vec![BIN, "decrypt", "-o", "out", &big],
            "--max-work-factor 23",
        ),
        (
            vec![BIN, "decrypt", "-p", "-o", "out", &big],
            "--max-work-factor 23",
        ),
        (vec![BIN, "decrypt", "-o", "out", &zero], "leading zeros"),
    ] {
        let run = on_tty(&t, &args, &[], &[Expect(needle)]);
        assert_ne!(run.exit, 0, "{}", run.text());
        assert!(!run.text().contains("Passphrase"), "{}", run.text());
        assert!(!t.path("out").exists());
    }
    // A good one is asked for, and opens.
    let (good, plain) = passphrase_file("12", 12);
    let good = t.write("good.age", &good).display().to_string();
    let typed = format!("{PASSPHRASE}\n");
    let run = on_tty(
        &t,
        &[BIN, "decrypt", "-o", "good.out", &good],
        &[],
        &[Expect("Passphrase: "), Send(&typed)],
    );
    assert_eq!(run.exit, 0, "{}", run.text());
    assert_eq!(std::fs::read(t.path("good.out")).unwrap(), plain);
}
