//! The [`Store`] contract over Secrets Manager.

use super::*;

impl Store for Aws {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
        let what = match selector {
            Selector::Label(Label::Current) => format!("'{name}'"),
            other => format!("'{name}' {other}"),
        };
        let read = match selector {
            Selector::Version(0) => return Err(self.not_found(what)),
            Selector::Version(n) => match self.read(name, Some(&version_token(n)), None) {
                // Not one of tresor's ids: a version another tool wrote?
                Err(f) if f.code() == Some(NOT_FOUND) => {
                    if self.state(name)?.is_none() {
                        return Err(self.not_found(what));
                    }
                    let versions = self.list_versions(name)?;
                    match versions
                        .iter()
                        .find(|v| v.number == n && token_number(&v.id).is_none())
                    {
                        Some(v) => self.read(name, Some(&v.id), None),
                        None => return Err(self.not_found(what)),
                    }
                }
                other => other,
            },
            Selector::Label(label) => self.read(name, None, Some(stage_of(label))),
        };
        let (id, value) = read.map_err(|f| self.read_error(f, &what))?;
        let version = self.number_of(name, &id)?;
        Ok(Secret {
            name: name.clone(),
            version,
            value,
        })
    }

    fn put(&mut self, name: &SecretName, value: &SecretValue, options: &PutOptions) -> Result<u64> {
        self.check_value(name, value)?;
        let tags = self.tags_for(&options.metadata)?;
        let what = format!("write of '{name}'");
        for round in 0..WRITE_ROUNDS {
            // After a collision, count unlabelled versions too: the newest
            // version may have lost its label to another tool.
            let Some(state) = self.state_with(name, round > 0)? else {
                if let Some(expected) = options.expect_version.filter(|&v| v != 0) {
                    return Err(Error::Conflict {
                        store: self.name.clone(),
                        name: name.to_string(),
                        expected,
                        found: 0,
                    });
                }
                if options.stage {
                    return Err(self.not_found(format!(
                        "'{name}' (a pending version needs the secret to exist; write it first)"
                    )));
                }
                match self.create(name, value, tags.clone()) {
                    Ok(()) => return Ok(1),
                    // Another writer created it first.
                    Err(f) if f.code() == Some(EXISTS) => {
                        if options.expect_version.is_some() {
                            let found = self.state(name)?.map_or(0, |s| s.current());
                            return Err(Error::Conflict {
                                store: self.name.clone(),
                                name: name.to_string(),
                                expected: 0,
                                found,
                            });
                        }
                        continue;
                    }
                    Err(f) => return Err(self.error(f, &what)),
                }
            };
            if state.deleted_at.is_some() {
                return Err(Error::Validation(format!(
                    "{}: '{name}' is scheduled for deletion: undelete or purge it before writing",
                    self.name
                )));
            }
            let current = state.current();
            if let Some(expected) = options.expect_version
                && expected != current
            {
                return Err(Error::Conflict {
                    store: self.name.clone(),
                    name: name.to_string(),
                    expected,
                    found: current,
                });
            }
            let number = state.latest() + 1;
            let wanted = if options.stage { PENDING } else { CURRENT };
            let taken = match self.put_version(name, value, number, options.stage) {
                // The same bytes already written under this number by another
                // writer count as ours only while the version holds the label.
                Ok(stages) => !stages.iter().any(|s| s == wanted),
                Err(f) if f.code() == Some(EXISTS) => true,
                Err(f) => return Err(self.error(f, &what)),
            };
            if taken {
                if let Some(expected) = options.expect_version {
                    let found = self.state(name)?.map_or(0, |s| s.current());
                    return Err(Error::Conflict {
                        store: self.name.clone(),
                        name: name.to_string(),
                        expected,
                        found,
                    });
                }
                continue;
            }
            if !tags.is_empty() {
                self.tag(name, tags)?;
            }
            return Ok(number);
        }
        Err(Error::Unavailable {
            store: self.name.clone(),
            reason: format!(
                "{what}: other writers took the next version number {WRITE_ROUNDS} times in a row"
            ),
        })
    }

    fn delete(&mut self, name: &SecretName, mode: DeleteMode) -> Result<()> {
        let what = format!("'{name}'");
        let call = self.client.delete_secret().secret_id(self.id(name));
        let call = match mode {
            DeleteMode::Soft => call.recovery_window_in_days(i64::from(self.recovery_window_days)),
            DeleteMode::Purge => {
                // Secrets Manager force-deletes a missing secret without
                // complaint; tresor says it was not there.
                if self.state(name)?.is_none() {
                    return Err(self.not_found(what));
                }
                call.force_delete_without_recovery(true)
            }
        };
        match self.call(call.send(), false) {
            Ok(_) => Ok(()),
            Err(f) => match f.code() {
                Some(INVALID_REQUEST) if f.mentions_deletion() => {
                    Err(self.not_found(format!("{what} (already deleted)")))
                }
                _ => Err(self.error(f, &format!("delete of {what}"))),
            },
        }
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<SecretInfo>> {
        let full = format!("{}{prefix}", self.prefix);
        // The service reads a leading '-' or '!' as negation; such prefixes
        // (and the empty one) are matched here only.
        let filter = (!full.is_empty() && !full.starts_with(['-', '!'])).then(|| {
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values(&full)
                .build()
        });
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.call(
                self.client
                    .list_secrets()
                    .include_planned_deletion(false)
                    .max_results(PAGE)
                    .set_filters(filter.clone().map(|f| vec![f]))
                    .set_next_token(token.take())
                    .send(),
                false,
            );
            let page = page.map_err(|f| self.error(f, &format!("listing of '{prefix}'")))?;
            for entry in page.secret_list() {
                let Some(aws_name) = entry.name() else {
                    continue;
                };
                if entry.deleted_date().is_some() || !aws_name.starts_with(&full) {
                    continue;
                }
                let Ok(name) = SecretName::new(&aws_name[self.prefix.len()..]) else {
                    continue;
                };
                let labelled: Vec<_> = entry
                    .secret_versions_to_stages()
                    .map(|m| {
                        m.iter()
                            .map(|(id, stages)| (id.clone(), 0, stages.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                let versions = if labelled.iter().all(|(id, ..)| token_number(id).is_some()) {
                    number_versions(labelled)
                } else {
                    self.list_versions(&name)?
                };
                let state = State {
                    deleted_at: None,
                    versions,
                    tags: tags_to_metadata(entry.tags()),
                };
                out.push(SecretInfo {
                    current: state.current(),
                    latest: state.latest(),
                    pending: state.holder(PENDING).map(|v| v.number),
                    updated_at: entry.last_changed_date().map_or(0, millis),
                    deleted_at: None,
                    metadata: state.tags,
                    name,
                });
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        Ok(out)
    }

    fn history(&mut self, name: &SecretName) -> Result<Vec<VersionInfo>> {
        if self.state(name)?.is_none() {
            return Err(self.not_found(format!("'{name}'")));
        }
        let mut versions = self.list_versions(name)?;
        if versions.is_empty() {
            return Err(self.not_found(format!("'{name}'")));
        }
        versions.sort_by_key(|v| v.number);
        Ok(versions
            .into_iter()
            .map(|v| VersionInfo {
                version: v.number,
                created_at: v.created_at,
                actor: String::new(),
                reason: None,
                labels: v.labels(),
                destroyed_at: None,
                len: 0,
            })
            .collect())
    }

    fn undelete(&mut self, name: &SecretName) -> Result<()> {
        self.call(
            self.client.restore_secret().secret_id(self.id(name)).send(),
            false,
        )
        .map(drop)
        .map_err(|f| self.error(f, &format!("'{name}'")))
    }

    fn set_label(&mut self, name: &SecretName, label: Label, version: u64) -> Result<()> {
        let state = self
            .state(name)?
            .ok_or_else(|| self.not_found(format!("'{name}'")))?;
        if state.deleted_at.is_some() {
            return Err(self.not_found(format!("'{name}' (deleted)")));
        }
        let target = state.versions.iter().find(|v| v.number == version).cloned();
        // A version without labels is missing from DescribeSecret's map.
        let target = match target {
            Some(t) => t,
            None => self
                .list_versions(name)?
                .into_iter()
                .find(|v| v.number == version)
                .ok_or_else(|| self.not_found(format!("'{name}' version {version}")))?,
        };
        let stage = stage_of(label);
        let holder = state.holder(stage).map(|v| v.id.clone());
        if holder.as_deref() == Some(target.id.as_str()) {
            return Ok(());
        }
        self.call(
            self.client
                .update_secret_version_stage()
                .secret_id(self.id(name))
                .version_stage(stage)
                .move_to_version_id(&target.id)
                .set_remove_from_version_id(holder)
                .send(),
            false,
        )
        .map(drop)
        .map_err(|f| self.error(f, &format!("moving label {label} of '{name}'")))
    }

    fn health(&mut self) -> Health {
        let probe = self.call(self.client.list_secrets().max_results(1).send(), false);
        let place = format!(
            "Secrets Manager in {} at {}",
            self.region,
            self.endpoint.as_deref().unwrap_or("AWS")
        );
        match probe {
            Ok(_) => Health {
                reachable: true,
                authenticated: true,
                detail: format!("{place}; credentials accepted"),
            },
            Err(f) => match self.error(f, "probe") {
                Error::Unavailable { reason, .. } => Health {
                    reachable: false,
                    authenticated: false,
                    detail: reason,
                },
                Error::Auth { reason, .. } => Health {
                    reachable: true,
                    authenticated: false,
                    detail: format!("{place}; {reason}"),
                },
                other => Health {
                    reachable: true,
                    authenticated: false,
                    detail: format!("{place}; {other}"),
                },
            },
        }
    }
}
