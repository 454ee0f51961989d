//! `migrate` and `sync`: the arguments, the progress bar and the reports.
//! The work is the library's (`tresor::migrate`, `tresor::sync`).

use std::io::IsTerminal as _;
use std::sync::atomic::Ordering;

use clap::{Args, ValueEnum};
use serde_json::json;

use tresor::migrate::{self, Event, MigrateOptions, Outcome};
use tresor::sync::{self, Action, Prefer, SyncOptions};
use tresor::{Result, Tresor};

use crate::commands::Ctx;
use crate::exit::ExitCode;
use crate::manager_cmd::EXIT;
use crate::output;

const MIGRATE_HELP: &str = "\
Copy every secret under --prefix from one store to another: stores are the names in \
tresor.toml, and `vault` for the local vault when no configured store has that name.

Each secret is copied with all its versions, oldest first, when both stores keep versions \
(else its current value) and its metadata where both keep metadata; then read back from the \
target and compared with the source. If any copy fails, every write made to the target is \
rolled back. With --delete-source the source copies are deleted (soft where the source can \
undelete) only after every copy was verified.

A secret the target already holds with the same value is left alone; one it holds with \
another value is a conflict: nothing is written and the command exits with 5 (--dry-run \
lists them all).

A journal in the local vault records what a run is doing: if it is interrupted (a crash, a \
kill, the target going down), running the same command again removes any half-made copies \
and completes the migration.

Examples:
  tresor migrate --from vault --to team --prefix app/ --dry-run
  tresor migrate --from vault --to team --prefix app/ --jobs 16
  tresor migrate --from legacy --to vault --delete-source --json";

const SYNC_HELP: &str = "\
Bring two stores in step, three-way: against the state of the last sync of this pair (kept \
in the local vault: per name, the versions each side had and a keyed fingerprint of the value, \
never the value itself).

A change on one side since the last sync is copied to the other; a deletion is propagated \
(soft where the store can undelete). A name changed on both sides to different values, or \
changed on one and deleted on the other, is a conflict: listed and left alone, and the command \
exits with 5. Settle it with --prefer a (the first store wins), b, or newer (the later change, \
where both stores give change times), or change one side by hand and sync again.

Only names whose listing (version, change time) moved since the last sync are read, so a sync \
costs in proportion to what changed.

Examples:
  tresor sync vault team --prefix app/ --dry-run
  tresor sync vault backup
  tresor sync vault team --prefer newer --json";

#[derive(Debug, Args)]
#[command(long_about = MIGRATE_HELP)]
pub struct MigrateArgs {
    /// The store to copy from (a name from tresor.toml, or `vault`).
    #[arg(long, value_name = "STORE")]
    pub from: String,
    /// The store to copy to.
    #[arg(long, value_name = "STORE")]
    pub to: String,
    /// Only secrets whose names start with PREFIX.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Delete each secret from the source once every copy is verified.
    #[arg(long)]
    pub delete_source: bool,
    /// Show what would be copied; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Writers to the target at once (remote stores; a vault file takes one).
    #[arg(long, short = 'j', default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Why (kept in the versions written and the audit log).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PreferArg {
    /// The first store wins.
    A,
    /// The second store wins.
    B,
    /// The side changed last wins (when both stores give change times).
    Newer,
}

#[derive(Debug, Args)]
#[command(long_about = SYNC_HELP)]
pub struct SyncArgs {
    /// The first store (a name from tresor.toml, or `vault`).
    pub a: String,
    /// The second store.
    pub b: String,
    /// Only secrets whose names start with PREFIX.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Settle conflicts: a, b or newer. Without it they are listed and left alone.
    #[arg(long, value_enum)]
    pub prefer: Option<PreferArg>,
    /// Show what would change; write nothing (the sync state included).
    #[arg(long)]
    pub dry_run: bool,
}

