//! `ggcore run`: opens the root, starts every part, applies deployments, and
//! stops cleanly on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex as AsyncMutex;

use crate::admin::{self, Request, Response};
use crate::broker::{self, session::SessionLimits, tls, BrokerCtx, DeviceHub};
use crate::certs;
use crate::cloud::Cloud;
use crate::config::CoreConfig;
use crate::demo;
use crate::deploy::{self, DeploymentRecord, DeploymentStatus, DeploymentType, GroupSource, Staged};
use crate::functions::{FunctionManager, FunctionsConfig};
use crate::group::{self, CompileContext, Compiled, Group, GroupError};
use crate::layout::Layout;
use crate::plugins::Registry;
use crate::router::{Router, TargetKind};
use crate::services::Services;
use crate::shadow::ShadowService;
use crate::shutdown::Shutdown;
use crate::store::{RocksStore, RootLock, StateStore};
/// Environment variable overriding `ggcore.mqtt.port` (containers, tests).
pub const MQTT_PORT_ENV: &str = "GGCORE_MQTT_PORT";
/// Overrides `ggcore.threads` (benchmarks compare thread counts with it).
pub const THREADS_ENV: &str = "GGCORE_THREADS";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad configuration: exit code 2.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Cert(#[from] certs::CertError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Cloud(#[from] crate::cloud::CloudError),
    #[error("{0}")]
    Other(String),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Config(_) | RunError::Invalid(_) | RunError::Cloud(crate::cloud::CloudError::Config { .. }) => 2,
            _ => 1,
        }
    }
}

/// Parts that this build does not serve yet as router targets.
const UNSERVED: &[&str] = &[];

/// Validates a group's source for this core: runtimes must be served by a
/// plugin on the path, RunAs root needs `allowFunctionsToRunAsRoot`, and each
/// function's user must be able to reach its deployed code and SDK.
pub fn compile_source(config: &CoreConfig, registry: &Registry, layout: &Layout, source: &GroupSource) -> Result<Compiled, GroupError> {
    let check = |runtime: &str| registry.check(runtime);
    let cx = CompileContext { base_dir: Some(&source.base_dir), runtimes: &check, unserved: UNSERVED };
    let mut compiled = group::compile_text(&source.file, &source.text, &cx)?;
    let mut problems = Vec::new();
    for f in &compiled.group.functions {
        if let Some(r) = f.run_as {
            if (r.uid == 0 || r.gid == 0) && !config.runtime.allow_functions_to_run_as_root {
                problems.push(group::Problem {
                    path: format!("FunctionDefinition.Functions[Id={}].RunAs", f.id),
                    message: "runs as root (uid or gid 0), which needs runtime.allowFunctionsToRunAsRoot \"yes\" in config.json"
                        .to_string(),
                });
            }
        }
        if !nix::unistd::geteuid().is_root() && f.run_as.is_some() {
            compiled.warnings.push(group::Problem {
                path: format!("FunctionDefinition.Functions[Id={}].RunAs", f.id),
                message: "the core is not running as root, so the function runs as the core's user".to_string(),
            });
        }
    }
    let to_cloud = compiled.group.subscriptions.iter().any(|s| s.target == group::Endpoint::Cloud || s.source == group::Endpoint::Cloud);
    if to_cloud && (config.core_thing.iot_host.is_none() || !config.cloud_enabled) {
        compiled.warnings.push(group::Problem {
            path: "SubscriptionDefinition".to_string(),
            message: "the core has no cloud link (coreThing.iotHost is not set, or ggcore.cloud.enabled is false): messages to the cloud wait in the queue until one is configured".to_string(),
        });
    }
    let sdk_root = crate::functions::sdk_root();
    let sdk_dirs = |f: &group::Function| {
        let declared = registry.plugin_for(&f.runtime).ok().and_then(|p| p.sdk_dirs.as_deref());
        crate::functions::sdk_dirs(&sdk_root, declared, &f.runtime)
    };
    problems.extend(crate::access::check_group(layout, &compiled.group, &sdk_dirs));
    if problems.is_empty() {
        Ok(compiled)
    } else {
        Err(GroupError { file: source.file.clone(), problems })
    }
}

