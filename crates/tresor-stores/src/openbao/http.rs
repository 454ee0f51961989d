//! Requests to the server: retries, AppRole renewal, status to error.

use super::*;

impl OpenBao {
    // --- HTTP -------------------------------------------------------------

    /// Sends one request, with retries; any HTTP status is a `Reply`. With
    /// AppRole auth, a 403 (an expired token, most often) logs in again and
    /// sends the request once more.
    pub(super) fn send(&self, request: Request<'_>) -> Result<Reply> {
        let reply = self.send_retrying(request)?;
        if let (
            403,
            true,
            Auth::AppRole {
                role_id,
                secret_id,
                mount,
            },
        ) = (reply.status, request.with_token, &self.auth)
            && let Ok(token) = self.approle_login(role_id, secret_id, mount)
        {
            *self.token() = token;
            return self.send_retrying(request);
        }
        Ok(reply)
    }

    pub(super) fn send_retrying(&self, request: Request<'_>) -> Result<Reply> {
        let Request {
            method,
            path,
            retry,
            ..
        } = request;
        let url = format!("{}{path}", self.address);
        let deadline = Deadline::after(self.timeout);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.send_once(&request, &url, &deadline);
            let again = match &outcome {
                Ok(reply) => retry_status(reply.status, retry),
                Err(e) => transient(e, retry),
            };
            match again.then(|| next_pause(attempt, &deadline)).flatten() {
                Some(pause) => std::thread::sleep(pause),
                None => {
                    return outcome.map_err(|e| {
                        remote::unreachable(
                            &self.name,
                            &format!("{} {path}", method_name(method)),
                            &format!(
                                "{} (after {attempt} attempt{})",
                                describe(&e),
                                if attempt == 1 { "" } else { "s" }
                            ),
                        )
                    });
                }
            }
        }
    }

    pub(super) fn send_once(
        &self,
        request: &Request<'_>,
        url: &str,
        deadline: &Deadline,
    ) -> std::result::Result<Reply, ureq::Error> {
        let Request {
            method,
            query,
            body,
            with_token,
            ..
        } = *request;
        macro_rules! prepare {
            ($request:expr) => {{
                let mut request = $request
                    .config()
                    .timeout_global(Some(deadline.remaining()))
                    .build();
                for (k, v) in query {
                    request = request.query(*k, *v);
                }
                if with_token {
                    request = request.header("X-Vault-Token", self.token().expose_secret());
                }
                if let Some(ns) = &self.namespace {
                    request = request.header("X-Vault-Namespace", ns.as_str());
                }
                request
            }};
        }
        let mut response = match method {
            Method::Get => prepare!(self.agent.get(url)).call()?,
            Method::Delete => prepare!(self.agent.delete(url)).call()?,
            Method::Post => prepare!(self.agent.post(url))
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(b"{}"))?,
        };
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()?;
        Ok(Reply {
            status,
            body: Zeroizing::new(body),
        })
    }

    /// A GET with the token, retried as a read.
    pub(super) fn get_path(&self, path: &str, query: &[(&str, &str)]) -> Result<Reply> {
        self.send(Request {
            query,
            ..Request::new(Method::Get, path)
        })
    }

    /// A request with the token: reads retried as reads, writes as writes.
    pub(super) fn call(&self, method: Method, path: &str, body: Option<&[u8]>) -> Result<Reply> {
        self.send(Request {
            body,
            ..Request::new(method, path)
        })
    }

    pub(super) fn data_path(&self, name: &str) -> String {
        format!("/v1/{}/data/{name}", self.mount)
    }

    pub(super) fn metadata_path(&self, name: &str) -> String {
        format!("/v1/{}/metadata/{name}", self.mount)
    }

    /// The error for an unexpected answer about `what` (e.g. `'a/b'`).
    pub(super) fn http_error(&self, reply: &Reply, what: &str) -> Error {
        let detail = format!("HTTP {}{}", reply.status, colon(&reply.errors()));
        remote::status_error(&self.name, what, reply.status, &detail)
    }

    pub(super) fn not_found(&self, what: String) -> Error {
        Error::NotFound {
            store: self.name.clone(),
            what,
        }
    }
}

/// Vault's `errors` array, each message shortened, joined with "; ".
pub(super) fn error_messages(json: &Value) -> String {
    json["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(remote::shorten)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

pub(super) fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Delete => "DELETE",
    }
}

/// Whether a transport error is worth another attempt.
pub(super) fn transient(e: &ureq::Error, retry: Idempotence) -> bool {
    match e {
        ureq::Error::ConnectionFailed => true,
        ureq::Error::Io(io) => retry_io(io.kind(), retry),
        _ => false,
    }
}

/// A transport error in words (ureq's messages hold no bodies).
pub(super) fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::Io(io) => format!("{io}"),
        other => other.to_string(),
    }
}
