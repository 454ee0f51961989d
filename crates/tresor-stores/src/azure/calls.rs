//! Key Vault calls: versions, reads, waiting for deletes, purges.

use super::*;

impl AzureKeyVault {
    // --- Key Vault calls ---------------------------------------------------

    /// Every version of `kv` in tresor's order; `None` when the secret does
    /// not exist (or is deleted).
    pub(super) fn versions(&self, name: &SecretName, kv: &str) -> Result<Option<Versions>> {
        let what = format!("'{name}'");
        let mut pager = self
            .client
            .list_secret_properties_versions(
                kv,
                Some(SecretClientListSecretPropertiesVersionsOptions::default()),
            )
            .map_err(|e| self.fail(&what, Failure::Sdk(e)))?;
        let mut items = Vec::new();
        loop {
            match self.run(async { pager.next().await.transpose() }) {
                Ok(Some(props)) => items.push(version_of(&props)),
                Ok(None) => break,
                Err(Failure::Sdk(e)) if status_of(&e) == Some(404) => return Ok(None),
                Err(f) => return Err(self.fail(&what, f)),
            }
        }
        if items.is_empty() {
            return Ok(None);
        }
        Ok(Some(Versions::from_properties(items)))
    }

    pub(super) fn read(
        &self,
        name: &SecretName,
        kv: &str,
        version: &KvVersion,
        number: u64,
    ) -> Result<Secret> {
        let what = format!("'{name}' version {number}");
        let options = SecretClientGetSecretOptions {
            secret_version: Some(version.id.clone()),
            ..SecretClientGetSecretOptions::default()
        };
        let response = self
            .run(self.client.get_secret(kv, Some(options)))
            .map_err(|f| self.fail(&what, f))?;
        let mut secret = response
            .into_model()
            .map_err(|e| self.fail(&what, Failure::Sdk(e)))?;
        let Some(text) = secret.value.take() else {
            return Err(Error::Integrity {
                store: self.name.clone(),
                detail: format!("{what}: the answer holds no value"),
            });
        };
        let text = Zeroizing::new(text);
        let binary = secret
            .content_type
            .as_deref()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(BINARY_CONTENT_TYPE));
        let value = if binary {
            SecretValue::from(
                BASE64
                    .decode(text.as_bytes())
                    .map_err(|_| Error::Integrity {
                        store: self.name.clone(),
                        detail: format!("{what}: marked binary but not valid base64"),
                    })?,
            )
        } else {
            SecretValue::copy_from(text.as_bytes())
        };
        Ok(Secret {
            name: name.clone(),
            version: number,
            value,
        })
    }

    /// Calls `attempt` until it stops answering 409 (Key Vault still
    /// finishing a delete or recovery) or, when `retry_404`, 404; bounded
    /// by the timeout.
    pub(super) fn settle<T>(
        &self,
        retry_404: bool,
        mut attempt: impl FnMut() -> std::result::Result<T, Failure>,
    ) -> std::result::Result<T, Failure> {
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            let outcome = attempt();
            let again = match &outcome {
                Err(Failure::Sdk(e)) => {
                    status_of(e) == Some(409) || (retry_404 && status_of(e) == Some(404))
                }
                _ => false,
            };
            if !again || std::time::Instant::now() + SETTLE_POLL > deadline {
                return outcome;
            }
            std::thread::sleep(SETTLE_POLL);
        }
    }

    pub(super) fn purge(&self, name: &SecretName, kv: &str) -> Result<()> {
        let what = format!("purge of '{name}'");
        let deleted_now = match self.run(self.client.delete_secret(kv, None)) {
            Ok(_) => true,
            Err(Failure::Sdk(e)) if status_of(&e) == Some(404) => false,
            Err(f) => return Err(self.fail(&what, f)),
        };
        // Right after DeleteSecret the deleted secret may not be there yet.
        match self.settle(deleted_now, || {
            self.run(self.client.purge_deleted_secret(kv, None))
        }) {
            Ok(_) => Ok(()),
            Err(Failure::Sdk(e)) if status_of(&e) == Some(404) => {
                Err(self.not_found(format!("'{name}'")))
            }
            Err(f) => Err(self.fail(&what, f)),
        }
    }
}

pub(super) fn millis(t: Option<azure_core::time::OffsetDateTime>) -> i64 {
    t.map_or(0, |t| {
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
    })
}

pub(super) fn version_of(props: &SecretProperties) -> KvVersion {
    let attributes = props.attributes.clone().unwrap_or_default();
    let tags = props.tags.clone().unwrap_or_default();
    KvVersion {
        id: props
            .resource_id()
            .ok()
            .and_then(|r| r.version)
            .unwrap_or_default(),
        created: millis(attributes.created),
        updated: millis(attributes.updated),
        enabled: attributes.enabled.unwrap_or(true),
        number_tag: tags.get(VERSION_TAG).and_then(|t| t.parse().ok()),
        tags,
    }
}

pub(super) fn user_tags(tags: &HashMap<String, String>) -> Metadata {
    tags.iter()
        .filter(|(k, _)| k.as_str() != VERSION_TAG)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