/// Loads the configuration of a root, with the environment's overrides.
pub fn load_config(root: &std::path::Path) -> Result<CoreConfig, RunError> {
    let file = root.join("config/config.json");
    let mut config = CoreConfig::load(&file, root)?;
    if let Ok(p) = std::env::var(MQTT_PORT_ENV) {
        config.mqtt.port = p.parse().map_err(|_| RunError::Invalid(format!("{MQTT_PORT_ENV}='{p}' is not a port number")))?;
    }
    if let Ok(t) = std::env::var(THREADS_ENV) {
        config.threads = t.parse().ok().filter(|n| *n <= crate::config::MAX_THREADS).ok_or_else(|| {
            RunError::Invalid(format!("{THREADS_ENV}='{t}' is not a thread count (0-{}; 0: one per CPU)", crate::config::MAX_THREADS))
        })?;
    }
    Ok(config)
}

/// The running core's parts, shared with the admin handler.
pub struct Core {
    pub layout: Layout,
    pub config: CoreConfig,
    pub store: Arc<dyn StateStore>,
    pub router: Arc<Router>,
    pub hub: Arc<DeviceHub>,
    pub functions: Arc<FunctionManager>,
    pub cloud: Arc<Cloud>,
    pub services: Arc<Services>,
    pub shadows: Arc<ShadowService>,
    pub registry: std::sync::RwLock<Registry>,
    pub started: Instant,
    pub mqtt_addr: SocketAddr,
    /// Serialises deployments (and a stopping core holds it: no deployment
    /// starts once a stop began).
    pub(crate) deploy_lock: AsyncMutex<()>,
    current: std::sync::Mutex<Option<DeploymentRecord>>,
}

impl Core {
    pub(crate) fn record(&self) -> Option<DeploymentRecord> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_record(&self, mut r: DeploymentRecord) {
        if let Err(e) = r.save(self.store.as_ref()) {
            tracing::error!(error = %e, "could not save the deployment record");
        }
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }

