//! The function manager (docs/functions.md): deployed functions, their work queues and
//! instances, and the calls functions make back into the core.
//!
//! Functions are router targets like devices: a routed message becomes an
//! `Event` invocation with `custom.subject` = the topic. Each instance is a
//! worker process holding a runtime plugin (forked by the plugin's zygote when
//! it has one); the core talks to it over `ggc/socket/ipc.sock` and enforces
//! every deadline and memory limit from outside.

mod calls;
mod conn;
mod hold;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use calls::client_context_text;
pub mod instance;
pub mod ipc;
pub mod logs;
pub mod memory;
mod output;
mod pipeline;
mod process;
pub mod slot;
mod spare;
mod spec;
mod stopping;
mod worker;
mod zygote;

pub use self::spec::sdk_dirs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ggcore_ipc::Reply;
use ggcore_plugin_abi::{HostErrorCode, LogLevel};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::instance::{Ended, Starting};
use self::ipc::IpcHub;
use self::memory::MemoryControl;
use self::process::Exit;
use self::slot::{Enqueued, FunctionSlot, WorkItem};
use self::zygote::Zygote;
use crate::group::{Endpoint, FunctionArn, Group, Lifecycle, RunAs, ThingArn};
use crate::layout::Layout;
use crate::plugins::{PluginEntry, Registry};
use crate::router::{Deliver, Delivery, Message, Router, WhenFull};
use crate::services::Services;
use crate::telemetry::RateLimit;

/// ARNs of the original's system functions that the SDKs address.
pub const ROUTER_ARN: &str = "arn:aws:lambda:::function:GGRouter";
pub const SHADOW_ARN: &str = "arn:aws:lambda:::function:GGShadowService";
pub const SECRETS_ARN: &str = "arn:aws:lambda:::function:GGSecretManager:1";
/// Default limit of instances of one on-demand function.
pub const DEFAULT_MAX_INSTANCES: usize = 8;
/// Environment variable that turns the zygotes off (`0`): instances are then
/// always started as new processes.
pub const ZYGOTE_ENV: &str = "GGCORE_ZYGOTE";
/// A plugin's zygote: being started (empty), running, or failed at a time.
type ZygoteCell = tokio::sync::OnceCell<Result<Arc<Zygote>, Instant>>;
/// A zygote that failed is not tried again for this long.
const ZYGOTE_RETRY: Duration = Duration::from_secs(30);
/// Pinned instances restart after a crash with back-off up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Settings of the function manager.
#[derive(Debug, Clone)]
pub struct FunctionsConfig {
    pub max_work_items: usize,
    pub max_instances: usize,
    pub idle_timeout: Duration,
    pub max_payload: usize,
    pub allow_root: bool,
    /// Directories holding each language's SDK (`python` → sdk-python).
    pub sdk_root: PathBuf,
    pub log_bytes: u64,
}

/// Where ggcore's SDKs are (`sdk-python`, `sdk-node`, `sdk-c`):
/// `$GGCORE_SDK_ROOT`, else the directory of the running executable, where
/// an installation keeps them and `cargo build` links them (core/build.rs;
/// docs/install.md). No path of the build machine is compiled in.
/// Always absolute: functions run in their own directories, and a relative
/// `LD_LIBRARY_PATH` or `PYTHONPATH` would be read from there.
pub fn sdk_root() -> PathBuf {
    match std::env::var_os("GGCORE_SDK_ROOT").filter(|v| !v.is_empty()) {
        Some(p) => std::path::absolute(&p).unwrap_or_else(|_| PathBuf::from(p)),
        None => std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_default(),
    }
}

