//! Deployments: reading a group from a file or bundle, staging it when no core
//! runs, placing function code, and the deployment records kept in the state store.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::access;
use crate::bundle;
use crate::group::Group;
use crate::layout::Layout;
use crate::permissions;
use crate::store::{Cf, StateStore, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentStatus {
    Building,
    InProgress,
    Success,
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentType {
    NewDeployment,
    ResetDeployment,
    ForceResetDeployment,
}

/// A deployment as kept in the state store and shown by `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRecord {
    pub id: String,
    pub deployment_type: DeploymentType,
    pub status: DeploymentStatus,
    pub group_id: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

const CURRENT_KEY: &[u8] = b"current";
const HISTORY_PREFIX: &[u8] = b"history/";
/// Deployment records kept in the history.
const HISTORY_LIMIT: usize = 50;

pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl DeploymentRecord {
    pub fn new(id: String, deployment_type: DeploymentType, group_id: Option<String>) -> Self {
        let t = now_unix();
        Self { id, deployment_type, status: DeploymentStatus::Building, group_id, created_at: t, updated_at: t, error: None }
    }

    /// Saves the record as the current deployment and in the history.
    pub fn save(&mut self, store: &dyn StateStore) -> Result<(), StoreError> {
        self.updated_at = now_unix();
        let v = serde_json::to_vec(self).map_err(|e| StoreError::Db(e.to_string()))?;
        let mut key = HISTORY_PREFIX.to_vec();
        key.extend_from_slice(format!("{:020}-{}", self.created_at, self.id).as_bytes());
        let mut ops = vec![
            crate::store::WriteOp::Put(Cf::Deployments, CURRENT_KEY.to_vec(), v.clone()),
            crate::store::WriteOp::Put(Cf::Deployments, key, v),
        ];
        let history = store.scan_prefix(Cf::Deployments, HISTORY_PREFIX)?;
        if history.len() > HISTORY_LIMIT {
            for (k, _) in history.iter().take(history.len() - HISTORY_LIMIT) {
                ops.push(crate::store::WriteOp::Delete(Cf::Deployments, k.clone()));
            }
        }
        store.write(ops, true)
    }

    pub fn load_current(store: &dyn StateStore) -> Result<Option<Self>, StoreError> {
        Ok(store.get(Cf::Deployments, CURRENT_KEY)?.and_then(|v| serde_json::from_slice(&v).ok()))
    }
}

/// Where a group came from: the text of group.json and the directory its
/// relative `Code` paths start from.
#[derive(Debug, Clone)]
pub struct GroupSource {
    pub file: String,
    pub text: String,
    pub base_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: function code: {1}")]
    Bundle(String, bundle::BundleError),
    #[error("{0}")]
    Invalid(String),
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> DeployError + '_ {
    move |e| DeployError::Io(p.to_path_buf(), e)
}

/// Reads a `group.json` file, or a bundle directory holding `group.json`.
pub fn read_source(path: &Path) -> Result<GroupSource, DeployError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    let file = if meta.is_dir() { path.join("group.json") } else { path.to_path_buf() };
    let text = fs::read_to_string(&file).map_err(io(&file))?;
    let abs = fs::canonicalize(&file).map_err(io(&file))?;
    let base_dir = abs.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    Ok(GroupSource { file: file.display().to_string(), text, base_dir })
}

/// A deployment staged while no core ran.
#[derive(Debug)]
pub enum Staged {
    Deploy { id: String, source: GroupSource },
    Reset { id: String },
}

const RESET_MARKER: &str = "RESET";

/// Copies the group and its function code into `dir` (which must not exist),
/// rewriting each function's `Code` to its copy. Returns the rewritten group.json.
fn place(group: &Group, text: &str, dir: &Path) -> Result<String, DeployError> {
    let mut value: Value = serde_json::from_str(text).map_err(|e| DeployError::Invalid(e.to_string()))?;
    fs::create_dir_all(dir.join("code")).map_err(io(dir))?;
    for f in &group.functions {
        let Some(code) = &f.code else { continue };
        let rel = format!("code/{}", f.arn.name());
        let dest = dir.join(&rel);
        let result = if code.is_dir() { bundle::copy_dir(code, &dest) } else { bundle::extract_zip(code, &dest) };
        result.map_err(|e| DeployError::Bundle(f.arn.as_str().to_string(), e))?;
        set_code(&mut value, f.arn.as_str(), &rel);
    }
    serde_json::to_string_pretty(&value).map_err(|e| DeployError::Invalid(e.to_string()))
}

/// Sets `Code` of the function with `arn` in a raw group value.
fn set_code(group: &mut Value, arn: &str, code: &str) {
    let functions = group.pointer_mut("/FunctionDefinition/Functions").and_then(Value::as_array_mut);
    for f in functions.into_iter().flatten() {
        if f.get("FunctionArn").and_then(Value::as_str) == Some(arn) {
            f["Code"] = Value::String(code.to_string());
        }
    }
}

/// Stages a validated group under `staged/<id>` atomically; the next start applies it.
pub fn stage(layout: &Layout, group: &Group, source: &GroupSource) -> Result<String, DeployError> {
    let id = uuid::Uuid::new_v4().to_string();
    let staged = make_staged_dir(layout)?;
    let tmp = staged.join(format!(".tmp-{id}"));
    let text = place(group, &source.text, &tmp)?;
    fs::write(tmp.join("group.json"), text).map_err(io(&tmp))?;
    fs::write(tmp.join("SOURCE"), &source.file).map_err(io(&tmp))?;
    finish_stage(layout, &tmp, &id)?;
    Ok(id)
}

/// Stages a reset.
pub fn stage_reset(layout: &Layout) -> Result<String, DeployError> {
    let id = uuid::Uuid::new_v4().to_string();
    let staged = make_staged_dir(layout)?;
    let tmp = staged.join(format!(".tmp-{id}"));
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    fs::write(tmp.join(RESET_MARKER), b"").map_err(io(&tmp))?;
    finish_stage(layout, &tmp, &id)?;
    Ok(id)
}

/// `staged/`, private to the core's user like the rest of its state.
fn make_staged_dir(layout: &Layout) -> Result<PathBuf, DeployError> {
    let staged = layout.staged_dir();
    permissions::ensure_dir(&staged, permissions::PRIVATE_DIR).map_err(|e| DeployError::Io(e.path, e.source))?;
    Ok(staged)
}

/// Only the newest staged deployment counts: earlier ones are removed.
fn finish_stage(layout: &Layout, tmp: &Path, id: &str) -> Result<(), DeployError> {
    let staged = layout.staged_dir();
    for e in fs::read_dir(&staged).map_err(io(&staged))?.flatten() {
        let p = e.path();
        if p != tmp {
            let _ = fs::remove_dir_all(&p);
        }
    }
    let dest = staged.join(id);
    fs::rename(tmp, &dest).map_err(io(&dest))
}

/// The staged deployment, if any (leftover temporary directories are removed).
pub fn take_staged(layout: &Layout) -> Result<Option<(Staged, PathBuf)>, DeployError> {
    let staged = layout.staged_dir();
    let entries = match fs::read_dir(&staged) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DeployError::Io(staged, e)),
    };
    let mut found = None;
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with(".tmp-") {
            let _ = fs::remove_dir_all(&p);
            continue;
        }
        found = Some((name, p));
    }
    let Some((id, dir)) = found else {
        return Ok(None);
    };
    if dir.join(RESET_MARKER).exists() {
        return Ok(Some((Staged::Reset { id }, dir)));
    }
    let file = dir.join("group.json");
    let text = fs::read_to_string(&file).map_err(io(&file))?;
    let shown = fs::read_to_string(dir.join("SOURCE")).unwrap_or_else(|_| file.display().to_string());
    Ok(Some((Staged::Deploy { id, source: GroupSource { file: shown, text, base_dir: dir.clone() } }, dir)))
}