    pub(crate) fn registry(&self) -> Registry {
        self.registry.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Probes the plugin path again (plugins may have been added or fixed).
    async fn rescan_plugins(&self) -> Registry {
        let path = self.config.plugin_path.clone();
        let r = tokio::task::spawn_blocking(move || Registry::scan(&path)).await.unwrap_or_default();
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = r.clone();
        r
    }

    /// Makes `group` the running group: route table, device sessions, functions.
    async fn activate(&self, group: Group) {
        crate::telemetry::set_system_log_space(
            group.loggers.iter().find(|l| l.component == group::LoggerComponent::GreengrassSystem).and_then(|l| l.space_kb),
        );
        self.functions.apply(&group, &self.registry()).await;
        self.cloud.apply(&group);
        self.shadows.apply(&group);
        let table = self.router.install(Arc::new(group));
        self.hub.apply_table(&table);
        tracing::info!(
            group = %table.group.group_id,
            devices = table.group.devices.len(),
            subscriptions = table.subscription_count(),
            generation = table.generation,
            "group in force"
        );
    }

    /// Validates and applies a group, as a deployment with a record.
    pub async fn deploy(&self, source: GroupSource, id: Option<String>) -> Response {
        let _serial = self.deploy_lock.lock().await;
        let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let registry = self.rescan_plugins().await;
        let compiled = match compile_source(&self.config, &registry, &self.layout, &source) {
            Ok(c) => c,
            Err(e) => {
                let mut r = DeploymentRecord::new(id.clone(), DeploymentType::NewDeployment, None);
                r.status = DeploymentStatus::Failure;
                r.error = Some(e.to_string());
                self.set_record(r);
                tracing::warn!(deployment = %id, "deployment rejected: {e}");
                return Response { ok: false, code: 2, error: Some(e.to_string()), problems: e.problems, ..Response::default() };
            }
        };
        for w in &compiled.warnings {
            tracing::warn!(deployment = %id, "{}: {w}", source.file);
        }
        let mut record = DeploymentRecord::new(id.clone(), DeploymentType::NewDeployment, Some(compiled.group.group_id.clone()));
        self.set_record(record.clone());
        record.status = DeploymentStatus::InProgress;
        self.set_record(record.clone());
        let layout = self.layout.clone();
        let group = compiled.group.clone();
        let installed = {
            let id = id.clone();
            tokio::task::spawn_blocking(move || deploy::install(&layout, &group, &source, &id)).await
        };
        let installed = match installed {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return self.fail(record, e.to_string()),
            Err(e) => return self.fail(record, format!("deployment task failed: {e}")),
        };
        // Recompile from the installed copy so that code paths point at it.
        let group = match compile_source(&self.config, &registry, &self.layout, &installed) {
            Ok(c) => c.group,
            Err(e) => return self.fail(record, e.to_string()),
        };
        self.activate(group).await;
        record.status = DeploymentStatus::Success;
        self.set_record(record.clone());
        tracing::info!(deployment = %id, group = ?record.group_id, "deployment succeeded");
        Response {
            ok: true,
            warnings: compiled.warnings,
            body: Some(serde_json::to_value(&record).unwrap_or_default()),
            ..Response::default()
        }
    }

    fn fail(&self, mut record: DeploymentRecord, error: String) -> Response {
        tracing::error!(deployment = %record.id, error = %error, "deployment failed; the previous group stays in force");
        record.status = DeploymentStatus::Failure;
        record.error = Some(error.clone());
        self.set_record(record.clone());
        Response { ok: false, code: 1, error: Some(error), body: serde_json::to_value(&record).ok(), ..Response::default() }
    }

    /// Removes the deployed group.
    pub async fn reset(&self, force: bool, id: Option<String>) -> Response {
        let _serial = self.deploy_lock.lock().await;
        let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let kind = if force { DeploymentType::ForceResetDeployment } else { DeploymentType::ResetDeployment };
        let mut record = DeploymentRecord::new(id.clone(), kind, None);
        record.status = DeploymentStatus::InProgress;
        self.set_record(record.clone());
        self.activate(Group::default()).await;
        // A reset removes the local shadows (docs/shadows.md, "Storage and order").
        if let Err(e) = self.shadows.clear().await {
            if !force {
                return self.fail(record, format!("removing the local shadows: {e}"));
            }
            tracing::warn!(error = %e, "forced reset: could not remove the local shadows");
        }
        let layout = self.layout.clone();
        match tokio::task::spawn_blocking(move || deploy::uninstall(&layout)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if !force => return self.fail(record, e.to_string()),
            Ok(Err(e)) => tracing::warn!(error = %e, "forced reset: could not remove everything"),
            Err(e) => return self.fail(record, format!("reset task failed: {e}")),
        }
        record.status = DeploymentStatus::Success;
        self.set_record(record.clone());
        tracing::info!(deployment = %id, "group reset");
        Response::ok(serde_json::to_value(&record).unwrap_or_default())
    }
}

impl Core {
    /// `ggcore shadow get|update|delete THING [JSON]`: a request to the shadow
    /// service; the body is its answer (accepted or rejected document).
    async fn shadow_request(&self, op: &str, thing: &str, payload: String) -> Response {
        let Some(op) = crate::shadow::Op::parse(op) else {
            return Response::error(2, format!("unknown shadow operation '{op}' (get, update or delete)"));
        };
        match self.shadows.ask(thing, op, bytes::Bytes::from(payload)).await {
            Ok(doc) => match serde_json::from_slice(&doc) {
                Ok(body) => Response::ok(body),
                Err(e) => Response::error(1, format!("the shadow service answered something that is not JSON: {e}")),
            },
            Err((_, message)) => Response::error(1, message),
        }
    }
}

impl admin::Handler for Core {
    async fn handle(self: Arc<Self>, req: Request) -> Response {
        match req {
            Request::Deploy { file, text, base_dir } => self.deploy(GroupSource { file, text, base_dir }, None).await,
            Request::Reset { force } => self.reset(force, None).await,
            Request::Status => Response::ok(self.status()),
            Request::Shadow { action, thing, payload } => self.shadow_request(&action, &thing, payload).await,
        }
    }
}

/// Runs the core on `layout` until SIGINT/SIGTERM.
pub async fn run(root: std::path::PathBuf) -> Result<(), RunError> {
    let started = Instant::now();
    // What the core makes is its own unless a mode says otherwise; a root it
    // makes is open like /greengrass (docs/functions.md, "Files and permissions").
    crate::permissions::restrict_umask();
    crate::permissions::create_dirs(&root, crate::permissions::OPEN_DIR).map_err(|e| RunError::Other(e.to_string()))?;
    let fresh = Layout::is_empty_root(&root);
    let bootstrap_layout = Layout::new(root.clone(), None);
    // The demo's config must exist before the configuration is read.
    let mut demo_group = None;
    if fresh {
        tracing::info!(root = %root.display(), "empty root: making the embedded demo (local CAs, certificates, demo group)");
        let cas = certs::ensure_cas(&bootstrap_layout)?;
        let path = crate::config::default_plugin_path(&root);
        let registry = tokio::task::spawn_blocking(move || Registry::scan(&path)).await.unwrap_or_default();
        let python = registry.plugins.iter().find(|p| p.available && p.serves("python3.11")).map(|p| p.native_runtime.clone());
        if python.is_none() {
            tracing::warn!("no Python runtime plugin is available; the demo routes between its two devices only");
        }
        demo_group = Some(demo::bootstrap(&bootstrap_layout, &cas, python.as_deref()).map_err(|e| RunError::Other(e.to_string()))?);
    }
    let config = load_config(&root)?;
    let layout = Layout::new(root.clone(), config.write_directory.clone());
    let _lock = RootLock::acquire(&layout.lock_file())?;
    layout.secure().map_err(|e| RunError::Other(format!("cannot set the permissions of the root: {e}")))?;
    if let Err(e) = crate::telemetry::open_system_log(layout.system_log_dir()) {
        tracing::warn!(error = %e, dir = %layout.system_log_dir().display(), "cannot write the system log file; logging to stderr only");
    }
    // After the system log is open, so that they are in runtime.log too.
    for w in &config.warnings {
        tracing::warn!("{}: {w}", root.join("config/config.json").display());
    }
    let cas = certs::ensure_cas(&layout)?;
    for f in &cas.created {
        tracing::info!(file = %f.display(), "made a local certificate authority");
    }
    let names = certs::server_names(&config.connectivity.iter().map(|c| c.host_address.clone()).collect::<Vec<_>>());
    if let Some(why) = certs::ensure_server_cert(&layout, &cas.group, &names)? {
        tracing::info!(reason = why, names = ?names, "issued the MQTT server certificate");
    }
    let store: Arc<dyn StateStore> = Arc::new(RocksStore::open(&layout.store_dir())?);
    let cloud = Cloud::open(&config, store.clone())?;

    let router = Arc::new(Router::new());
    let hub = Arc::new(DeviceHub::new(SessionLimits {
        max_queued: config.mqtt.max_queued_messages,
        stall_timeout: config.mqtt.stall_timeout,
        max_subscriptions: config.mqtt.max_subscriptions,
        ..SessionLimits::default()
    }));
    router.attach(TargetKind::Device, hub.clone());
    // The core's own services, registered once: the registry attaches the cloud
    // and the shadow service to the router, and functions' service calls reach them by name.
    let services = Services::new();
    let shadows = ShadowService::start(router.clone(), store.clone());
    services.register(cloud.clone());
    services.register(shadows.clone());
    services.attach_to(&router);
    let shutdown = Shutdown::new();
    let functions_cfg = FunctionsConfig {
        max_work_items: config.runtime.max_work_item_count,
        max_instances: crate::functions::DEFAULT_MAX_INSTANCES,
        idle_timeout: crate::functions::instance::IDLE_TIMEOUT,
        max_payload: config.mqtt.max_payload_bytes,
        allow_root: config.runtime.allow_functions_to_run_as_root,
        sdk_root: crate::functions::sdk_root(),
        log_bytes: crate::functions::logs::DEFAULT_FUNCTION_LOG_BYTES,
    };
    let functions = FunctionManager::new(layout.clone(), router.clone(), services.clone(), functions_cfg);
    router.attach(TargetKind::Function, Arc::new(functions.clone()));
    let plugin_path = config.plugin_path.clone();
    let registry = tokio::task::spawn_blocking(move || Registry::scan(&plugin_path)).await.unwrap_or_default();
    for p in &registry.plugins {
        tracing::info!(plugin = %p.file.display(), name = %p.name, status = %p.status(), "runtime plugin");
    }

    let resolver = Arc::new(tls::ServerCertResolver::new(tls::load_certified_key(&layout.server_cert(), &layout.server_key())?));
    if !config.device_ca_path.exists() {
        return Err(RunError::Invalid(format!("ggcore.deviceCaPath: {} does not exist", config.device_ca_path.display())));
    }
    let tls_config = tls::server_config(&config.device_ca_path, resolver.clone())?;
    let ip: std::net::IpAddr = config
        .mqtt
        .host
        .parse()
        .map_err(|_| RunError::Invalid(format!("ggcore.mqtt.host: '{}' is not an IP address", config.mqtt.host)))?;
    let listener = broker::bind(SocketAddr::new(ip, config.mqtt.port))
        .await
        .map_err(|e| RunError::Other(format!("cannot listen on {}:{}: {e}", config.mqtt.host, config.mqtt.port)))?;
    let mqtt_addr = listener.local_addr().map_err(|e| RunError::Other(e.to_string()))?;
    let admin_listener = admin::bind(&layout.admin_socket())
        .map_err(|e| RunError::Other(format!("admin socket {}: {e}", layout.admin_socket().display())))?;
    functions.start_ipc().map_err(|e| RunError::Other(format!("worker socket in {}: {e}", layout.socket_dir().display())))?;

    let core = Arc::new(Core {
        layout: layout.clone(),
        config: config.clone(),
        store: store.clone(),
        router: router.clone(),
        hub: hub.clone(),
        functions: functions.clone(),
        cloud: cloud.clone(),
        services: services.clone(),
        shadows: shadows.clone(),
        registry: std::sync::RwLock::new(registry),
        started,
        mqtt_addr,
        deploy_lock: AsyncMutex::new(()),
        current: std::sync::Mutex::new(DeploymentRecord::load_current(store.as_ref())?),
    });

    // The deployed group, then a staged deployment (made while no core ran).
    if let Some(text) = demo_group {
        let src = GroupSource { file: "embedded demo group".to_string(), text, base_dir: root.clone() };
        let r = core.deploy(src, None).await;
        if !r.ok {
            return Err(RunError::Other(format!("the demo group did not deploy: {}", r.error.unwrap_or_default())));
        }
    } else {
        match deploy::deployed_source(&layout) {
            Ok(Some(src)) => match compile_source(&config, &core.registry(), &layout, &src) {
                Ok(c) => core.activate(c.group).await,
                Err(e) => tracing::error!("the deployed group no longer validates; running with no group: {e}"),
            },
            Ok(None) => tracing::info!("no group deployed yet; `ggcore deploy PATH` deploys one"),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the deployed group; running with no group")
            }
        }
    }
    match deploy::take_staged(&layout) {
        Ok(Some((staged, dir))) => {
            let r = match staged {
                Staged::Deploy { id, source } => {
                    tracing::info!(deployment = %id, "applying the deployment staged while no core ran");
                    core.deploy(source, Some(id)).await
                }
                Staged::Reset { id } => {
                    tracing::info!(deployment = %id, "applying the reset staged while no core ran");
                    core.reset(false, Some(id)).await
                }
            };
            if !r.ok {
                tracing::error!(error = ?r.error, "the staged deployment failed");
            }
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot read the staged deployment"),
    }

    let ctx = Arc::new(BrokerCtx {
        router: router.clone(),
        hub: hub.clone(),
        acceptor: tokio_rustls::TlsAcceptor::from(tls_config),
        max_payload: config.mqtt.max_payload_bytes,
        core_thing: config.core_thing_name().map(str::to_string),
        stopping: shutdown.accepting(),
        shutdown: shutdown.closing(),
    });
    let tracker = shutdown.tracker();
    tracker.spawn(broker::serve(listener, ctx, tracker.clone(), shutdown.accepting()));
    tracker.spawn(admin::serve(admin_listener, core.clone(), shutdown.accepting(), shutdown.closing(), tracker.clone()));
    cloud.start(router.clone(), tracker, shutdown.closing());
    if cloud.enabled() {
        crate::shadow::sync::start(shadows.clone(), cloud.clone(), store.clone(), tracker, shutdown.closing());
        shadows.apply(&router.table().group);
    }
    tracker.spawn(crate::renewal::renew_server_cert(layout.clone(), names, resolver, shutdown.accepting()));

    let signals = StopSignals::install()?;
    // Start-up code is not needed while the core idles (see telemetry); a
    // core that stops first does not wait for this.
    let stopping = shutdown.accepting();
    tracker.spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                crate::telemetry::release_startup_pages();
            }
            _ = stopping.cancelled() => {}
        }
    });
    let shown = if ip.is_unspecified() { SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), mqtt_addr.port()) } else { mqtt_addr };
    tracing::info!(
        "ggcore ready mqtt={shown} admin={} root={} startup_ms={} threads={}",
        layout.admin_socket().display(),
        root.display(),
        started.elapsed().as_millis(),
        tokio::runtime::Handle::current().metrics().num_workers()
    );
    if core.router.table().group.group_id == demo::DEMO_GROUP_ID {
        if let Some(cmds) = demo::commands(&layout, mqtt_addr.port()) {
            eprintln!("{cmds}");
        }
    }

    signals.wait().await;
    shutdown.run(core, store).await;
    tracing::info!("ggcore stopped");
    Ok(())
}

/// SIGTERM and SIGINT, installed before the core says it is ready so that a
/// signal sent right after the ready line is a clean stop.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Result<Self, RunError> {
        use tokio::signal::unix::{signal, SignalKind};
        let err = |e: std::io::Error| RunError::Other(format!("cannot install signal handlers: {e}"));
        Ok(Self { term: signal(SignalKind::terminate()).map_err(err)?, int: signal(SignalKind::interrupt()).map_err(err)? })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
    }
}