/// The identity a function runs as by default: `ggc_user`/`ggc_group` when
/// they exist, else `nobody`/`nogroup`. `None` when the core is not root (it
/// cannot switch users; functions run as the core's user).
pub fn default_run_as() -> Option<RunAs> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("ggc_user").ok().flatten().or_else(|| nix::unistd::User::from_name("nobody").ok().flatten());
    let group =
        nix::unistd::Group::from_name("ggc_group").ok().flatten().or_else(|| nix::unistd::Group::from_name("nogroup").ok().flatten());
    Some(RunAs { uid: user.map(|u| u.uid.as_raw()).unwrap_or(65534), gid: group.map(|g| g.gid.as_raw()).unwrap_or(65534) })
}

/// Whether instances are forked by zygotes: yes, unless `GGCORE_ZYGOTE=0`
/// or the kernel has no pidfds (Linux < 5.3), without which the core could
/// not signal a forked instance safely (its pid may be reused once the
/// zygote reaps it); instances are then spawned as children of the core.
fn zygotes_enabled() -> bool {
    if std::env::var(ZYGOTE_ENV).is_ok_and(|v| v == "0") {
        return false;
    }
    if !ggcore_ipc::pidfd::supported() {
        tracing::warn!("this kernel has no pidfd_open (Linux 5.3+): instances start as new processes, without a zygote");
        return false;
    }
    true
}

#[derive(Debug, Clone, Default)]
struct GroupInfo {
    group_id: String,
    core_thing: Option<ThingArn>,
}

pub struct FunctionManager {
    pub(crate) hub: Arc<IpcHub>,
    pub(crate) socket: PathBuf,
    pub(crate) worker: PathBuf,
    pub(crate) memory: Arc<MemoryControl>,
    pub(crate) idle_timeout: Duration,
    layout: Layout,
    router: Arc<Router>,
    /// The core's own services (shadows, secrets), which host calls reach.
    services: Arc<Services>,
    pub(crate) cfg: FunctionsConfig,
    info: RwLock<GroupInfo>,
    slots: RwLock<HashMap<FunctionArn, Arc<FunctionSlot>>>,
    /// Each plugin's zygote, started once: callers for one plugin wait for
    /// the same start (the lock is never held across it).
    zygotes: Mutex<HashMap<PathBuf, Arc<ZygoteCell>>>,
    spares: Mutex<HashMap<PathBuf, spare::SpareSlot>>,
    spare_seq: std::sync::atomic::AtomicU64,
    cgroup_seq: std::sync::atomic::AtomicU64,
    pids: Arc<Mutex<HashMap<u32, Arc<Exit>>>>,
    default_run_as: Option<RunAs>,
    zygotes_enabled: bool,
    /// Cancelled when the core begins to stop: no new instances, spares or
    /// zygotes, and no new worker connections; running work goes on.
    draining: CancellationToken,
    /// Cancelled when the functions are stopped (after the grace period).
    stopping: CancellationToken,
    /// Every task of the function manager (instances, their connections and
    /// helpers, zygotes' helpers, spares being made).
    pub(crate) tracker: TaskTracker,
    refused_log: RateLimit,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn error(code: HostErrorCode, message: impl Into<String>) -> Reply {
    Reply::Error { code: code as u8, message: message.into() }
}

impl FunctionManager {
    pub fn new(layout: Layout, router: Arc<Router>, services: Arc<Services>, cfg: FunctionsConfig) -> Arc<Self> {
        let memory = MemoryControl::detect();
        tracing::info!(mechanism = %memory.describe(), "function memory limits");
        Arc::new(Self {
            hub: Arc::new(IpcHub::default()),
            socket: layout.socket_dir().join("ipc.sock"),
            worker: crate::plugins::worker_exe(),
            memory: Arc::new(memory),
            idle_timeout: cfg.idle_timeout,
            layout,
            router,
            services,
            cfg,
            info: RwLock::new(GroupInfo::default()),
            slots: RwLock::new(HashMap::new()),
            zygotes: Mutex::new(HashMap::new()),
            spares: Mutex::new(HashMap::new()),
            spare_seq: std::sync::atomic::AtomicU64::new(1),
            cgroup_seq: std::sync::atomic::AtomicU64::new(1),
            pids: Arc::new(Mutex::new(HashMap::new())),
            default_run_as: default_run_as(),
            zygotes_enabled: zygotes_enabled(),
            draining: CancellationToken::new(),
            stopping: CancellationToken::new(),
            tracker: TaskTracker::new(),
            refused_log: RateLimit::per_second(1),
        })
    }

