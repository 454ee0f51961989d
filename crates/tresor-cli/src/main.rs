//! The `tresor` command: parses arguments, unlocks the vault, calls the
//! library, prints, and picks an exit code. No logic of its own.
//!
//! On Linux with glibc the binary has its own C `main` (`#![no_main]`):
//! Rust's runtime start-up reads `/proc/self/maps` to place a stack guard
//! and installs a stack overflow handler, a fixed cost in every process that
//! `tresor get` is measured on. What of that start-up matters here is done
//! in [`start_process`]: standard descriptors that are closed are pointed at
//! `/dev/null` (so a vault file can never be opened as stdout), SIGPIPE is
//! ignored (a closed pipe is an error, exit 6, not a silent death), and
//! stdout is flushed before exit. The arguments are taken from the
//! `argc`/`argv` the C runtime passes to `main`, not from
//! `std::env::args`, which only glibc fills for a `no_main` program.
//!
//! Everywhere else (musl, other systems), and with the `std-main` feature,
//! the standard Rust `fn main` is used, whose runtime does the same
//! start-up work itself. `scripts/test` builds and runs that configuration
//! too. ARCHITECTURE.md lists the start-up measures and why.

// Unit tests (`cargo test --bin tresor`) keep the test harness's own main.
#![cfg_attr(
    all(
        not(test),
        target_os = "linux",
        target_env = "gnu",
        not(feature = "std-main")
    ),
    no_main
)]
// Unsafe code only in the C entry point and start-up below.
#![deny(unsafe_code)]

use std::ffi::OsString;

mod audit_cmd;
mod cli;
mod commands;
mod exit;
mod files_cmd;
mod import_cmd;
mod input;
mod keys_cmd;
mod manager_cmd;
mod move_cmd;
mod output;
mod progress;
mod run_cmd;
mod scan_cmd;
mod session_cmd;
mod trust_cmd;

// The unit tests' allocator: it searches every freed buffer for secrets
// (output.rs tests that JSON holding a secret leaves no copy behind).
#[cfg(test)]
#[path = "../../tresor-core/tests/support/detector.rs"]
#[allow(unsafe_code)] // a GlobalAlloc, unsafe by definition
mod detector;

/// The process entry point on Linux with glibc (see the crate docs for why
/// it is not Rust's).
#[cfg(all(
    not(test),
    target_os = "linux",
    target_env = "gnu",
    not(feature = "std-main")
))]
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    start_process();
    // SAFETY: the C runtime calls main with argc and the argv array of
    // NUL-terminated strings that stays valid for the life of the process.
    let args = unsafe { args_from_c(argc, argv) };
    let code = tresor_main(args);
    // Rust's runtime would flush stdout on exit; without it, do it here.
    // A failure has already been reported by the write that met it.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    libc::c_int::from(code)
}

/// The standard entry point everywhere else, and with the `std-main`
/// feature. Rust's runtime has already pointed closed standard descriptors
/// at `/dev/null` and ignored SIGPIPE, and flushes stdout on return.
#[cfg(all(
    not(test),
    not(all(target_os = "linux", target_env = "gnu", not(feature = "std-main")))
))]
fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(tresor_main(std::env::args_os().collect()))
}

/// The arguments from C's `argc`/`argv`, the program name first. Stops at
/// the first null pointer, so a short `argv` is never read past its end.
///
/// # Safety
///
/// `argv` is null, or points at `argc` pointers, each null or a
/// NUL-terminated string, all valid for the duration of the call.
#[allow(unsafe_code)]
#[cfg_attr(
    not(any(
        test,
        all(target_os = "linux", target_env = "gnu", not(feature = "std-main"))
    )),
    allow(dead_code)
)]
unsafe fn args_from_c(argc: libc::c_int, argv: *const *const libc::c_char) -> Vec<OsString> {
    use std::os::unix::ffi::OsStringExt;
    let count = usize::try_from(argc).unwrap_or(0);
    if argv.is_null() {
        return Vec::new();
    }
    (0..count)
        // SAFETY: index below argc, within the array (caller's contract).
        .map(|i| unsafe { *argv.add(i) })
        .take_while(|p| !p.is_null())
        // SAFETY: a non-null entry is a NUL-terminated string (contract).
        .map(|p| OsString::from_vec(unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes().to_vec()))
        .collect()
}

/// The parts of Rust's runtime start-up that `tresor` relies on, for the C
/// entry point.
#[allow(unsafe_code)]
#[cfg_attr(
    not(all(
        not(test),
        target_os = "linux",
        target_env = "gnu",
        not(feature = "std-main")
    )),
    allow(dead_code)
)]
fn start_process() {
    // SAFETY: poll, open and signal on this process's own descriptors and
    // signal table, with valid arguments; run before any other thread exists.
    unsafe {
        let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        });
        let polled = libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) >= 0;
        for pfd in &fds {
            let closed = if polled {
                pfd.revents & libc::POLLNVAL != 0
            } else {
                // poll refused (a sandbox, say): ask each descriptor.
                libc::fcntl(pfd.fd, libc::F_GETFD) == -1
                    && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
            };
            if closed {
                // In ascending order, the lowest free descriptor is this one.
                let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if fd != pfd.fd {
                    libc::abort();
                }
            }
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

#[cfg_attr(test, allow(dead_code))]
fn tresor_main(args: Vec<OsString>) -> u8 {
    // Secrets pass through this process: keep it out of core dumps and
    // ptrace before anything else happens. Failure is reported, not fatal.
    if let Err(e) = tresor::memory::harden_process() {
        eprintln!("tresor: warning: could not disable core dumps: {e}");
    }
    tresor::memory::set_lock_values(true);
    // Whether a usage error is to be JSON: `--json` among the arguments
    // (before any `--`); clap has the arguments by then.
    let wants_json = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    let cli = match cli::Cli::parse_args_from(args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e, wants_json),
    };
    let json = cli.global.json;
    output::set_quiet(cli.global.quiet || json);
    let context = exit::Context::of(&cli.command);
    match commands::run(cli) {
        Ok(()) => manager_cmd::EXIT.load(std::sync::atomic::Ordering::Relaxed),
        Err(e) => {
            output::report(&e, json, context);
            exit::code(&e) as u8
        }
    }
}

