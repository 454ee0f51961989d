//! An in-process Key Vault: an `azure_core` `HttpClient` that answers the
//! Key Vault secrets REST API (7.x) the way the service does, for the SDK's
//! real `SecretClient` to talk to, and a `TokenCredential` that hands out a
//! fixed token.
//!
//! What it speaks: the 401 Bearer challenge on a request without a token;
//! set (a new version each time), get latest or by version, list secrets and
//! versions in pages linked by `nextLink`, update properties and tags, delete
//! (into deleted secrets), get and list deleted secrets, recover, purge; Key
//! Vault's error JSON (`SecretNotFound`, `Conflict` for a deleted name,
//! `BadParameter`, `Forbidden` for a disabled version); whole-second
//! `created` times (a clock the tests move); names compared without case.
//! Faults can be queued: a status with `Retry-After`, a connection reset,
//! a request that never answers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::{AsyncRawResponse, HttpClient, Method, Request, StatusCode};
use azure_core::time::{Duration, OffsetDateTime};
use serde_json::{Map, Value, json};

pub const VAULT: &str = "https://tresor-test.vault.azure.net";
pub const TENANT: &str = "72f988bf-0000-4000-8000-2d7cd011db47";
pub const TOKEN: &str = "fake-access-token";

/// A fault the next authorized request meets.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this status (with `Retry-After` seconds, if given) and this
    /// error message.
    Status(u16, Option<u64>, &'static str),
    /// Fail as a reset connection.
    Reset,
    /// Never answer.
    Hang,
    /// Like `Status`, for the next write (PUT) only; other requests pass.
    OnWrite(u16, &'static str),
}

/// Key Vault's error code for a status.
fn code_for(status: u16) -> &'static str {
    match status {
        400 => "BadParameter",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "SecretNotFound",
        409 => "Conflict",
        429 => "Throttled",
        503 => "ServiceUnavailable",
        _ => "InternalServerError",
    }
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    #[allow(dead_code)] // shown in assertion messages
    pub method: String,
    pub path: String,
    pub authorized: bool,
    pub body_len: usize,
    pub status: u16,
}

#[derive(Clone, Debug)]
pub struct Version {
    pub id: String,
    pub value: String,
    pub content_type: Option<String>,
    pub tags: Option<HashMap<String, String>>,
    pub created: i64,
    pub updated: i64,
    pub enabled: bool,
}

#[derive(Clone, Debug)]
pub struct Entry {
    /// The name as first written.
    pub name: String,
    pub versions: Vec<Version>,
    pub deleted_date: Option<i64>,
}

#[derive(Debug)]
pub struct State {
    /// Live secrets by lower-case name.
    pub secrets: BTreeMap<String, Entry>,
    /// Deleted secrets by lower-case name.
    pub deleted: BTreeMap<String, Entry>,
    /// Seconds since the epoch; moves only when a test moves it.
    pub now: i64,
    pub page_size: usize,
    pub faults: VecDeque<Fault>,
    pub seen: Vec<Seen>,
    /// The `resource` of the 401 challenge.
    pub challenge_resource: String,
    next_id: u64,
}

/// The fake vault; clone the `Arc` into `AzureOptions::transport`.
#[derive(Debug)]
pub struct FakeKeyVault {
    state: Mutex<State>,
}

impl FakeKeyVault {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                secrets: BTreeMap::new(),
                deleted: BTreeMap::new(),
                now: 1_795_608_000,
                page_size: 3,
                faults: VecDeque::new(),
                seen: Vec::new(),
                challenge_resource: "https://vault.azure.net".to_string(),
                next_id: 0,
            }),
        })
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn fault(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }

    /// Writes a secret version directly, as another tool would.
    pub fn insert(&self, name: &str, value: &str, content_type: Option<&str>) {
        let mut state = self.state();
        let version = state.new_version(value.to_string(), content_type.map(str::to_string), None);
        state
            .secrets
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Entry {
                name: name.to_string(),
                versions: Vec::new(),
                deleted_date: None,
            })
            .versions
            .push(version);
    }

    /// The newest version of a live secret.
    pub fn latest(&self, name: &str) -> Option<Version> {
        self.state()
            .secrets
            .get(&name.to_ascii_lowercase())
            .and_then(|e| e.versions.last().cloned())
    }
}