    /// Binds `ggc/socket/ipc.sock` and serves worker connections until the
    /// core begins to stop.
    pub fn start_ipc(self: &Arc<Self>) -> std::io::Result<()> {
        let _ = std::fs::remove_file(&self.socket);
        let listener = tokio::net::UnixListener::bind(&self.socket)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.socket, std::fs::Permissions::from_mode(0o600))?;
        self.tracker.spawn(self.hub.clone().serve(listener, self.draining.clone(), self.tracker.clone()));
        Ok(())
    }

    /// The path of `ipc.sock` (removed at the end of a shutdown).
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    pub fn memory_mechanism(&self) -> String {
        self.memory.describe()
    }

    fn slot(&self, arn: &FunctionArn) -> Option<Arc<FunctionSlot>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner()).get(arn).cloned()
    }

    /// Finds the deployed function an ARN (qualified or not) names.
    fn resolve(&self, arn: &FunctionArn) -> Option<Arc<FunctionSlot>> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slots.get(arn) {
            return Some(s.clone());
        }
        if arn.qualifier().is_none() {
            return slots.values().find(|s| s.def.arn.unqualified() == arn.as_str()).cloned();
        }
        None
    }

    /// A number for an instance's memory cgroup, unique in this core.
    pub(crate) fn next_cgroup_id(&self) -> u64 {
        self.cgroup_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a zygote child so that its exit status reaches its instance.
    pub(crate) fn watch_pid(&self, pid: u32, exit: Arc<Exit>) {
        lock(&self.pids).insert(pid, exit);
    }

    /// The zygote for a function's plugin, started on first use. Callers
    /// for the same plugin wait for one start; other plugins' are not held
    /// up by it (no lock is held while a zygote starts, which may take up to
    /// a minute).
    pub(crate) async fn zygote_for(self: &Arc<Self>, plugin: &PluginEntry, runtime: &str) -> Option<Arc<Zygote>> {
        if !self.zygotes_enabled || self.draining.is_cancelled() {
            return None;
        }
        let cell = {
            let mut zygotes = lock(&self.zygotes);
            let current = zygotes.get(&plugin.file).filter(|cell| match cell.get() {
                // Starting: wait for that start.
                None => true,
                Some(Ok(z)) => z.is_alive(),
                // Failed: not tried again for a while.
                Some(Err(failed)) => failed.elapsed() < ZYGOTE_RETRY,
            });
            match current {
                Some(cell) => cell.clone(),
                None => {
                    let cell = Arc::new(ZygoteCell::new());
                    zygotes.insert(plugin.file.clone(), cell.clone());
                    cell
                }
            }
        };
        tokio::select! {
            z = cell.get_or_init(|| self.start_zygote(plugin, runtime)) => z.as_ref().ok().cloned(),
            _ = self.stopping.cancelled() => None,
        }
    }

    async fn start_zygote(self: &Arc<Self>, plugin: &PluginEntry, runtime: &str) -> Result<Arc<Zygote>, Instant> {
        let file = &plugin.file;
        let sdk = self.sdk_dirs(plugin, runtime);
        let runtime = if plugin.native_runtime.is_empty() { runtime.to_string() } else { plugin.native_runtime.clone() };
        let pids = self.pids.clone();
        let on_exit: zygote::ExitHook = Arc::new(move |pid, status| {
            if let Some(exit) = lock(&pids).remove(&pid) {
                exit.record(status);
            }
        });
        match Zygote::start(&self.tracker, &self.hub, &self.socket, &self.worker, file, &runtime, &sdk, on_exit).await {
            Ok(z) => {
                // The first spare, so that the first cold start is quick too.
                self.refill_spare(plugin, &runtime);
                Ok(z)
            }
            Err(e) => {
                tracing::warn!(plugin = %file.display(), error = %e, "no zygote for this plugin; instances start as new processes");
                Err(Instant::now())
            }
        }
    }

    /// Starts on-demand instances while queued work needs them (none once
    /// the core is stopping).
    fn ensure_capacity(self: &Arc<Self>, slot: &Arc<FunctionSlot>) {
        while slot.wants_instance() && !slot.removed.is_cancelled() && !self.draining.is_cancelled() {
            self.spawn_instance(slot);
        }
    }

    fn spawn_instance(self: &Arc<Self>, slot: &Arc<FunctionSlot>) {
        slot.alive.fetch_add(1, Ordering::Relaxed);
        let starting = Starting::new(slot);
        let mgr = self.clone();
        let slot = slot.clone();
        self.tracker.spawn(async move {
            let ended = instance::run(mgr.clone(), slot.clone(), starting).await;
            slot.alive.fetch_sub(1, Ordering::Relaxed);
            match ended {
                Ended::StartFailed(reason) => {
                    slot.stats.start_failures.fetch_add(1, Ordering::Relaxed);
                    slot.log.write(LogLevel::Error, &format!("instance failed to start: {reason}"));
                    tracing::warn!(function = %slot.def.arn, reason = %reason, "function instance failed to start");
                    if slot.alive.load(Ordering::Relaxed) == 0 {
                        slot.fail_queued(&format!("the function failed to start: {reason}"));
                    }
                }
                Ended::Died(reason) => {
                    tracing::info!(function = %slot.def.arn, reason = %reason, "function instance ended");
                    mgr.ensure_capacity(&slot);
                }
                Ended::Idle | Ended::Removed => {}
            }
            mgr.serve_given_back(&slot);
        });
    }

    /// Work an instance of a removed function gave back went to the new
    /// version's queue; an on-demand new version may need an instance for it.
    fn serve_given_back(self: &Arc<Self>, slot: &FunctionSlot) {
        if slot.removed.is_cancelled() {
            if let Some(next) = slot.successor() {
                if next.def.lifecycle == Lifecycle::OnDemand {
                    self.ensure_capacity(&next);
                }
            }
        }
    }

    /// Keeps a pinned function's one instance running, restarting it with
    /// back-off after a crash, until the function leaves the group.
    fn supervise_pinned(self: &Arc<Self>, slot: &Arc<FunctionSlot>) {
        let mgr = self.clone();
        let slot = slot.clone();
        self.tracker.spawn(async move {
            let mut backoff = Duration::from_secs(1);
            loop {
                if slot.removed.is_cancelled() || mgr.draining.is_cancelled() {
                    break;
                }
                slot.alive.fetch_add(1, Ordering::Relaxed);
                let starting = Starting::new(&slot);
                let began = Instant::now();
                let ended = instance::run(mgr.clone(), slot.clone(), starting).await;
                slot.alive.fetch_sub(1, Ordering::Relaxed);
                let reason = match ended {
                    Ended::Idle | Ended::Removed => {
                        mgr.serve_given_back(&slot);
                        break;
                    }
                    Ended::StartFailed(r) => {
                        slot.stats.start_failures.fetch_add(1, Ordering::Relaxed);
                        slot.fail_queued(&format!("the function failed to start: {r}"));
                        format!("failed to start: {r}")
                    }
                    Ended::Died(r) => r,
                };
                if began.elapsed() > MAX_BACKOFF {
                    backoff = Duration::from_secs(1);
                }
                slot.log.write(LogLevel::Error, &format!("pinned instance ended ({reason}); restarting in {} s", backoff.as_secs()));
                tracing::warn!(function = %slot.def.arn, reason = %reason, restart_in_s = backoff.as_secs(), "pinned function instance ended; restarting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = slot.removed.cancelled() => break,
                    _ = mgr.draining.cancelled() => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }

    /// Makes `group`'s functions the running ones. Unchanged functions (same
    /// configuration, same code, same plugin) keep their instances.
    pub async fn apply(self: &Arc<Self>, group: &Group, registry: &Registry) {
        if self.draining.is_cancelled() {
            tracing::warn!("the core is stopping: the group's functions are not started");
            return;
        }
        *self.info.write().unwrap_or_else(|p| p.into_inner()) =
            GroupInfo { group_id: group.group_id.clone(), core_thing: group.core.as_ref().map(|c| c.thing.clone()) };
        let mut hashes = Vec::new();
        for f in &group.functions {
            let dir = f.code.clone();
            let h = tokio::task::spawn_blocking(move || dir.map(|d| crate::bundle::tree_hash(&d)).unwrap_or_default())
                .await
                .unwrap_or_default();
            hashes.push(h);
        }
        let lambda_logger = group.loggers.iter().find(|l| l.component == crate::group::LoggerComponent::Lambda);
        // A FATAL Lambda logger writes ERROR lines too (ERROR and FATAL share
        // one threshold, as they always did here).
        let log_level = lambda_logger.map(|l| l.level.min(LogLevel::Error)).unwrap_or(LogLevel::Info);
        let log_bytes = group
            .loggers
            .iter()
            .find(|l| l.component == crate::group::LoggerComponent::Lambda)
            .and_then(|l| l.space_kb)
            .map(|k| k * 1024)
            .unwrap_or(self.cfg.log_bytes);
        let old: HashMap<FunctionArn, Arc<FunctionSlot>> = self.slots.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut next: HashMap<FunctionArn, Arc<FunctionSlot>> = HashMap::new();
        let mut started = Vec::new();
        for (f, hash) in group.functions.iter().zip(hashes) {
            let plugin = match registry.plugin_for(&f.runtime) {
                Ok(p) => p.clone(),
                Err(e) => {
                    tracing::error!(function = %f.arn, error = %e, "function not started");
                    continue;
                }
            };
            if let Some(s) = old.get(&f.arn) {
                if s.def == *f && s.code_hash == hash && s.plugin.file == plugin.file {
                    s.log.set_level(log_level);
                    next.insert(f.arn.clone(), s.clone());
                    continue;
                }
            }
            let log = logs::FunctionLog::open(&self.layout, &f.arn, log_bytes);
            log.set_level(log_level);
            let slot = Arc::new(FunctionSlot::new(f.clone(), log, hash, plugin, self.cfg.max_work_items, self.cfg.max_instances));
            slot.log.write(LogLevel::Info, &format!("function deployed ({} runtime, {:?})", f.runtime, f.lifecycle));
            next.insert(f.arn.clone(), slot.clone());
            started.push(slot);
        }
        let removed: Vec<Arc<FunctionSlot>> =
            old.iter().filter(|(arn, s)| next.get(*arn).is_none_or(|n| !Arc::ptr_eq(n, s))).map(|(_, s)| s.clone()).collect();
        for s in removed {
            tracing::info!(function = %s.def.arn, "function removed or changed by the deployment; stopping its instances");
            // Work queued for a function the new group still has (same name,
            // maybe another version) goes to the new version, not to waste;
            // so does work its instances took but had not started.
            let successor = next.values().find(|n| n.def.arn.unqualified() == s.def.arn.unqualified() && !Arc::ptr_eq(n, &s));
            if let Some(n) = successor {
                s.set_successor(n.clone());
            }
            s.removed.cancel();
            if let Some((n, moved)) = s.pass_on_queue("the function was removed by a deployment") {
                if moved > 0 {
                    tracing::info!(from = %s.def.arn, to = %n.def.arn, moved, "queued work handed to the new version");
                }
            }
        }
        *self.slots.write().unwrap_or_else(|p| p.into_inner()) = next;
        // Zygotes start now, so that the first cold start is only a fork.
        let mut plugins_seen = std::collections::HashSet::new();
        for s in &started {
            if plugins_seen.insert(s.plugin.file.clone()) {
                let mgr = self.clone();
                let s = s.clone();
                self.tracker.spawn(async move {
                    mgr.zygote_for(&s.plugin, &s.def.runtime).await;
                });
            }
        }
        for s in started {
            if s.def.lifecycle == Lifecycle::Pinned {
                self.supervise_pinned(&s);
            } else {
                self.ensure_capacity(&s);
            }
        }
    }

    /// The functions for `ggcore status`.
    pub fn status(&self) -> serde_json::Value {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<serde_json::Value> = slots
            .values()
            .map(|s| {
                let st = &s.stats;
                let g = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
                serde_json::json!({
                    "arn": s.def.arn.as_str(),
                    "runtime": s.def.runtime,
                    "plugin": s.plugin.file.display().to_string(),
                    "lifecycle": if s.def.lifecycle == Lifecycle::Pinned { "pinned" } else { "on-demand" },
                    "isolation": s.def.isolation.effective(),
                    "runAs": self.run_as(&s.def).map(|r| serde_json::json!({"uid": r.uid, "gid": r.gid})),
                    "instances": s.instance_list(),
                    "maxInstances": s.max_instances,
                    "queued": s.queue_len(),
                    "queueCapacity": s.capacity,
                    "invocations": g(&st.invocations),
                    "succeeded": g(&st.succeeded),
                    "handledErrors": g(&st.handled_errors),
                    "unhandledErrors": g(&st.unhandled_errors),
                    "timeouts": g(&st.timeouts),
                    "crashes": g(&st.crashes),
                    "outOfMemory": g(&st.out_of_memory),
                    "rejectedQueueFull": g(&st.rejected_queue_full),
                    "instancesStarted": g(&st.instances_started),
                    "startFailures": g(&st.start_failures),
                    "eventsNotRun": g(&st.events_not_run),
                    "memoryKb": s.def.memory_kb,
                    "timeoutSeconds": s.def.timeout.as_secs(),
                    "log": s.log.path.display().to_string(),
                })
            })
            .collect();
        list.sort_by(|a, b| a["arn"].as_str().cmp(&b["arn"].as_str()));
        serde_json::Value::Array(list)
    }
}

impl Deliver for Arc<FunctionManager> {
    fn deliver(&self, target: &Endpoint, _source: &Endpoint, msg: &Message, when_full: WhenFull) -> Delivery {
        let Endpoint::Function(arn) = target else { return Delivery::Dropped("not a function") };
        if self.stopping.is_cancelled() {
            return Delivery::Dropped("the core is stopping");
        }
        let Some(slot) = self.slot(arn) else { return Delivery::Dropped("function not running") };
        let mut context = String::from("{\"custom\":{\"subject\":");
        ggcore_plugin_abi::push_json_string(&mut context, &msg.topic);
        context.push_str("}}");
        let item = WorkItem {
            invocation_id: uuid::Uuid::new_v4().to_string(),
            event: msg.payload.clone(),
            client_context: context,
            is_event: true,
            reply: None,
            enqueued: Instant::now(),
        };
        let delivery = match slot.enqueue_routed(item, when_full == WhenFull::Hold) {
            Ok(Enqueued::Queued) => Delivery::Accepted,
            Ok(Enqueued::Full) => Delivery::Full,
            Err(_) => {
                slot.stats.rejected_queue_full.fetch_add(1, Ordering::Relaxed);
                return Delivery::Refused;
            }
        };
        self.ensure_capacity(&slot);
        delivery
    }

    fn room(&self, target: &Endpoint, _ticket: u64) -> Option<Arc<Notify>> {
        let Endpoint::Function(arn) = target else { return None };
        let slot = self.slot(arn)?;
        if slot.room_or_wait() {
            None
        } else {
            Some(slot.room.clone())
        }
    }
}
