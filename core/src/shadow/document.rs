//! Shadow documents: AWS IoT's classic device-shadow semantics as pure
//! functions (docs/shadows.md). A stored shadow is `desired` and `reported`
//! state with per-leaf `metadata` time stamps and a `version`; an update
//! merges into it (null deletes, objects merge, everything else replaces),
//! the `delta` is computed from desired and reported, and every answer is the
//! JSON AWS IoT sends on the `/accepted`, `/rejected`, `/documents` and
//! `/delta` topics.

use serde_json::{json, Map, Value};

/// Largest update request and largest stored state (desired + reported,
/// without metadata), as AWS IoT's classic shadow limit.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024;
/// Deepest nesting of objects and arrays inside `desired` or `reported`.
pub const MAX_DEPTH: usize = 6;
/// Longest `clientToken`.
pub const MAX_CLIENT_TOKEN: usize = 64;
/// Longest thing name (AWS IoT's limit).
pub const MAX_THING_NAME: usize = 128;

/// A refused request: AWS IoT's code and message, sent on `/rejected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: u16,
    pub message: String,
}

impl Rejection {
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub fn not_found(thing: &str) -> Self {
        Self::new(404, format!("No shadow exists with name: '{thing}'"))
    }

    /// The `/rejected` document.
    pub fn document(&self, client_token: Option<&str>, now: u64) -> Value {
        let mut doc = json!({ "code": self.code, "message": self.message, "timestamp": now });
        put_token(&mut doc, client_token);
        doc
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

/// Checks a thing name as AWS IoT does: 1–128 of `[A-Za-z0-9:_-]`.
pub fn check_thing_name(name: &str) -> Result<(), Rejection> {
    if name.is_empty() || name.len() > MAX_THING_NAME {
        return Err(Rejection::bad(format!("thing name must be 1 to {MAX_THING_NAME} characters")));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))) {
        return Err(Rejection::bad(format!("thing name may hold only letters, digits, ':', '_' and '-', not {c:?}")));
    }
    Ok(())
}

/// A shadow as stored: state and metadata sections (`None`: absent) and the
/// version. A deleted shadow keeps its version (the next update continues
/// from it, as AWS IoT does) and nothing else.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Shadow {
    pub version: u64,
    /// Epoch seconds of the last accepted update.
    pub timestamp: u64,
    pub desired: Option<Map<String, Value>>,
    pub reported: Option<Map<String, Value>>,
    pub meta_desired: Option<Map<String, Value>>,
    pub meta_reported: Option<Map<String, Value>>,
    pub deleted: bool,
}

impl Shadow {
    /// Whether the shadow exists (it was updated and not deleted since).
    pub fn exists(&self) -> bool {
        !self.deleted && self.version > 0
    }