/// Makes `group` the deployed group: code under `lambda/`, group.json under
/// `group/`, both replaced atomically. Returns the deployed source.
///
/// Each function's copy is readable by the function's user and nobody else but
/// the core, and the directories above it up to the root are passable
/// (docs/functions.md, "RunAs and access to code").
pub fn install(layout: &Layout, group: &Group, source: &GroupSource, id: &str) -> Result<GroupSource, DeployError> {
    for dir in layout.passage_dirs().iter().rev() {
        permissions::ensure_dir(dir, permissions::PASSAGE_DIR).map_err(|e| DeployError::Io(e.path, e.source))?;
    }
    let deployment = layout.deployment_dir();
    let new_dir = deployment.join(format!(".new-{id}"));
    let _ = fs::remove_dir_all(&new_dir);
    let text = place(group, &source.text, &new_dir)?;
    // Code goes to lambda/<name>; unchanged functions keep their directory.
    let lambda = layout.lambda_dir();
    let mut value: Value = serde_json::from_str(&text).map_err(|e| DeployError::Invalid(e.to_string()))?;
    for f in &group.functions {
        let from = new_dir.join("code").join(f.arn.name());
        let to = lambda.join(f.arn.name());
        let run_as = access::effective_run_as(f.run_as);
        if from.exists() {
            access::prepare_code(&from, run_as).map_err(io(&from))?;
        }
        // Unchanged code stays where it is, so running instances keep their files.
        let unchanged = from.exists() && to.exists() && {
            let h = bundle::tree_hash(&from);
            !h.is_empty() && h == bundle::tree_hash(&to)
        };
        if from.exists() && !unchanged {
            let old = lambda.join(format!(".old-{}-{id}", f.arn.name()));
            if to.exists() {
                fs::rename(&to, &old).map_err(io(&to))?;
            }
            fs::rename(&from, &to).map_err(io(&to))?;
            let _ = fs::remove_dir_all(&old);
        } else if unchanged {
            // Same code, maybe another RunAs: the kept copy follows it.
            access::prepare_code(&to, run_as).map_err(io(&to))?;
        }
        set_code(&mut value, f.arn.as_str(), &to.display().to_string());
    }
    let group_file = layout.group_file();
    let text = serde_json::to_string_pretty(&value).map_err(|e| DeployError::Invalid(e.to_string()))?;
    crate::certs::write_file(&group_file, text.as_bytes(), 0o600).map_err(|e| DeployError::Invalid(e.to_string()))?;
    let _ = fs::remove_dir_all(&new_dir);
    // Code of functions no longer deployed is removed.
    if let Ok(entries) = fs::read_dir(&lambda) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !group.functions.iter().any(|f| f.arn.name() == name) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    let base_dir = group_file.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(GroupSource { file: group_file.display().to_string(), text, base_dir })
}

/// Removes the deployed group and its function code.
pub fn uninstall(layout: &Layout) -> Result<(), DeployError> {
    let f = layout.group_file();
    match fs::remove_file(&f) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(DeployError::Io(f, e)),
    }
    let lambda = layout.lambda_dir();
    match fs::remove_dir_all(&lambda) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DeployError::Io(lambda, e)),
    }
}

/// The deployed group's source, if a group is deployed.
pub fn deployed_source(layout: &Layout) -> Result<Option<GroupSource>, DeployError> {
    let f = layout.group_file();
    match fs::read_to_string(&f) {
        Ok(text) => {
            let base_dir = f.parent().map(Path::to_path_buf).unwrap_or_default();
            Ok(Some(GroupSource { file: f.display().to_string(), text, base_dir }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DeployError::Io(f, e)),
    }
}
