//! Secrets Manager calls on the store's runtime.

use super::*;

impl Aws {
    // --- calls --------------------------------------------------------------

    pub(super) fn id(&self, name: &SecretName) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The secret's labels, tags and deletion state; `None` if it does not
    /// exist. Versions are numbered from the labelled ones when all are
    /// tresor's, else from a full listing.
    pub(super) fn state(&self, name: &SecretName) -> Result<Option<State>> {
        self.state_with(name, false)
    }

    /// [`Aws::state`]; `every_version` numbers from a full listing even when
    /// the labelled versions are all tresor's (unlabelled ones included).
    pub(super) fn state_with(
        &self,
        name: &SecretName,
        every_version: bool,
    ) -> Result<Option<State>> {
        let id = self.id(name);
        let described = self.call(self.client.describe_secret().secret_id(&id).send(), false);
        let out = match described {
            Ok(out) => out,
            Err(f) => {
                return match f.code() {
                    Some(NOT_FOUND) => Ok(None),
                    _ => Err(self.error(f, &format!("'{name}'"))),
                };
            }
        };
        let labelled: Vec<(String, i64, Vec<String>)> = out
            .version_ids_to_stages()
            .map(|m| {
                m.iter()
                    .map(|(id, stages)| (id.clone(), 0, stages.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let versions =
            if !every_version && labelled.iter().all(|(id, ..)| token_number(id).is_some()) {
                number_versions(labelled)
            } else {
                self.list_versions(name)?
            };
        Ok(Some(State {
            deleted_at: out.deleted_date().map(millis),
            versions,
            tags: tags_to_metadata(out.tags()),
        }))
    }

    /// Every version (deprecated ones included), numbered, in listing order.
    pub(super) fn list_versions(&self, name: &SecretName) -> Result<Vec<Version>> {
        let id = self.id(name);
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.call(
                self.client
                    .list_secret_version_ids()
                    .secret_id(&id)
                    .include_deprecated(true)
                    .max_results(PAGE)
                    .set_next_token(token.take())
                    .send(),
                false,
            );
            let page = page.map_err(|f| self.error(f, &format!("'{name}'")))?;
            for v in page.versions() {
                if let Some(vid) = v.version_id() {
                    listed.push((
                        vid.to_string(),
                        v.created_date().map_or(0, millis),
                        v.version_stages().to_vec(),
                    ));
                }
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
        Ok(number_versions(listed))
    }

    /// Reads one version, by id or by stage.
    pub(super) fn read(
        &self,
        name: &SecretName,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<(String, SecretValue), Failure> {
        let out = self.call(
            self.client
                .get_secret_value()
                .secret_id(self.id(name))
                .set_version_id(version_id.map(str::to_string))
                .set_version_stage(stage.map(str::to_string))
                .send(),
            false,
        )?;
        let mut out = out;
        let id = out.version_id().unwrap_or_default().to_string();
        let value = if let Some(text) = out.secret_string.take() {
            SecretValue::from(text)
        } else if let Some(blob) = out.secret_binary.take() {
            SecretValue::from(blob.into_inner())
        } else {
            SecretValue::from(Vec::new())
        };
        Ok((id, value))
    }

    /// The number of the version with id `version_id`.
    pub(super) fn number_of(&self, name: &SecretName, version_id: &str) -> Result<u64> {
        if let Some(n) = token_number(version_id) {
            return Ok(n);
        }
        self.list_versions(name)?
            .into_iter()
            .find(|v| v.id == version_id)
            .map(|v| v.number)
            .ok_or_else(|| Error::Integrity {
                store: self.name.clone(),
                detail: format!("'{name}': the version read is not in its version list"),
            })
    }

    pub(super) fn create(
        &self,
        name: &SecretName,
        value: &SecretValue,
        tags: Vec<Tag>,
    ) -> Result<(), Failure> {
        let call = self
            .client
            .create_secret()
            .name(self.id(name))
            .client_request_token(version_token(1))
            .set_tags((!tags.is_empty()).then_some(tags));
        let call = match std::str::from_utf8(value.expose_secret()) {
            Ok(text) => call.secret_string(text),
            Err(_) => call.secret_binary(Blob::new(value.expose_secret())),
        };
        self.call(call.send(), true).map(drop)
    }

    /// Writes version `number`; the stages the answer shows it holds.
    pub(super) fn put_version(
        &self,
        name: &SecretName,
        value: &SecretValue,
        number: u64,
        stage: bool,
    ) -> Result<Vec<String>, Failure> {
        let call = self
            .client
            .put_secret_value()
            .secret_id(self.id(name))
            .client_request_token(version_token(number))
            .set_version_stages(stage.then(|| vec![PENDING.to_string()]));
        let call = match std::str::from_utf8(value.expose_secret()) {
            Ok(text) => call.secret_string(text),
            Err(_) => call.secret_binary(Blob::new(value.expose_secret())),
        };
        self.call(call.send(), true)
            .map(|out| out.version_stages().to_vec())
    }

    pub(super) fn tag(&self, name: &SecretName, tags: Vec<Tag>) -> Result<()> {
        self.call(
            self.client
                .tag_resource()
                .secret_id(self.id(name))
                .set_tags(Some(tags))
                .send(),
            false,
        )
        .map(drop)
        .map_err(|f| self.error(f, &format!("tags of '{name}'")))
    }
}