/// A progress bar on a terminal's stderr; nothing with --json, --quiet or
/// when stderr is not a terminal.
fn progress_bar(ctx: &Ctx, total: usize) -> Option<indicatif::ProgressBar> {
    if ctx.json || ctx.quiet || !std::io::stderr().is_terminal() || total == 0 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} copying [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

pub fn migrate(ctx: &Ctx, t: &mut Tresor, a: MigrateArgs) -> Result<()> {
    let options = MigrateOptions {
        from: a.from,
        to: a.to,
        prefix: a.prefix,
        delete_source: a.delete_source,
        dry_run: a.dry_run,
        jobs: usize::from(a.jobs),
        reason: a.reason,
    };
    let mut bar: Option<indicatif::ProgressBar> = None;
    let json = ctx.json;
    let mut events = |e: Event<'_>| match e {
        Event::Start(n) => bar = progress_bar(ctx, n),
        Event::Copied(_) => {
            if let Some(b) = &bar {
                b.inc(1);
            }
        }
        Event::Warning(text) => {
            let say = |text: &str| {
                if json {
                    eprintln!("{}", json!({ "warning": text }));
                } else {
                    eprintln!("tresor: warning: {text}");
                }
            };
            match &bar {
                Some(b) => b.suspend(|| say(&text)),
                None => say(&text),
            }
        }
    };
    let result = migrate::migrate(t, &options, &mut events);
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
    let report = result?;
    if ctx.json {
        output::json(&report);
        return Ok(());
    }
    if !ctx.quiet {
        for s in &report.secrets {
            let what = match s.outcome {
                Outcome::Copied if s.versions > 1 => format!("copied ({} versions)", s.versions),
                Outcome::Copied => "copied".into(),
                Outcome::Unchanged => "already there".into(),
                Outcome::WouldCopy => "would copy".into(),
                Outcome::Conflict => "conflict (the target holds another value)".into(),
                Outcome::Failed => "failed".into(),
            };
            let deleted = if s.source_deleted {
                ", deleted from the source"
            } else {
                ""
            };
            output::line(&format!("{}\t{what}{deleted}", s.name));
        }
    }
    let summary = if report.dry_run {
        format!(
            "dry run: {} to copy from '{}' to '{}', {} already there, {} in conflict; nothing written",
            report
                .secrets
                .iter()
                .filter(|s| s.outcome == Outcome::WouldCopy)
                .count(),
            report.from,
            report.to,
            report.unchanged,
            report.conflicts
        )
    } else {
        let mut s = format!(
            "migrated {} secret(s) from '{}' to '{}', each read back and verified; {} already there",
            report.copied, report.from, report.to, report.unchanged
        );
        if let Some(mode) = report.delete_mode {
            let how = if mode == "soft" {
                "soft-deleted (undelete restores them)"
            } else {
                "deleted"
            };
            s.push_str(&format!(
                "; {} {how} from '{}'",
                report.source_deleted, report.from
            ));
        }
        if report.resumed {
            s.push_str(" (an interrupted run was completed)");
        }
        s
    };
    ctx.status(&summary);
    Ok(())
}

pub fn sync(ctx: &Ctx, t: &mut Tresor, a: SyncArgs) -> Result<()> {
    let options = SyncOptions {
        a: a.a,
        b: a.b,
        prefix: a.prefix,
        prefer: a.prefer.map(|p| match p {
            PreferArg::A => Prefer::A,
            PreferArg::B => Prefer::B,
            PreferArg::Newer => Prefer::Newer,
        }),
        dry_run: a.dry_run,
    };
    let report = sync::sync(t, &options)?;
    if report.conflicts > 0 {
        EXIT.store(ExitCode::Conflict as u8, Ordering::Relaxed);
    }
    if ctx.json {
        output::json(&report);
        return Ok(());
    }
    let (an, bn) = (report.a.as_str(), report.b.as_str());
    let side = |s: sync::SideState| match s {
        sync::SideState::Unchanged => "unchanged",
        sync::SideState::Changed => "changed",
        sync::SideState::Deleted => "deleted",
        sync::SideState::Absent => "absent",
    };
    if !ctx.quiet {
        let would = if report.dry_run { "would " } else { "" };
        for c in &report.changes {
            let what = match c.action {
                Action::CopyAToB => format!("{would}copy {an} -> {bn}"),
                Action::CopyBToA => format!("{would}copy {bn} -> {an}"),
                Action::DeleteInA => format!("{would}delete in {an}"),
                Action::DeleteInB => format!("{would}delete in {bn}"),
                Action::Conflict => format!(
                    "CONFLICT ({an}: {}, {bn}: {}); left alone",
                    side(c.a),
                    side(c.b)
                ),
            };
            let settled = match c.settled_by {
                Some(Prefer::A) => " (conflict settled: --prefer a)",
                Some(Prefer::B) => " (conflict settled: --prefer b)",
                Some(Prefer::Newer) => " (conflict settled: --prefer newer)",
                None => "",
            };
            output::line(&format!("{}\t{what}{settled}", c.name));
        }
    }
    let acted = report.changes.len() - report.conflicts;
    ctx.status(&format!(
        "{}{} of {} name(s) {}, {} in step, {} conflict(s){}",
        if report.dry_run { "dry run: " } else { "" },
        acted,
        report.names,
        if report.dry_run {
            "to change"
        } else {
            "changed"
        },
        report.unchanged,
        report.conflicts,
        if report.conflicts > 0 {
            "; settle them with --prefer a|b|newer, or change one side and sync again"
        } else {
            ""
        }
    ));
    Ok(())
}