/// Reports an argument error from clap. `--help` and `--version` print as
/// usual (exit 0); a real usage error exits 2, printed as one JSON object
/// on stderr when `--json` appears among the arguments (before any `--`),
/// so scripts parsing stderr see the same shape as for every other error.
fn usage_error(e: clap::Error, wants_json: bool) -> u8 {
    use clap::error::ErrorKind;
    let informational = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    let nearest = nearest_command(&e);
    if informational || !wants_json {
        // clap prints to stdout for help and to stderr for errors.
        let _ = e.print();
        if let Some(cmd) = &nearest {
            eprintln!("tip: did you mean '{cmd}'?");
        }
        return if e.use_stderr() { 2 } else { 0 };
    }
    // clap's rendering, without its colour codes and trailing hint lines.
    let rendered = e.render().to_string();
    let message = rendered
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .filter(|l| !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join("\n");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    let mut body = serde_json::json!({
        "error": { "kind": "usage", "message": message, "exit_code": 2 }
    });
    if let Some(cmd) = nearest {
        body["error"]["hint"] = format!("did you mean '{cmd}'?").into();
    }
    eprintln!("{body}");
    2
}

/// For an unknown command: the command one edit away (a letter added,
/// dropped, changed, or two swapped: `gte`, `gt`, `sett`, `mr`), if exactly
/// one is and clap did not already suggest it. clap's own suggestion is by
/// likeness (`mr` → `migrate`) and misses swapped letters.
fn nearest_command(e: &clap::Error) -> Option<String> {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let suggested: Vec<String> = match e.get(ContextKind::SuggestedSubcommand) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        _ => Vec::new(),
    };
    let Some(ContextValue::String(typed)) = e.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    let cli = cli::Cli::command();
    let mut near = cli
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .flat_map(|c| std::iter::once(c.get_name()).chain(c.get_visible_aliases()))
        .filter(|name| strsim::osa_distance(typed, name) == 1);
    let first = near.next()?;
    (near.next().is_none() && !suggested.iter().any(|s| s == first)).then(|| first.to_string())
}

#[cfg(test)]
#[allow(unsafe_code)] // calls args_from_c on argv arrays it builds
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    /// The C entry point's arguments are exactly what `argv` holds, bytes
    /// that are not UTF-8 included, and nothing past `argc` or a null.
    #[test]
    fn args_come_from_argv() {
        let owned: Vec<CString> = [&b"tresor"[..], b"get", b"db/pass", b"--json"]
            .iter()
            .map(|a| CString::new(*a).unwrap())
            .collect();
        let mut argv: Vec<*const libc::c_char> = owned.iter().map(|c| c.as_ptr()).collect();
        argv.push(std::ptr::null());
        let argc = (argv.len() - 1) as libc::c_int;
        // SAFETY: argv holds argc valid strings and a terminating null.
        let args = unsafe { args_from_c(argc, argv.as_ptr()) };
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(bytes, [&b"tresor"[..], b"get", b"db/pass", b"--json"]);
        // The list parses as the same command line does.
        let cli = cli::Cli::parse_args_from(args).unwrap();
        assert!(cli.global.json);
        assert!(matches!(cli.command, cli::Command::Get(_)));

        // Bytes that are not UTF-8 come through as they are.
        let odd = CString::new(&b"caf\xe9"[..]).unwrap();
        let odd_argv = [odd.as_ptr(), std::ptr::null()];
        // SAFETY: one valid string and a terminating null.
        let odd_args = unsafe { args_from_c(1, odd_argv.as_ptr()) };
        assert_eq!(odd_args[0].as_bytes(), b"caf\xe9");

        // A smaller argc is honoured; a null before argc ends the list.
        // SAFETY: as above, reading fewer entries.
        assert_eq!(unsafe { args_from_c(2, argv.as_ptr()) }.len(), 2);
        let mut short = argv.clone();
        short[1] = std::ptr::null();
        // SAFETY: every entry read is a valid string or null.
        assert_eq!(unsafe { args_from_c(argc, short.as_ptr()) }.len(), 1);
        // SAFETY: a null argv is accepted.
        assert!(unsafe { args_from_c(3, std::ptr::null()) }.is_empty());
        // SAFETY: a negative argc reads nothing.
        assert!(unsafe { args_from_c(-1, argv.as_ptr()) }.is_empty());
    }
}
