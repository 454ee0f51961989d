//! The [`Store`] contract over Key Vault.

use super::*;

impl Store for AzureKeyVault {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        // current and previous follow the versions (no pending, nothing to
        // move); Key Vault has no conditional writes.
        Capabilities {
            staging: false,
            move_labels: false,
            check_and_set: false,
            ..Capabilities::ALL
        }
    }

    fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
        if selector == Selector::Label(Label::Pending) {
            return Err(self.unsupported("the pending label"));
        }
        let kv = self.kv_name(name)?;
        let versions = self
            .versions(name, &kv)?
            .ok_or_else(|| self.not_found(format!("'{name}'")))?;
        let (number, what) = match selector {
            Selector::Version(n) => (Some(n), format!("'{name}' version {n}")),
            Selector::Label(Label::Current) => (versions.current(), format!("'{name}' (disabled)")),
            Selector::Label(Label::Previous) => {
                (versions.previous(), format!("'{name}' label previous"))
            }
            Selector::Label(Label::Pending) => unreachable!("refused above"),
        };
        let number = number.ok_or_else(|| self.not_found(what.clone()))?;
        let version = versions
            .get(number)
            .ok_or_else(|| self.not_found(what.clone()))?;
        if !version.enabled {
            return Err(self.not_found(format!("'{name}' version {number} (disabled)")));
        }
        self.read(name, &kv, version, number)
    }

    fn put(&mut self, name: &SecretName, value: &SecretValue, options: &PutOptions) -> Result<u64> {
        if options.stage {
            return Err(self.unsupported("staging a pending version"));
        }
        if options.expect_version.is_some() {
            return Err(self.unsupported("check-and-set (Key Vault has no conditional writes)"));
        }
        let kv = self.kv_name(name)?;
        let bytes = value.expose_secret();
        if bytes.len() > DEFAULT_MAX_VALUE_LEN {
            return Err(remote::too_large(&self.name, name, DEFAULT_MAX_VALUE_LEN));
        }
        validate_metadata(&options.metadata)?;
        let (text, content_type) = match std::str::from_utf8(bytes) {
            Ok(text) => (Zeroizing::new(text.to_string()), TEXT_CONTENT_TYPE),
            Err(_) => (Zeroizing::new(BASE64.encode(bytes)), BINARY_CONTENT_TYPE),
        };
        if text.len() > MAX_KEY_VAULT_VALUE {
            return Err(Error::TooLarge {
                what: format!(
                    "{}: the value for '{name}'{}",
                    self.name,
                    if content_type == BINARY_CONTENT_TYPE {
                        " as base64"
                    } else {
                        ""
                    }
                ),
                limit: MAX_KEY_VAULT_VALUE as u64,
            });
        }
        let versions = self.versions(name, &kv)?;
        let number = versions.as_ref().map_or(0, Versions::latest) + 1;
        let mut tags = versions
            .as_ref()
            .map(Versions::metadata)
            .unwrap_or_default();
        tags.extend(options.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        check_tags(&self.name, &tags)?;
        let mut tags: HashMap<String, String> = tags.into_iter().collect();
        tags.insert(VERSION_TAG.to_string(), number.to_string());

        // The request body, built in a buffer tresor wipes.
        let mut body = Zeroizing::new(Vec::with_capacity(text.len() + 256));
        serde_json::to_writer(
            &mut *body,
            &SetSecretParameters {
                content_type: Some(content_type.to_string()),
                tags: Some(tags),
                value: None,
                ..SetSecretParameters::default()
            },
        )
        .map_err(|_| Error::Integrity {
            store: self.name.clone(),
            detail: "the write request could not be encoded".to_string(),
        })?;
        // `{...}` becomes `{...,"value":"<text>"}`.
        body.pop();
        if body.len() > 1 {
            body.push(b',');
        }
        body.extend_from_slice(b"\"value\":");
        serde_json::to_writer(&mut *body, text.as_str()).expect("a string serializes");
        body.push(b'}');
        drop(text);
        let content: RequestContent<SetSecretParameters> = RequestContent::from(body.to_vec());
        drop(body);

        let what = format!("write of '{name}'");
        match self.run(self.client.set_secret(&kv, content, None)) {
            Ok(response) => {
                // The answer echoes the value: decode it only to wipe it.
                if let Ok(mut model) = response.into_model()
                    && let Some(mut v) = model.value.take()
                {
                    v.zeroize();
                }
                Ok(number)
            }
            Err(Failure::Sdk(e)) if status_of(&e) == Some(409) => Err(Error::Validation(format!(
                "{}: '{name}' is deleted but not purged in Key Vault: undelete or purge it first",
                self.name
            ))),
            Err(f) => Err(self.fail(&what, f)),
        }
    }

    fn delete(&mut self, name: &SecretName, mode: DeleteMode) -> Result<()> {
        let kv = self.kv_name(name)?;
        match mode {
            DeleteMode::Soft => match self.run(self.client.delete_secret(&kv, None)) {
                Ok(_) => Ok(()),
                Err(Failure::Sdk(e)) if status_of(&e) == Some(404) => {
                    Err(self.not_found(format!("'{name}'")))
                }
                Err(f) => Err(self.fail(&format!("delete of '{name}'"), f)),
            },
            DeleteMode::Purge => self.purge(name, &kv),
        }
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<SecretInfo>> {
        let what = "listing";
        let mut pager = self
            .client
            .list_secret_properties(Some(SecretClientListSecretPropertiesOptions::default()))
            .map_err(|e| self.fail(what, Failure::Sdk(e)))?;
        let mut names = Vec::new();
        loop {
            match self.run(async { pager.next().await.transpose() }) {
                Ok(Some(props)) => {
                    let Some(kv) = props.resource_id().ok().map(|r| r.name) else {
                        continue;
                    };
                    // Secrets of other tools under names tresor has no
                    // spelling for are left out.
                    if let Some(name) = secret_name(&kv)
                        && name.starts_with(prefix)
                    {
                        names.push((name, kv));
                    }
                }
                Ok(None) => break,
                Err(f) => return Err(self.fail(what, f)),
            }
        }
        let mut out = Vec::with_capacity(names.len());
        for (name, kv) in names {
            // Deleted (or purged) since the listing: leave it out.
            let Some(versions) = self.versions(&name, &kv)? else {
                continue;
            };
            let Some(current) = versions.current() else {
                continue;
            };
            let updated_at = versions.get(current).map_or(0, |v| v.updated);
            out.push(SecretInfo {
                metadata: versions.metadata(),
                name,
                current,
                latest: versions.latest(),
                pending: None,
                updated_at,
                deleted_at: None,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn history(&mut self, name: &SecretName) -> Result<Vec<VersionInfo>> {
        let kv = self.kv_name(name)?;
        let versions = self
            .versions(name, &kv)?
            .ok_or_else(|| self.not_found(format!("'{name}'")))?;
        let labels = (versions.current(), versions.previous());
        Ok(versions
            .0
            .iter()
            .zip(1u64..)
            .map(|(v, number)| remote::derived_version(number, v.created, None, labels))
            .collect())
    }

    fn undelete(&mut self, name: &SecretName) -> Result<()> {
        let kv = self.kv_name(name)?;
        if self.versions(name, &kv)?.is_some() {
            return Ok(()); // live: nothing to restore
        }
        let what = format!("undelete of '{name}'");
        match self.settle(false, || {
            self.run(self.client.recover_deleted_secret(&kv, None))
        }) {
            Ok(_) => {}
            Err(Failure::Sdk(e)) if status_of(&e) == Some(404) => {
                return Err(self.not_found(format!("'{name}' (not deleted, or purged)")));
            }
            Err(f) => return Err(self.fail(&what, f)),
        }
        // Key Vault recovers in the background: wait until the secret reads.
        let deadline = std::time::Instant::now() + self.timeout;
        while self.versions(name, &kv)?.is_none() {
            if std::time::Instant::now() + SETTLE_POLL > deadline {
                return Err(Error::Unavailable {
                    store: self.name.clone(),
                    reason: format!("{what}: still recovering after {:?}", self.timeout),
                });
            }
            std::thread::sleep(SETTLE_POLL);
        }
        Ok(())
    }

    fn set_label(&mut self, _: &SecretName, _: Label, _: u64) -> Result<()> {
        Err(self.unsupported("moving labels (current and previous follow the versions)"))
    }

    fn health(&mut self) -> Health {
        let mut pager = match self
            .client
            .list_secret_properties(Some(SecretClientListSecretPropertiesOptions {
                maxresults: Some(1),
                ..SecretClientListSecretPropertiesOptions::default()
            }))
            .map(|p| p.into_pages())
        {
            Ok(p) => p,
            Err(e) => {
                return Health {
                    reachable: false,
                    authenticated: false,
                    detail: self.fail("health probe", Failure::Sdk(e)).to_string(),
                };
            }
        };
        match self.run(async { pager.next().await.transpose() }) {
            Ok(_) => Health {
                reachable: true,
                authenticated: true,
                detail: format!("Key Vault at {}; token accepted", self.vault_url),
            },
            Err(f) => {
                let e = self.fail("health probe", f);
                let reachable = !matches!(e, Error::Unavailable { .. });
                Health {
                    reachable,
                    authenticated: false,
                    detail: e.to_string(),
                }
            }
        }
    }
}

/// Checks metadata against Key Vault's tag limits.
pub(super) fn check_tags(store: &str, tags: &Metadata) -> Result<()> {
    if tags.contains_key(VERSION_TAG) {
        return Err(Error::Malformed {
            what: format!("{store}: the metadata key '{VERSION_TAG}'"),
            problem: "is tresor's own in Key Vault".to_string(),
        });
    }
    if tags.len() > MAX_TAGS - 1 {
        return Err(Error::Malformed {
            what: format!("{store}: metadata"),
            problem: format!(
                "Key Vault keeps at most {} metadata entries per secret; this write would make {}",
                MAX_TAGS - 1,
                tags.len()
            ),
        });
    }
    if let Some((k, _)) = tags
        .iter()
        .find(|(k, v)| k.chars().count() > MAX_TAG_NAME || v.chars().count() > MAX_TAG_VALUE)
    {
        return Err(Error::Malformed {
            what: format!(
                "{store}: the metadata entry '{}'",
                remote::shorten_to(k, 64)
            ),
            problem: format!(
                "is too long for Key Vault (keys up to {MAX_TAG_NAME}, values up to \
                 {MAX_TAG_VALUE} characters)"
            ),
        });
    }
    Ok(())
}