    /// The stored form (JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut doc = json!({ "version": self.version, "timestamp": self.timestamp });
        if self.deleted {
            doc["deleted"] = Value::Bool(true);
        } else {
            doc["state"] = sections(&self.desired, &self.reported);
            doc["metadata"] = sections(&self.meta_desired, &self.meta_reported);
        }
        serde_json::to_vec(&doc).unwrap_or_default()
    }

    /// Reads the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Shadow, String> {
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("stored shadow is not JSON: {e}"))?;
        let version = doc.get("version").and_then(Value::as_u64).ok_or("stored shadow has no version")?;
        let timestamp = doc.get("timestamp").and_then(Value::as_u64).unwrap_or(0);
        let section = |outer: &str, inner: &str| doc.get(outer).and_then(|o| o.get(inner)).and_then(Value::as_object).cloned();
        Ok(Shadow {
            version,
            timestamp,
            desired: section("state", "desired"),
            reported: section("state", "reported"),
            meta_desired: section("metadata", "desired"),
            meta_reported: section("metadata", "reported"),
            deleted: doc.get("deleted").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// `{"desired": .., "reported": ..}` (absent sections left out).
    pub fn state(&self) -> Value {
        sections(&self.desired, &self.reported)
    }

    pub fn metadata(&self) -> Value {
        sections(&self.meta_desired, &self.meta_reported)
    }

    /// The delta: what `desired` asks that `reported` does not show.
    pub fn delta(&self) -> Option<Map<String, Value>> {
        let desired = self.desired.as_ref()?;
        let empty = Map::new();
        let d = delta(desired, self.reported.as_ref().unwrap_or(&empty));
        (!d.is_empty()).then_some(d)
    }

    /// The `/get/accepted` document.
    pub fn get_document(&self, client_token: Option<&str>, now: u64) -> Value {
        let mut state = self.state();
        if let Some(d) = self.delta() {
            state["delta"] = Value::Object(d);
        }
        let mut doc = json!({ "state": state, "metadata": self.metadata(), "version": self.version, "timestamp": now });
        put_token(&mut doc, client_token);
        doc
    }

    /// Size of the state as AWS IoT counts it (desired + reported, no metadata).
    pub fn state_bytes(&self) -> usize {
        serde_json::to_vec(&self.state()).map(|v| v.len()).unwrap_or(0)
    }

    fn snapshot(&self) -> Value {
        json!({ "state": self.state(), "metadata": self.metadata(), "version": self.version })
    }

    /// Applies an accepted-to-be update at `now`; the new shadow and the
    /// documents to publish, or why it is refused.
    pub fn update(&self, req: &UpdateRequest, now: u64) -> Result<Updated, Rejection> {
        if let Some(v) = req.version {
            if v != self.version {
                return Err(Rejection::new(409, "Version conflict"));
            }
        }
        let mut next = if self.exists() { self.clone() } else { Shadow { version: self.version, ..Shadow::default() } };
        merge_section(&mut next.desired, &mut next.meta_desired, &req.desired, now);
        merge_section(&mut next.reported, &mut next.meta_reported, &req.reported, now);
        next.version = self.version + 1;
        next.timestamp = now;
        next.deleted = false;
        let size = next.state_bytes();
        if size > MAX_DOCUMENT_BYTES {
            return Err(Rejection::new(
                413,
                format!(
                    "The payload exceeds the maximum size allowed: the shadow's state would be {size} bytes (at most {MAX_DOCUMENT_BYTES})"
                ),
            ));
        }
        let token = req.client_token.as_deref();
        let mut accepted = json!({
            "state": req.state.clone(),
            "metadata": request_metadata(&req.state, now),
            "version": next.version,
            "timestamp": now,
        });
        put_token(&mut accepted, token);
        let mut documents = json!({ "current": next.snapshot(), "timestamp": now });
        if self.exists() {
            documents["previous"] = self.snapshot();
        }
        put_token(&mut documents, token);
        let delta = match (&req.desired, next.delta()) {
            (Section::Object(_), Some(d)) => {
                let mut doc = json!({
                    "version": next.version,
                    "timestamp": now,
                    "metadata": delta_metadata(&d, next.meta_desired.as_ref()),
                    "state": Value::Object(d),
                });
                put_token(&mut doc, token);
                Some(doc)
            }
            _ => None,
        };
        Ok(Updated { shadow: next, accepted, documents, delta })
    }

    /// Deletes the shadow; the tombstone keeping its version and the
    /// `/delete/accepted` document.
    pub fn delete(&self, thing: &str, client_token: Option<&str>, now: u64) -> Result<(Shadow, Value), Rejection> {
        if !self.exists() {
            return Err(Rejection::not_found(thing));
        }
        let gone = Shadow { version: self.version, timestamp: now, deleted: true, ..Shadow::default() };
        let mut doc = json!({ "version": self.version, "timestamp": now });
        put_token(&mut doc, client_token);
        Ok((gone, doc))
    }
}

/// The result of an accepted update.
#[derive(Debug, Clone, PartialEq)]
pub struct Updated {
    pub shadow: Shadow,
    /// For `/update/accepted`.
    pub accepted: Value,
    /// For `/update/documents`.
    pub documents: Value,
    /// For `/update/delta`: when the request set `desired` and a delta remains.
    pub delta: Option<Value>,
}

/// One section (`desired` or `reported`) of an update request.
#[derive(Debug, Clone, PartialEq)]
pub enum Section {
    Absent,
    /// `null`: delete the whole section.
    Null,
    Object(Map<String, Value>),
}

/// A checked update request.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateRequest {
    /// The request's `state` as sent (echoed on `/update/accepted`).
    pub state: Value,
    pub desired: Section,
    pub reported: Section,
    pub version: Option<u64>,
    pub client_token: Option<String>,
}