impl State {
    fn new_version(
        &mut self,
        value: String,
        content_type: Option<String>,
        tags: Option<HashMap<String, String>>,
    ) -> Version {
        self.next_id += 1;
        // Ids in no particular order, as Key Vault's are.
        let mut x = self.next_id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^= x >> 31;
        let y = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        Version {
            id: format!("{x:016x}{y:016x}"),
            value,
            content_type,
            tags,
            created: self.now,
            updated: self.now,
            enabled: true,
        }
    }
}

fn attributes(v: &Version) -> Value {
    json!({
        "enabled": v.enabled,
        "created": v.created,
        "updated": v.updated,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    })
}

fn with_common(mut out: Map<String, Value>, v: &Version) -> Value {
    out.insert("attributes".into(), attributes(v));
    if let Some(ct) = &v.content_type {
        out.insert("contentType".into(), json!(ct));
    }
    if let Some(tags) = &v.tags {
        out.insert("tags".into(), json!(tags));
    }
    Value::Object(out)
}

/// A secret bundle (with or without the value).
fn bundle(entry: &Entry, v: &Version, value: bool) -> Value {
    let mut out = Map::new();
    out.insert(
        "id".into(),
        json!(format!("{VAULT}/secrets/{}/{}", entry.name, v.id)),
    );
    if value {
        out.insert("value".into(), json!(v.value));
    }
    with_common(out, v)
}

/// A list item: the secret's id (with the version for version lists).
fn item(entry: &Entry, v: &Version, with_version: bool) -> Value {
    let id = if with_version {
        format!("{VAULT}/secrets/{}/{}", entry.name, v.id)
    } else {
        format!("{VAULT}/secrets/{}", entry.name)
    };
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    with_common(out, v)
}

