//! The [`Store`] contract over KV v2.

use super::*;

impl Store for OpenBao {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        // current and previous are derived from the versions: KV v2 has no
        // labels to stage or move.
        Capabilities {
            staging: false,
            move_labels: false,
            ..Capabilities::ALL
        }
    }

    fn get(&mut self, name: &SecretName, selector: Selector) -> Result<Secret> {
        match selector {
            // KV v2 reads version 0 as the newest: never ask for it.
            Selector::Version(0) => Err(self.not_found(format!("'{name}' version 0"))),
            Selector::Version(v) => self.read_version(name, Some(v)),
            Selector::Label(Label::Current) => self.read_version(name, None),
            Selector::Label(Label::Previous) => {
                let meta = self
                    .read_metadata(name)?
                    .ok_or_else(|| self.not_found(format!("'{name}'")))?;
                if meta.current().is_none() {
                    return Err(self.not_found(format!("'{name}' (deleted)")));
                }
                let previous = meta
                    .previous()
                    .ok_or_else(|| self.not_found(format!("'{name}' label previous")))?;
                self.read_version(name, Some(previous))
            }
            Selector::Label(Label::Pending) => Err(self.unsupported("the pending label")),
        }
    }

    fn put(&mut self, name: &SecretName, value: &SecretValue, options: &PutOptions) -> Result<u64> {
        if options.stage {
            return Err(self.unsupported("staging a pending version"));
        }
        if value.len() > DEFAULT_MAX_VALUE_LEN {
            return Err(remote::too_large(&self.name, name, DEFAULT_MAX_VALUE_LEN));
        }
        validate_metadata(&options.metadata)?;
        let body = encode_put(value, options.expect_version);
        let reply = self.call(Method::Post, &self.data_path(name.as_str()), Some(&body))?;
        drop(body);
        let version = match reply.status {
            200 => reply.json()["data"]["version"]
                .as_u64()
                .ok_or_else(|| Error::Integrity {
                    store: self.name.clone(),
                    detail: format!("'{name}': the write answered without a version"),
                })?,
            400 if options.expect_version.is_some() && is_cas_error(&reply.errors()) => {
                let found = self.read_metadata(name)?.map_or(0, |m| m.latest);
                return Err(Error::Conflict {
                    store: self.name.clone(),
                    name: name.to_string(),
                    expected: options.expect_version.unwrap_or(0),
                    found,
                });
            }
            _ => return Err(self.http_error(&reply, &format!("write of '{name}'"))),
        };
        if !options.metadata.is_empty() {
            self.write_custom_metadata(name, &options.metadata)?;
        }
        Ok(version)
    }

    fn delete(&mut self, name: &SecretName, mode: DeleteMode) -> Result<()> {
        let meta = self
            .read_metadata(name)?
            .ok_or_else(|| self.not_found(format!("'{name}'")))?;
        let (path, what) = match mode {
            DeleteMode::Soft => {
                if meta.current().is_none() {
                    return Err(self.not_found(format!("'{name}' (already deleted)")));
                }
                (self.data_path(name.as_str()), "delete")
            }
            DeleteMode::Purge => (self.metadata_path(name.as_str()), "purge"),
        };
        let reply = self.call(Method::Delete, &path, None)?;
        match reply.status {
            200 | 204 => Ok(()),
            _ => Err(self.http_error(&reply, &format!("{what} of '{name}'"))),
        }
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<SecretInfo>> {
        let folder = prefix.rfind('/').map_or("", |i| &prefix[..=i]);
        let mut out = Vec::new();
        self.walk(folder, prefix, &mut out)?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn history(&mut self, name: &SecretName) -> Result<Vec<VersionInfo>> {
        let meta = self
            .read_metadata(name)?
            .ok_or_else(|| self.not_found(format!("'{name}'")))?;
        Ok(meta.history())
    }

    fn undelete(&mut self, name: &SecretName) -> Result<()> {
        let meta = self
            .read_metadata(name)?
            .ok_or_else(|| self.not_found(format!("'{name}'")))?;
        let latest = meta.versions.get(&meta.latest);
        match latest {
            Some(v) if v.live() => return Ok(()),
            Some(v) if v.deleted_at.is_some() && !v.destroyed => {}
            _ => return Err(self.not_found(format!("'{name}' (destroyed)"))),
        }
        let body = format!("{{\"versions\":[{}]}}", meta.latest);
        let path = format!("/v1/{}/undelete/{name}", self.mount);
        let reply = self.call(Method::Post, &path, Some(body.as_bytes()))?;
        match reply.status {
            200 | 204 => Ok(()),
            _ => Err(self.http_error(&reply, &format!("undelete of '{name}'"))),
        }
    }

    fn set_label(&mut self, _: &SecretName, _: Label, _: u64) -> Result<()> {
        Err(self.unsupported("moving labels (KV v2 derives current and previous)"))
    }

    fn health(&mut self) -> Health {
        let reply = match self.send(Request {
            with_token: false,
            ..Request::new(Method::Get, "/v1/sys/health")
        }) {
            Ok(r) => r,
            Err(e) => {
                return Health {
                    reachable: false,
                    authenticated: false,
                    detail: e.to_string(),
                };
            }
        };
        let json = reply.json();
        let version = json["version"]
            .as_str()
            .unwrap_or("unknown version")
            .to_string();
        if json["sealed"].as_bool() == Some(true) || reply.status == 503 {
            return Health {
                reachable: true,
                authenticated: false,
                detail: format!("{} at {} is sealed ({version})", self.name, self.address),
            };
        }
        let auth = self.call(Method::Get, "/v1/auth/token/lookup-self", None);
        let (authenticated, token) = match auth {
            Ok(r) if r.status == 200 => (true, "token accepted".to_string()),
            Ok(r) => (
                false,
                format!("token refused: HTTP {}{}", r.status, colon(&r.errors())),
            ),
            Err(e) => (false, format!("token lookup failed: {e}")),
        };
        Health {
            reachable: true,
            authenticated,
            detail: format!(
                "{version} at {}, KV v2 mount {}; {token}",
                self.address, self.mount
            ),
        }
    }
}
