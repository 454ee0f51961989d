//! Using named keys: envelopes sealed, opened and rewrapped, age keys lent
//! out for files, and the grouped audit entries of uses flushed.

use super::*;

impl Keys<'_> {
    /// Seals `plaintext` under the newest version of `name`; returns the
    /// envelope `tresor:v1:<name>:<version>:<base64url>`.
    pub fn encrypt(&mut self, name: &SecretName, plaintext: &[u8]) -> Result<String> {
        let result = self.encrypt_latest(name, plaintext);
        let (version, outcome) = match &result {
            Ok((_, version)) => (Some(u64::from(*version)), "ok"),
            Err(e) => (None, e.kind()),
        };
        self.record(
            Operation::KeyEncrypt,
            Some(name),
            version.as_slice(),
            outcome,
        )?;
        result.map(|(envelope, _)| envelope)
    }

    /// Opens an envelope made by [`Keys::encrypt`] or [`Keys::rewrap`].
    ///
    /// Errors: `NotFound` for an unknown key or version, or one destroyed by
    /// `delete`; `Validation` for a version below the key's minimum (the
    /// message names both) or a text that is not an envelope; `Integrity`
    /// for an envelope that was altered, truncated, or made by another vault.
    pub fn decrypt(&mut self, envelope: &str) -> Result<SecretValue> {
        let (name, result) = match self.open_envelope(envelope) {
            Ok((name, opened)) => (Some(name), opened),
            Err(e) => (None, Err(e)),
        };
        let (version, outcome) = match &result {
            Ok((_, version)) => (Some(u64::from(*version)), "ok"),
            Err(e) => (None, e.kind()),
        };
        self.record(
            Operation::KeyDecrypt,
            name.as_ref(),
            version.as_slice(),
            outcome,
        )?;
        let (mut plain, _) = result?;
        Ok(SecretValue::from(std::mem::take(&mut *plain)))
    }

    /// Opens an envelope and seals its plaintext again under the newest
    /// version of its key, without returning the plaintext. The same checks
    /// as [`Keys::decrypt`] apply to the old envelope.
    pub fn rewrap(&mut self, envelope: &str) -> Result<String> {
        let (name, result) = match self.open_envelope(envelope) {
            Ok((name, opened)) => {
                let result = opened.and_then(|(plain, from)| {
                    let (envelope, to) = self.encrypt_latest(&name, &plain)?;
                    Ok((envelope, from, to))
                });
                (Some(name), result)
            }
            Err(e) => (None, Err(e)),
        };
        let (versions, outcome) = match &result {
            Ok((_, from, to)) => ([u64::from(*from), u64::from(*to)], "ok"),
            Err(e) => ([0, 0], e.kind()),
        };
        let versions = if result.is_ok() { &versions[..] } else { &[] };
        self.record(Operation::KeyRewrap, name.as_ref(), versions, outcome)?;
        result.map(|(envelope, _, _)| envelope)
    }

    /// Lends the identity material of an age key (type
    /// [`KeyType::AgeX25519`]: 32 bytes, the X25519 secret scalar) to `f`,
    /// and audits the use like an envelope's (grouped; operation
    /// [`AgeUse::operation`], the version `f` reports, and the outcome).
    ///
    /// [`AgeUse::Recipient`] and [`AgeUse::Encrypt`] lend the newest
    /// version; [`AgeUse::Decrypt`] lends every version from the key's
    /// minimum decryption version up, newest first, and `f` says which one
    /// worked. The material stays in the vault's cache (wiped on drop); `f`
    /// must not keep a copy beyond its work.
    ///
    /// Errors: `NotFound` for an unknown key, `Validation` for a key of
    /// another type.
    pub fn age_use<T>(
        &mut self,
        name: &SecretName,
        purpose: AgeUse,
        f: impl FnOnce(&[(u32, &Key)]) -> Result<(T, Option<u32>)>,
    ) -> Result<T> {
        let result = self.age_versions(name, purpose).and_then(|versions| {
            let state = &self.vault.named_keys.keys[name.as_str()];
            let lent: Vec<(u32, &Key)> =
                versions.iter().map(|v| (*v, &state.material[v])).collect();
            f(&lent)
        });
        let (version, outcome) = match &result {
            Ok((_, version)) => (version.map(u64::from), "ok"),
            Err(e) => (None, e.kind()),
        };
        self.record(purpose.operation(), Some(name), version.as_slice(), outcome)?;
        result.map(|(value, _)| value)
    }

    /// Writes the audit entries of the uses gathered so far.
    pub fn flush(&mut self) -> Result<()> {
        if self.uses.is_empty() {
            return Ok(());
        }
        let uses = std::mem::take(&mut self.uses);
        self.since = None;
        let vault = &mut *self.vault;
        vault.exec_cached("PRAGMA synchronous=NORMAL")?;
        let result = vault.transaction(|v| {
            for u in &uses {
                let calls = match u.calls {
                    1 => "1 call".to_string(),
                    n => format!("{n} calls"),
                };
                let body = v.audit_body(
                    u.op.clone(),
                    u.name.as_ref(),
                    u.versions.clone(),
                    u.result,
                    Some(calls),
                );
                v.append_audit(&body)?;
            }
            Ok(())
        });
        let restored = vault.exec_cached("PRAGMA synchronous=FULL");
        if result.is_err() {
            // Keep them for the next attempt, an interval from now.
            self.uses = uses;
            self.since = Some(Instant::now());
        }
        result.and(restored)
    }
}