fn deleted_bundle(entry: &Entry, value: bool) -> Value {
    let v = entry.versions.last().expect("an entry has a version");
    let mut out = match bundle(entry, v, value) {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    let date = entry.deleted_date.unwrap_or(0);
    out.insert(
        "recoveryId".into(),
        json!(format!("{VAULT}/deletedsecrets/{}", entry.name)),
    );
    out.insert("deletedDate".into(), json!(date));
    out.insert("scheduledPurgeDate".into(), json!(date + 90 * 86_400));
    Value::Object(out)
}

struct Reply {
    status: u16,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

fn ok(body: Value) -> Reply {
    Reply {
        status: 200,
        body,
        headers: Vec::new(),
    }
}

fn error(status: u16, code: &str, message: String) -> Reply {
    Reply {
        status,
        body: json!({"error": {"code": code, "message": message}}),
        headers: Vec::new(),
    }
}

fn not_found(name: &str) -> Reply {
    error(
        404,
        "SecretNotFound",
        format!("A secret with (name/id) {name} was not found in this key vault."),
    )
}

fn valid_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// One page of `items` from `skip`, linked to the next.
fn page(items: Vec<Value>, url: &azure_core::http::Url, path: &str, size: usize) -> Reply {
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let skip: usize = query
        .get("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let size = query
        .get("maxresults")
        .and_then(|s| s.parse::<usize>().ok())
        .map_or(size, |m| m.min(size))
        .max(1);
    let end = (skip + size).min(items.len());
    let value: Vec<Value> = items.get(skip..end).unwrap_or_default().to_vec();
    let next = (end < items.len())
        .then(|| format!("{VAULT}{path}?api-version=7.6&$skiptoken={end}&maxresults={size}"));
    ok(json!({"value": value, "nextLink": next}))
}

impl FakeKeyVault {
    fn answer(&self, request: &Request) -> Reply {
        let url = request.url().clone();
        let segments: Vec<String> = url
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        let body: Value = match request.body() {
            azure_core::http::Body::Bytes(b) if !b.is_empty() => {
                serde_json::from_slice(b).unwrap_or(Value::Null)
            }
            _ => Value::Null,
        };
        let method = request.method();
        let mut state = self.state();
        let page_size = state.page_size;
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        if let Some(name) = seg.get(1)
            && !valid_name(name)
        {
            return error(
                400,
                "BadParameter",
                "The request URI contains an invalid name".into(),
            );
        }
        let key = |n: &str| n.to_ascii_lowercase();
        match (method, seg.as_slice()) {
            (Method::Get, ["secrets"]) => {
                let items = state
                    .secrets
                    .values()
                    .map(|e| item(e, e.versions.last().expect("a version"), false))
                    .collect();
                page(items, &url, "/secrets", page_size)
            }
            (Method::Put, ["secrets", name]) => {
                if state.deleted.contains_key(&key(name)) {
                    return error(
                        409,
                        "Conflict",
                        format!(
                            "Secret {name} is currently in a deleted but recoverable state, \
                             and its name cannot be reused; in this state, the secret can \
                             only be recovered or purged."
                        ),
                    );
                }
                let Some(value) = body["value"].as_str() else {
                    return error(400, "BadParameter", "Property value is required".into());
                };
                if value.chars().count() > 25 * 1024 {
                    return error(
                        400,
                        "BadParameter",
                        "Property value has a length greater than the maximum allowed".into(),
                    );
                }
                let tags: Option<HashMap<String, String>> =
                    serde_json::from_value(body["tags"].clone()).ok();
                if tags.as_ref().is_some_and(|t| t.len() > 15) {
                    return error(400, "BadParameter", "Too many tags".into());
                }
                let content_type = body["contentType"].as_str().map(str::to_string);
                let version = state.new_version(value.to_string(), content_type, tags);
                let entry = state.secrets.entry(key(name)).or_insert_with(|| Entry {
                    name: name.to_string(),
                    versions: Vec::new(),
                    deleted_date: None,
                });
                entry.versions.push(version.clone());
                ok(bundle(entry, &version, true))
            }
            (Method::Get, ["secrets", name, "versions"]) => match state.secrets.get(&key(name)) {
                None => not_found(name),
                Some(entry) => {
                    let items = entry
                        .versions
                        .iter()
                        .map(|v| item(entry, v, true))
                        .collect();
                    page(
                        items,
                        &url,
                        &format!("/secrets/{}/versions", entry.name),
                        page_size,
                    )
                }
            },
            (Method::Get, ["secrets", name]) | (Method::Get, ["secrets", name, _]) => {
                let Some(entry) = state.secrets.get(&key(name)) else {
                    return not_found(name);
                };
                let version = match seg.get(2) {
                    None => entry.versions.last(),
                    Some(id) => entry.versions.iter().find(|v| v.id == *id),
                };
                match version {
                    None => not_found(name),
                    Some(v) if !v.enabled => error(
                        403,
                        "Forbidden",
                        "Operation get is not allowed on a disabled secret.".into(),
                    ),
                    Some(v) => ok(bundle(entry, v, true)),
                }
            }
            (Method::Patch, ["secrets", name]) | (Method::Patch, ["secrets", name, _]) => {
                let now = state.now;
                let Some(entry) = state.secrets.get_mut(&key(name)) else {
                    return not_found(name);
                };
                let index = match seg.get(2) {
                    None => entry.versions.len().checked_sub(1),
                    Some(id) => entry.versions.iter().position(|v| v.id == *id),
                };
                let Some(index) = index else {
                    return not_found(name);
                };
                let v = &mut entry.versions[index];
                if let Some(ct) = body["contentType"].as_str() {
                    v.content_type = Some(ct.to_string());
                }
                if let Ok(tags) = serde_json::from_value(body["tags"].clone()) {
                    v.tags = Some(tags);
                }
                if let Some(enabled) = body["attributes"]["enabled"].as_bool() {
                    v.enabled = enabled;
                }
                v.updated = now;
                let v = v.clone();
                ok(bundle(entry, &v, false))
            }
            (Method::Delete, ["secrets", name]) => {
                let now = state.now;
                let Some(mut entry) = state.secrets.remove(&key(name)) else {
                    return not_found(name);
                };
                entry.deleted_date = Some(now);
                let answer = deleted_bundle(&entry, false);
                state.deleted.insert(key(name), entry);
                ok(answer)
            }
            (Method::Get, ["deletedsecrets"]) => {
                let items = state
                    .deleted
                    .values()
                    .map(|e| {
                        let mut v = deleted_bundle(e, false);
                        v["id"] = json!(format!("{VAULT}/secrets/{}", e.name));
                        v
                    })
                    .collect();
                page(items, &url, "/deletedsecrets", page_size)
            }
            (Method::Get, ["deletedsecrets", name]) => match state.deleted.get(&key(name)) {
                None => not_found(name),
                Some(entry) => ok(deleted_bundle(entry, false)),
            },
            (Method::Delete, ["deletedsecrets", name]) => match state.deleted.remove(&key(name)) {
                None => not_found(name),
                Some(_) => Reply {
                    status: 204,
                    body: Value::Null,
                    headers: Vec::new(),
                },
            },
            (Method::Post, ["deletedsecrets", name, "recover"]) => {
                match state.deleted.remove(&key(name)) {
                    None => not_found(name),
                    Some(mut entry) => {
                        entry.deleted_date = None;
                        let v = entry.versions.last().expect("a version").clone();
                        let answer = bundle(&entry, &v, false);
                        state.secrets.insert(key(name), entry);
                        ok(answer)
                    }
                }
            }
            _ => error(
                400,
                "BadParameter",
                format!("No route for {method:?} {}", url.path()),
            ),
        }
    }
}

fn respond(reply: Reply) -> AsyncRawResponse {
    let mut headers = Headers::new();
    headers.insert(
        HeaderName::from_static("content-type"),
        "application/json; charset=utf-8",
    );
    for (k, v) in reply.headers {
        headers.insert(HeaderName::from_static(k), v);
    }
    let body = if reply.body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&reply.body).expect("json")
    };
    if let Some(code) = reply.body["error"]["code"].as_str() {
        headers.insert(HeaderName::from_static("x-ms-error-code"), code.to_string());
    }
    AsyncRawResponse::from_bytes(StatusCode::from(reply.status), headers, body)
}

#[async_trait::async_trait]
impl HttpClient for FakeKeyVault {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let auth = request
            .headers()
            .get_optional_str(&HeaderName::from_static("authorization"))
            .map(str::to_string);
        let authorized = auth.as_deref() == Some(&format!("Bearer {TOKEN}"));
        let body_len = match request.body() {
            azure_core::http::Body::Bytes(b) => b.len(),
            _ => 0,
        };
        let api_version = request
            .url()
            .query_pairs()
            .any(|(k, v)| k == "api-version" && !v.is_empty());
        let mut seen = Seen {
            method: format!("{:?}", request.method()),
            path: request.url().path().to_string(),
            authorized,
            body_len,
            status: 0,
        };
        let reply = if !api_version {
            error(400, "BadParameter", "api-version is required".into())
        } else if !authorized {
            let resource = self.state().challenge_resource.clone();
            let mut r = error(
                401,
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token.".into(),
            );
            r.headers.push((
                "www-authenticate",
                format!(
                    "Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", \
                     resource=\"{resource}\""
                ),
            ));
            r
        } else {
            let fault = {
                let mut state = self.state();
                match state.faults.front() {
                    Some(Fault::OnWrite(..)) if request.method() != Method::Put => None,
                    _ => state.faults.pop_front(),
                }
            };
            match fault {
                None => self.answer(request),
                Some(Fault::Status(status, retry_after, message)) => {
                    let mut r = error(status, code_for(status), message.to_string());
                    if let Some(s) = retry_after {
                        r.headers.push(("retry-after", s.to_string()));
                    }
                    r
                }
                Some(Fault::OnWrite(status, message)) => {
                    error(status, code_for(status), message.to_string())
                }
                Some(Fault::Reset) => {
                    seen.status = 0;
                    self.state().seen.push(seen);
                    return Err(azure_core::Error::new(
                        ErrorKind::Io,
                        std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "connection reset by peer",
                        ),
                    ));
                }
                Some(Fault::Hang) => {
                    self.state().seen.push(seen);
                    std::future::pending::<()>().await;
                    unreachable!("a pending future never completes")
                }
            }
        };
        seen.status = reply.status;
        self.state().seen.push(seen);
        Ok(respond(reply))
    }
}

/// A credential that hands out [`TOKEN`] and records the scopes asked for.
#[derive(Debug, Default)]
pub struct FakeCredential {
    pub scopes: Mutex<Vec<String>>,
    pub calls: AtomicUsize,
    pub fail: bool,
}

#[async_trait::async_trait]
impl TokenCredential for FakeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.scopes
            .lock()
            .unwrap()
            .extend(scopes.iter().map(|s| s.to_string()));
        if self.fail {
            return Err(azure_core::Error::with_message(
                ErrorKind::Credential,
                "the fake credential refuses (AADSTS7000215: invalid client secret)",
            ));
        }
        Ok(AccessToken::new(
            TOKEN,
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
    }
}