/// Reads the `clientToken` of a get or delete request (empty payload: none).
pub fn parse_token_request(payload: &[u8]) -> Result<Option<String>, Rejection> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let doc: Value = serde_json::from_slice(payload).map_err(|_| Rejection::bad("Payload contains invalid json"))?;
    let Value::Object(map) = doc else { return Err(Rejection::bad("Payload must be a JSON object")) };
    client_token(&map)
}

/// The `clientToken` of a request document, for echoing on a rejection
/// even when the rest of it is bad.
pub fn token_of(payload: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(payload).ok()?;
    doc.get("clientToken").and_then(Value::as_str).filter(|t| t.len() <= MAX_CLIENT_TOKEN).map(str::to_string)
}

fn client_token(map: &Map<String, Value>) -> Result<Option<String>, Rejection> {
    match map.get("clientToken") {
        None => Ok(None),
        Some(Value::String(t)) if t.len() <= MAX_CLIENT_TOKEN => Ok(Some(t.clone())),
        Some(_) => Err(Rejection::bad(format!("clientToken must be a string of at most {MAX_CLIENT_TOKEN} bytes"))),
    }
}

/// Checks an update request as AWS IoT does.
pub fn parse_update(payload: &[u8]) -> Result<UpdateRequest, Rejection> {
    if payload.len() > MAX_DOCUMENT_BYTES {
        return Err(Rejection::new(
            413,
            format!("The payload exceeds the maximum size allowed: {} bytes (at most {MAX_DOCUMENT_BYTES})", payload.len()),
        ));
    }
    let doc: Value = serde_json::from_slice(payload).map_err(|_| Rejection::bad("Payload contains invalid json"))?;
    let Value::Object(map) = doc else { return Err(Rejection::bad("Payload must be a JSON object")) };
    let client_token = client_token(&map)?;
    let version = match map.get("version") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| Rejection::bad("Invalid version: it must be a non-negative integer"))?),
    };
    let state = map.get("state").ok_or_else(|| Rejection::bad("Missing required node: state"))?;
    let Value::Object(s) = state else { return Err(Rejection::bad("State node must be an object")) };
    if let Some(k) = s.keys().find(|k| *k != "desired" && *k != "reported") {
        return Err(Rejection::bad(format!("State contains an invalid node: '{k}' (only desired and reported)")));
    }
    let section = |name: &str| -> Result<Section, Rejection> {
        match s.get(name) {
            None => Ok(Section::Absent),
            Some(Value::Null) => Ok(Section::Null),
            Some(Value::Object(o)) => {
                if depth(o) > MAX_DEPTH {
                    return Err(Rejection::bad(format!("JSON contains too many levels of nesting; maximum is {MAX_DEPTH}")));
                }
                Ok(Section::Object(o.clone()))
            }
            Some(_) => Err(Rejection::bad(format!("{name} node must be an object or null"))),
        }
    };
    let desired = section("desired")?;
    let reported = section("reported")?;
    if desired == Section::Absent && reported == Section::Absent {
        return Err(Rejection::bad("State node must have at least one of desired and reported"));
    }
    Ok(UpdateRequest { state: state.clone(), desired, reported, version, client_token })
}

/// Levels of objects and arrays in `map` (a flat object is 1).
fn depth(map: &Map<String, Value>) -> usize {
    fn of(v: &Value) -> usize {
        match v {
            Value::Object(m) => depth(m),
            Value::Array(a) => 1 + a.iter().map(of).max().unwrap_or(0),
            _ => 0,
        }
    }
    1 + map.values().map(of).max().unwrap_or(0)
}

fn put_token(doc: &mut Value, token: Option<&str>) {
    if let Some(t) = token {
        doc["clientToken"] = Value::String(t.to_string());
    }
}

