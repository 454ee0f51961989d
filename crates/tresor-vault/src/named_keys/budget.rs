//! The encryption budget of AES-256-GCM key versions: blocks of numbers
//! reserved durably before use, warnings near the budget, and the unused
//! rest given back when the vault is dropped.

use super::*;

impl Keys<'_> {
    /// Counts one encryption with an AES-256-GCM key version against its
    /// budget: from this process's reserved block, else by reserving the
    /// next block in the vault (committed before the encryption happens).
    pub(super) fn count_encryption(
        &mut self,
        name: &SecretName,
        owner: Owner,
        version: u32,
    ) -> Result<()> {
        let cache = &mut self.vault.named_keys;
        if let Some(block) = cache.reserved.get_mut(&(owner.uid, version))
            && block.next < block.end
        {
            block.next += 1;
            return Ok(());
        }
        let budget = cache.budget;
        let block = self.vault.transaction(|v| {
            let sealed: Option<u64> = v
                .conn()
                .prepare_cached(
                    "SELECT sealed FROM named_key_versions WHERE key_id_ref = ?1 AND version = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![owner.id, version], |r| r.get(0))
                        .optional()
                })
                .map_err(|e| v.db(e))?;
            let start = sealed.ok_or_else(|| destroyed(name, version))?;
            if start >= budget.limit {
                return Err(over_budget(name, version, budget.limit));
            }
            let end = start.saturating_add(budget.block).min(budget.limit);
            v.conn()
                .prepare_cached(
                    "UPDATE named_key_versions SET sealed = ?3 WHERE key_id_ref = ?1 AND version = ?2",
                )
                .and_then(|mut s| s.execute(params![owner.id, version, end]))
                .map_err(|e| v.db(e))?;
            Ok(Block {
                id: owner.id,
                next: start + 1,
                end,
            })
        })?;
        let cache = &mut self.vault.named_keys;
        if block.end > budget.warn_at {
            cache.warnings.push(BudgetWarning {
                name: name.clone(),
                version,
                sealed: block.end,
                limit: budget.limit,
            });
        }
        cache.reserved.insert((owner.uid, version), block);
        Ok(())
    }

    /// Takes the warnings of AES-256-GCM key versions near their budget
    /// ([`GCM_WARN_AT`] of [`GCM_BUDGET`] envelopes) given since the last
    /// call: one each time a block of encryptions is reserved past the
    /// mark. Show them to the user (the CLI prints them on stderr).
    pub fn take_budget_warnings(&mut self) -> Vec<BudgetWarning> {
        std::mem::take(&mut self.vault.named_keys.warnings)
    }
}

/// Gives back the unused rest of this process's reserved blocks when the
/// vault is dropped, so a short run (one `tresor key encrypt`) counts what it
/// used, not a whole block: `sealed` drops back to the next unused number,
/// only where no other process reserved after this one (its block ends
/// where the column stands). One `synchronous=NORMAL` transaction: a lost
/// give-back leaves the higher count, the safe side. Best effort.
pub(crate) fn release_reservations(v: &mut Vault) {
    let blocks: Vec<(u32, Block)> = v
        .named_keys
        .reserved
        .drain()
        .filter(|(_, b)| b.next < b.end)
        .map(|((_, version), b)| (version, b))
        .collect();
    if blocks.is_empty() {
        return;
    }
    if v.exec_cached("PRAGMA synchronous=NORMAL").is_err() {
        return;
    }
    let _ = v.transaction(|v| {
        for (version, b) in &blocks {
            v.conn()
                .prepare_cached(
                    "UPDATE named_key_versions SET sealed = ?3
                     WHERE key_id_ref = ?1 AND version = ?2 AND sealed = ?4",
                )
                .and_then(|mut s| s.execute(params![b.id, version, b.next, b.end]))
                .map_err(|e| v.db(e))?;
        }
        Ok(())
    });
    let _ = v.exec_cached("PRAGMA synchronous=FULL");
}
