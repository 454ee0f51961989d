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

fn main() -> ExitCode {
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

/// Reports an argument error from clap. `--help` and `--version` print as
/// usual (exit 0); a real usage error exits 2, printed as one JSON object
/// on stderr when `--json` appears among the arguments (before any `--`),
/// so scripts parsing stderr see the same shape as for every other error.
fn usage_error(e: clap::Error) -> ExitCode {
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
        return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
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
    ExitCode::from(2)
}
