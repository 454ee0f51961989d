//! `stores` and `doctor`: each store's state, and a probe that writes,
//! reads back and deletes a scratch secret.

#[allow(unused_imports)]
use super::*;

/// A row of `tresor stores`.
#[derive(Clone, Debug, Serialize)]
pub struct StoreStatus {
    /// The store's name.
    pub name: String,
    /// Its kind (`None` for a store given in code).
    pub kind: Option<StoreKind>,
    /// Its settings.
    #[serde(flatten)]
    pub settings: StoreSettings,
    /// Whether it can be used now.
    pub available: bool,
    /// Why not, or what it is.
    pub detail: String,
    /// Where its credentials come from, as the config says (empty for a
    /// store given in code).
    pub credentials: Vec<CredentialSource>,
    /// Where it sends requests (see [`StoreConfig::destination`]).
    pub sends_to: Option<String>,
    /// What it can do (`None` when it could not be built, e.g. offline).
    pub capabilities: Option<Capabilities>,
}

/// What `doctor` found about one store.
#[derive(Clone, Debug, Serialize)]
pub struct Checkup {
    /// The store's name.
    pub name: String,
    /// Its kind.
    pub kind: Option<StoreKind>,
    /// Whether reads fail without it.
    pub required: bool,
    /// It answered.
    pub reachable: bool,
    /// It accepted our credentials.
    pub authenticated: bool,
    /// The write/read/delete probe: `ok`, `skipped` or `failed`.
    pub probe: &'static str,
    /// Details of the probe (why skipped or failed).
    pub probe_detail: String,
    /// The scratch name was removed again (`None`: nothing was written).
    pub cleaned_up: Option<bool>,
    /// Wall time of the whole check.
    pub latency_ms: f64,
    /// The store's own summary.
    pub detail: String,
    /// Offline copies kept for it (`None`: no cache).
    pub cached_copies: Option<usize>,
    /// Reachable, authenticated and the probe passed or was skipped.
    pub healthy: bool,
    /// Where its credentials come from, as the config says.
    pub credentials: Vec<CredentialSource>,
    /// Where it sends requests.
    pub sends_to: Option<String>,
}

impl Tresor {
    /// The stores, with their settings and whether each can be used now.
    /// Vaults are opened but not unlocked; other stores are asked for their
    /// health.
    pub fn status(&mut self) -> Vec<StoreStatus> {
        (0..self.entries.len())
            .map(|i| {
                let (available, detail) = self.availability(i);
                let capabilities = self.capabilities_at(i);
                let e = &self.entries[i];
                StoreStatus {
                    name: e.name.clone(),
                    kind: e.kind,
                    settings: e.settings,
                    available,
                    detail,
                    credentials: e.credentials.clone(),
                    sends_to: e.sends_to.clone(),
                    capabilities,
                }
            })
            .collect()
    }

    /// What store `i` can do, if it is built (vaults always: every
    /// capability, as the vault's `Store` implementation claims).
    fn capabilities_at(&self, i: usize) -> Option<Capabilities> {
        match &self.entries[i].state {
            State::Local | State::Vault(_) => Some(Capabilities::ALL),
            State::Config(c) if c.kind == StoreKind::Vault => Some(Capabilities::ALL),
            State::Ready(s) => Some(s.capabilities()),
            State::Config(_) => None,
        }
    }

    /// Probes every store: reachable, authenticated, and a write / read /
    /// delete round trip on a scratch name under `.tresor/doctor/` (skipped
    /// for read-only stores), cleaned up whatever happens.
    pub fn doctor(&mut self) -> Vec<Checkup> {
        (0..self.entries.len()).map(|i| self.checkup(i)).collect()
    }

    pub(super) fn availability(&mut self, i: usize) -> (bool, String) {
        if self.offline && self.is_remote(i) {
            return (false, "offline mode".into());
        }
        let vault_path = match &self.entries[i].state {
            State::Local => Some(self.local_path()),
            State::Config(c) if c.kind == StoreKind::Vault => Some(
                c.options
                    .get("path")
                    .and_then(|v| match v {
                        OptionValue::Text(p) => Some(PathBuf::from(p)),
                        _ => None,
                    })
                    .unwrap_or_else(|| self.local_path()),
            ),
            State::Vault(v) => Some(v.path().to_path_buf()),
            _ => None,
        };
        if let Some(path) = vault_path {
            if matches!(&self.local, Local::Open(v) if v.path() == path) {
                return (true, format!("{} (unlocked)", path.display()));
            }
            let opened = crate::Unlock::new()
                .open_options()
                .and_then(|options| LockedVault::open(&path, &options));
            return match opened {
                Ok(_) => (true, path.display().to_string()),
                Err(e) => (false, e.to_string()),
            };
        }
        match self.checked(i, |s| Ok(s.health())) {
            Ok(h) => (h.reachable && h.authenticated, h.detail),
            Err(e) => (false, e.to_string()),
        }
    }

