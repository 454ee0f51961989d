//! `tresor audit anchor` and `tresor audit verify [--anchor ANCHOR]`.

use clap::Args;
use serde_json::json;

use tresor::{AuditAnchor, Error, Result, Vault};

use crate::commands::{Ctx, done};
use crate::output;

/// What rolling back the whole vault file looks like from inside it: nothing.
/// An anchor kept elsewhere is what shows it.
const ANCHOR_HELP: &str = "\
The anchor names the chain's newest entry by its position and keyed MAC (and the vault id),
as one line: tresor-audit-anchor:v1:<vault id>:<seq>:<mac>:<tag>. Nothing in it is secret.

Why: the audit chain proves that no entry was edited, removed or reordered, but a vault file
replaced by an older copy of itself carries an older chain that is intact too; nothing inside
one file can show that. Keep the anchor outside the vault (another machine, a remote store,
a ticket, a commit), and later run `tresor audit verify --anchor ANCHOR`: it fails (exit 4)
when the vault no longer holds that entry with that MAC, i.e. the file was rolled back to a
copy older than the anchor, or rolled back and written since.

`tresor rekey --reencrypt` and `--master` re-seal the chain (every MAC changes): take a new
anchor after each; older ones are then reported as uncheckable (exit 4).

Examples:
  tresor audit anchor > audit-anchor.txt
  tresor audit anchor | tresor --store bao set audit/anchor
  tresor audit verify --anchor \"$(cat audit-anchor.txt)\"";

#[derive(Debug, Args)]
#[command(after_long_help = ANCHOR_HELP)]
pub struct AuditAnchorArgs {}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// Also check that the chain still holds this anchor's entry (as `tresor audit anchor`
    /// printed it): fails with exit 4 when the vault file was rolled back to an older copy.
    #[arg(long, value_name = "ANCHOR")]
    pub anchor: Option<String>,
}

/// `tresor audit anchor`: checks the chain, then prints its head.
pub fn anchor(ctx: &Ctx, mut vault: Vault) -> Result<()> {
    let a = vault.audit_anchor()?;
    if ctx.json {
        // The anchor is data to keep: a reader that goes away is an error.
        output::data_json(&json!({
            "anchor": a.to_string(),
            "vault_id": a.vault_id_hex(),
            "seq": a.seq,
            "mac": a.mac_hex(),
            "tag": a.tag_hex(),
        }))?;
    } else {
        output::data_line(&a.to_string())?;
        ctx.status(&format!(
            "audit chain intact; anchor at entry {}. Keep this line outside the vault and check \
             it later with `tresor audit verify --anchor ANCHOR`",
            a.seq
        ));
    }
    Ok(())
}

/// `tresor audit verify [--anchor ANCHOR]`.
/// Unlocks (with `unlock`) afresh when a `rekey --master` in another process
/// overtook it (see `commands::again_if_rekeyed`).
pub fn verify(ctx: &Ctx, a: AuditVerifyArgs, unlock: impl Fn() -> Result<Vault>) -> Result<()> {
    use crate::commands::again_if_rekeyed;
    let Some(text) = a.anchor else {
        let n = again_if_rekeyed(|| unlock()?.audit_verify())?;
        done(
            ctx,
            json!({"ok": true, "entries": n}),
            &format!("audit chain intact: {n} entries"),
        );
        return Ok(());
    };
    let anchor = AuditAnchor::parse(&text).map_err(|e| {
        Error::Validation(format!("--anchor: {e}, as `tresor audit anchor` prints it"))
    })?;
    let n = again_if_rekeyed(|| unlock()?.audit_verify_anchor(&anchor))?;
    done(
        ctx,
        json!({"ok": true, "entries": n, "anchor": {"seq": anchor.seq, "found": true}}),
        &format!(
            "audit chain intact: {n} entries; it holds the anchored entry {}",
            anchor.seq
        ),
    );
    Ok(())
}
