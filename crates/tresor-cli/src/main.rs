//! The `tresor` command: parses arguments, unlocks the vault, calls the
//! library, prints, and picks an exit code. No logic of its own.
//!
//! The binary has its own C `main` (`#![no_main]`): Rust's runtime start-up
//! reads `/proc/self/maps` to place a stack guard and installs a stack
//! overflow handler, a fixed cost in every process that `tresor get` is
//! measured on. What of that start-up matters here is done in
//! [`start_process`]: standard descriptors that are closed are pointed at
//! `/dev/null` (so a vault file can never be opened as stdout), SIGPIPE is
//! ignored (a closed pipe is an error, exit 6, not a silent death), and
//! stdout is flushed before exit.

// Unit tests (`cargo test --bin tresor`) keep the test harness's own main.
#![cfg_attr(not(test), no_main)]

mod audit_cmd;
mod cli;
mod commands;
mod exit;
mod files_cmd;
mod input;
mod keys_cmd;
mod manager_cmd;
mod output;
mod session_cmd;
mod trust_cmd;

// The unit tests' allocator: it searches every freed buffer for secrets
// (output.rs tests that JSON holding a secret leaves no copy behind).
#[cfg(test)]
#[path = "../../tresor-core/tests/support/detector.rs"]
mod detector;

/// The process entry point (see the crate docs for why it is not Rust's).
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    start_process();
    let code = tresor_main();
    // Rust's runtime would flush stdout on exit; without it, do it here.
    // A failure has already been reported by the write that met it.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    libc::c_int::from(code)
}

/// The parts of Rust's runtime start-up that `tresor` relies on.
#[cfg_attr(test, allow(dead_code))]
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
fn tresor_main() -> u8 {
    // Secrets pass through this process: keep it out of core dumps and
    // ptrace before anything else happens. Failure is reported, not fatal.
    if let Err(e) = tresor::memory::harden_process() {
        eprintln!("tresor: warning: could not disable core dumps: {e}");
    }
    tresor::memory::set_lock_values(true);
    let cli = match cli::Cli::parse_args() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let json = cli.global.json;
    output::set_quiet(cli.global.quiet || json);
    let file_command = matches!(
        cli.command,
        cli::Command::Encrypt(_) | cli::Command::Decrypt(_)
    );
    match commands::run(cli) {
        Ok(()) => manager_cmd::EXIT.load(std::sync::atomic::Ordering::Relaxed),
        Err(e) => {
            if file_command {
                output::file_error(&e, json);
            } else {
                output::error(&e, json);
            }
            exit::code(&e) as u8
        }
    }
}

/// Reports an argument error from clap. `--help` and `--version` print as
/// usual (exit 0); a real usage error exits 2, printed as one JSON object
/// on stderr when `--json` appears among the arguments (before any `--`),
/// so scripts parsing stderr see the same shape as for every other error.
fn usage_error(e: clap::Error) -> u8 {
    use clap::error::ErrorKind;
    let informational = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    let wants_json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    if informational || !wants_json {
        // clap prints to stdout for help and to stderr for errors.
        let _ = e.print();
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
    let body = serde_json::json!({
        "error": { "kind": "usage", "message": message, "exit_code": 2 }
    });
    eprintln!("{body}");
    2
}