    pub(super) fn checkup(&mut self, i: usize) -> Checkup {
        let start = Instant::now();
        let name = self.entries[i].name.clone();
        let mut c = Checkup {
            name: name.clone(),
            kind: self.entries[i].kind,
            required: self.entries[i].settings.required,
            reachable: false,
            authenticated: false,
            probe: "skipped",
            probe_detail: String::new(),
            cleaned_up: None,
            latency_ms: 0.0,
            detail: String::new(),
            cached_copies: None,
            healthy: false,
            credentials: self.entries[i].credentials.clone(),
            sends_to: self.entries[i].sends_to.clone(),
        };
        if self.entries[i].settings.cache {
            c.cached_copies = self
                .local_vault()
                .and_then(|v| v.list(&format!("{CACHE_PREFIX}{name}/"), false))
                .map(|l| l.len())
                .ok();
        }
        if self.offline && self.is_remote(i) {
            c.detail = "offline mode: not contacted".into();
            c.probe_detail = "offline".into();
            c.latency_ms = ms(start.elapsed());
            return c;
        }
        // Forget an earlier failure: the doctor always asks.
        self.entries[i].down = None;
        let health = self.checked(i, |s| Ok(s.health()));
        match health {
            Ok(Health {
                reachable,
                authenticated,
                detail,
            }) => {
                c.reachable = reachable;
                c.authenticated = authenticated;
                c.detail = detail;
            }
            Err(e) => {
                c.reachable = !is_unavailable(&e);
                c.detail = e.to_string();
            }
        }
        if c.reachable && c.authenticated {
            if !self.writable(i) {
                c.probe_detail = "read-only store: the write probe is skipped".into();
            } else {
                self.probe(i, &mut c);
            }
        } else {
            c.probe_detail = "store not usable".into();
        }
        c.healthy = c.reachable && c.authenticated && c.probe != "failed";
        if !c.healthy && c.cached_copies.is_some_and(|n| n > 0) {
            c.detail.push_str("; reads fall back to its offline copies");
        }
        c.latency_ms = ms(start.elapsed());
        c
    }

    /// Write, read back, delete a random scratch name; the delete runs
    /// whenever the write may have happened, whatever else failed.
    pub(super) fn probe(&mut self, i: usize, c: &mut Checkup) {
        let mut random = [0u8; 12];
        let _ = getrandom::fill(&mut random);
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let Ok(scratch) = SecretName::new(format!(".tresor/doctor/{hex}")) else {
            return;
        };
        let mut expected = Zeroizing::new([0u8; 32]);
        let _ = getrandom::fill(&mut expected[..]);
        let value = SecretValue::copy_from(&expected[..]);
        let options = PutOptions {
            reason: Some("tresor doctor probe".into()),
            ..PutOptions::default()
        };
        let written = self.checked(i, |s| s.put(&scratch, &value, &options));
        let read = match &written {
            Ok(_) => self
                .checked(i, |s| s.get(&scratch, Selector::default()))
                .and_then(|got| {
                    if got.value.expose_secret() == &expected[..] {
                        Ok(())
                    } else {
                        Err(Error::Integrity {
                            store: c.name.clone(),
                            detail: "the probe read back another value than it wrote".into(),
                        })
                    }
                }),
            Err(_) => Ok(()),
        };
        // A failed write may still have landed (a timeout after the server
        // acted), and it marked the store down: ask it anyway.
        self.entries[i].down = None;
        let cleanup = self.checked(i, |s| s.delete(&scratch, DeleteMode::Purge));
        c.cleaned_up = Some(match (&written, &cleanup) {
            (_, Ok(())) => true,
            // Nothing was written, and there is nothing to remove.
            (Err(_), Err(Error::NotFound { .. })) => true,
            _ => false,
        });
        let failure = written.err().or(read.err()).or(cleanup
            .err()
            .filter(|e| !matches!(e, Error::NotFound { .. })));
        match failure {
            None => {
                c.probe = "ok";
                c.probe_detail = "write, read back and delete of a scratch secret".into();
            }
            Some(e) => {
                c.probe = "failed";
                c.probe_detail = e.to_string();
            }
        }
    }
}
