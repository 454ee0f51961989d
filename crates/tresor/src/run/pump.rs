//! The program's stdout and stderr, read from their pipes and written to
//! ours through the redaction filter. One thread polls both pipes, so what
//! the program wrote to each comes out in the order it was read; a tail
//! that could be the start of a value is held back at most
//! [`FLUSH_AFTER`].

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::redact::{Redactor, Stream};

/// How long a possible start of a value is held back for more data.
pub(super) const FLUSH_AFTER: Duration = Duration::from_millis(2);
const CHUNK: usize = 64 * 1024;

struct Pipe<'r> {
    from: Option<OwnedFd>,
    to: RawFd,
    stream: Stream<'r>,
    holding_since: Option<Instant>,
}

pub(super) fn pump(r: &Redactor, out: OwnedFd, err: OwnedFd) {
    let mut pipes = [
        Pipe {
            from: Some(out),
            to: 1,
            stream: r.stream(),
            holding_since: None,
        },
        Pipe {
            from: Some(err),
            to: 2,
            stream: r.stream(),
            holding_since: None,
        },
    ];
    let mut buf = Zeroizing::new(vec![0u8; CHUNK]);
    let mut filtered = Zeroizing::new(Vec::with_capacity(CHUNK + 1024));
    loop {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(2);
        let mut which = Vec::with_capacity(2);
        for (i, p) in pipes.iter().enumerate() {
            if let Some(fd) = &p.from {
                fds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(i);
            }
        }
        if fds.is_empty() {
            return;
        }
        let now = Instant::now();
        let timeout = pipes
            .iter()
            .filter_map(|p| p.holding_since)
            .map(|since| FLUSH_AFTER.saturating_sub(now - since))
            .min()
            .map_or(-1, |d| {
                libc::c_int::try_from(d.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX)
            });
        // SAFETY: poll on descriptors we own, in an array we own.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        for (k, pfd) in fds.iter().enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            let p = &mut pipes[which[k]];
            // SAFETY: read into our buffer from a descriptor we own.
            let got = unsafe { libc::read(pfd.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if got < 0 {
                let e = std::io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) {
                    continue;
                }
            }
            filtered.clear();
            if got > 0 {
                p.stream.push(&buf[..got as usize], &mut filtered);
                p.holding_since = match (p.stream.holding(), p.holding_since) {
                    (false, _) => None,
                    (true, Some(since)) => Some(since),
                    (true, None) => Some(Instant::now()),
                };
            } else {
                // The end (or a read error): what is held goes out.
                p.stream.flush(&mut filtered);
                p.from = None;
                p.holding_since = None;
            }
            if !write_all(p.to, &filtered) {
                // Our side is closed: so is the program's, as if it wrote
                // to it directly.
                p.from = None;
                p.holding_since = None;
            }
        }
        // Held tails whose time is up go out as they are.
        let now = Instant::now();
        for p in &mut pipes {
            if p.holding_since
                .is_some_and(|since| now - since >= FLUSH_AFTER)
            {
                filtered.clear();
                p.stream.flush(&mut filtered);
                p.holding_since = None;
                if !write_all(p.to, &filtered) {
                    p.from = None;
                }
            }
        }
    }
}

/// Writes everything to `fd`; false once it cannot be written to.
fn write_all(fd: RawFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        // SAFETY: write from a slice we hold.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n >= 0 {
            data = &data[n as usize..];
            continue;
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => {}
            std::io::ErrorKind::WouldBlock => {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: poll on one descriptor, in a local.
                unsafe { libc::poll(&mut pfd, 1, -1) };
            }
            _ => return false,
        }
    }
    true
}