fn sections(desired: &Option<Map<String, Value>>, reported: &Option<Map<String, Value>>) -> Value {
    let mut m = Map::new();
    if let Some(d) = desired {
        m.insert("desired".into(), Value::Object(d.clone()));
    }
    if let Some(r) = reported {
        m.insert("reported".into(), Value::Object(r.clone()));
    }
    Value::Object(m)
}

fn merge_section(state: &mut Option<Map<String, Value>>, meta: &mut Option<Map<String, Value>>, req: &Section, now: u64) {
    match req {
        Section::Absent => {}
        Section::Null => {
            *state = None;
            *meta = None;
        }
        Section::Object(o) => {
            let s = state.get_or_insert_with(Map::new);
            let m = meta.get_or_insert_with(Map::new);
            merge(s, m, o, now);
            if s.is_empty() {
                *state = None;
                *meta = None;
            }
        }
    }
}

/// Merges `req` into `state`, keeping `meta` (the same shape, leaves
/// `{"timestamp": T}`) in step: null deletes a key, an object merges into an
/// object (and replaces anything else), other values replace. Objects left
/// empty are removed.
fn merge(state: &mut Map<String, Value>, meta: &mut Map<String, Value>, req: &Map<String, Value>, now: u64) {
    for (k, v) in req {
        match v {
            Value::Null => {
                state.remove(k);
                meta.remove(k);
            }
            Value::Object(o) => {
                if !state.get(k).is_some_and(Value::is_object) {
                    state.insert(k.clone(), Value::Object(Map::new()));
                    meta.insert(k.clone(), Value::Object(Map::new()));
                }
                if !meta.get(k).is_some_and(Value::is_object) {
                    meta.insert(k.clone(), Value::Object(Map::new()));
                }
                let empty = match (state.get_mut(k), meta.get_mut(k)) {
                    (Some(Value::Object(s)), Some(Value::Object(m))) => {
                        merge(s, m, o, now);
                        s.is_empty()
                    }
                    _ => false,
                };
                if empty {
                    state.remove(k);
                    meta.remove(k);
                }
            }
            other => {
                state.insert(k.clone(), other.clone());
                meta.insert(k.clone(), leaf_metadata(other, now));
            }
        }
    }
}

/// Metadata of a value set at `now`: objects mirrored, arrays per element.
fn leaf_metadata(v: &Value, now: u64) -> Value {
    match v {
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), leaf_metadata(v, now))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(|v| leaf_metadata(v, now)).collect()),
        _ => json!({ "timestamp": now }),
    }
}

/// The `metadata` of `/update/accepted`: a time stamp for every leaf the
/// request named, deletions included.
fn request_metadata(state: &Value, now: u64) -> Value {
    match state {
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), request_metadata(v, now))).collect()),
        other => leaf_metadata(other, now),
    }
}

/// What `desired` asks that `reported` does not show: keys absent from
/// reported or different there; objects compared key by key.
pub fn delta(desired: &Map<String, Value>, reported: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, d) in desired {
        match (d, reported.get(k)) {
            (Value::Object(dm), Some(Value::Object(rm))) => {
                let sub = delta(dm, rm);
                if !sub.is_empty() {
                    out.insert(k.clone(), Value::Object(sub));
                }
            }
            (d, Some(r)) if d == r => {}
            (d, _) => {
                out.insert(k.clone(), d.clone());
            }
        }
    }
    out
}

/// The metadata of the desired leaves that make up `delta`.
fn delta_metadata(delta: &Map<String, Value>, meta: Option<&Map<String, Value>>) -> Value {
    let mut out = Map::new();
    for (k, v) in delta {
        let m = meta.and_then(|m| m.get(k));
        let entry = match (v, m) {
            (Value::Object(d), Some(Value::Object(mm))) if !is_leaf(mm) => delta_metadata(d, Some(mm)),
            (_, Some(m)) => m.clone(),
            (_, None) => continue,
        };
        out.insert(k.clone(), entry);
    }
    Value::Object(out)
}

fn is_leaf(meta: &Map<String, Value>) -> bool {
    meta.len() == 1 && meta.get("timestamp").is_some_and(Value::is_u64)
}

#[cfg(test)]
mod tests;
