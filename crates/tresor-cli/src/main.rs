//! The `tresor` command: parses arguments, unlocks the vault, calls the
//! library, prints, and picks an exit code. No logic of its own.

mod cli;
mod commands;
mod files_cmd;
mod input;
mod keys_cmd;
mod manager_cmd;
mod output;
mod session_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Secrets pass through this process: keep it out of core dumps and
    // ptrace before anything else happens. Failure is reported, not fatal.
    if let Err(e) = tresor::memory::harden_process() {
        eprintln!("tresor: warning: could not disable core dumps: {e}");
    }
    tresor::memory::set_lock_values(true);
    let cli = cli::Cli::parse();
    let json = cli.json;
    let file_command = matches!(
        cli.command,
        cli::Command::Encrypt(_) | cli::Command::Decrypt(_)
    );
    match commands::run(cli) {
        Ok(()) => ExitCode::from(manager_cmd::EXIT.load(std::sync::atomic::Ordering::Relaxed)),
        Err(e) => {
            if file_command {
                output::file_error(&e, json);
            } else {
                output::error(&e, json);
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
