//! The redaction filter alone (`tresor::redact`), for scripts/bench-run:
//! 1,000 values of 32 random characters (each with its encoded forms),
//! filtered over text in 64 KiB pieces as `tresor run --redact` reads
//! them, against a plain copy of the same pieces. Times are the thread's
//! CPU time, so other work on the machine does not lower the figures.
//!
//! cargo run --release -p tresor --example bench_redact [-- MIB]

use std::time::Instant;

/// This thread's CPU time in seconds: the figures hold on a busy machine.
fn cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

use tresor::redact::Redactor;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("MiB"))
        .unwrap_or(512);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let values: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|i| {
            let v = (0..32)
                .map(|_| ALNUM[(next() % ALNUM.len() as u64) as usize])
                .collect();
            (format!("bench/s{i}"), v)
        })
        .collect();
    let built = Instant::now();
    let r = Redactor::new(values.iter().map(|(n, v)| (n.as_str(), v.as_slice()))).unwrap();
    let build_ms = built.elapsed().as_secs_f64() * 1e3;
    // Log-like text: words, numbers, base64-ish tokens, newlines.
    let mut text = Vec::with_capacity(8 << 20);
    while text.len() < 8 << 20 {
        let len = 1 + next() % 24;
        for _ in 0..len {
            text.push(ALNUM[(next() % ALNUM.len() as u64) as usize]);
        }
        text.push(if next() % 8 == 0 { b'\n' } else { b' ' });
    }
    // One planted value per MiB.
    text.truncate(8 << 20);
    for (k, chunk) in text.chunks_mut(1 << 20).enumerate() {
        let v = &values[k % values.len()].1;
        chunk[1000..1000 + v.len()].copy_from_slice(v);
    }
    let total = mib << 20;
    let mut out = Vec::with_capacity(80 << 10);
    let mut found = 0usize;
    let filter = |out: &mut Vec<u8>, found: &mut usize, count: bool| {
        let mut s = r.stream();
        let start = cpu();
        let mut done = 0;
        while done < total {
            for piece in text.chunks(64 << 10) {
                out.clear();
                s.push(piece, out);
                if count {
                    *found += out.windows(10).filter(|w| w == b"[redacted:").count();
                }
                done += piece.len();
            }
        }
        cpu() - start
    };
    // One round counts the replacements (untimed), the next is timed.
    filter(&mut out, &mut found, true);
    let secs = filter(&mut out, &mut found, false);
    let copy_start = cpu();
    let mut done = 0;
    let mut sink = 0u64;
    while done < total {
        for piece in text.chunks(64 << 10) {
            out.clear();
            out.extend_from_slice(piece);
            sink = sink.wrapping_add(u64::from(out[out.len() - 1]));
            done += piece.len();
        }
    }
    let copy = cpu() - copy_start;
    // Latency: one short line through a fresh push.
    let mut s = r.stream();
    let line = b"prompt> ready for input\n";
    let rounds = 100_000;
    let lat_start = cpu();
    for _ in 0..rounds {
        out.clear();
        s.push(line, &mut out);
    }
    let per_line_us = (cpu() - lat_start) * 1e6 / f64::from(rounds);
    println!(
        "{{\"patterns\": {}, \"build_ms\": {build_ms:.1}, \"mib\": {mib}, \
         \"filter_mb_s\": {:.0}, \"copy_mb_s\": {:.0}, \"line_us\": {per_line_us:.2}, \
         \"redacted\": {found}, \"sink\": {}}}",
        r.patterns(),
        total as f64 / secs / 1e6,
        total as f64 / copy / 1e6,
        sink % 2
    );
}
