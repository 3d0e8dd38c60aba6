//! The `ggcore` command line (docs/cli.md). Exit codes: 0 success, 2 bad usage or
//! invalid input, 1 other failures.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::admin::{self, ClientError, Request};
use crate::certs;
use crate::daemon;
use crate::deploy;
use crate::layout::{self, Layout};
use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(name = "ggcore", version, about = "An edge core that runs AWS Greengrass v1 groups, functions and devices unchanged")]
pub struct Cli {
    /// Root directory (else $GGCORE_ROOT, else ./greengrass).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the core in the foreground (an empty root gets the embedded demo).
    Run,
    /// Deploy a group (group.json or a bundle directory), or reset the deployed one.
    Deploy {
        /// group.json, or a directory holding group.json and function code.
        #[arg(required_unless_present = "reset")]
        path: Option<PathBuf>,
        /// Remove the deployed group.
        #[arg(long, conflicts_with = "path")]
        reset: bool,
        /// With --reset: reset even when running instances cannot be stopped cleanly.
        #[arg(long, requires = "reset")]
        force: bool,
    },
    /// State of the running core.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Local certificate authorities and device certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Runtime plugins on the plugin path.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// The Core SDKs this ggcore ships, to build functions against.
    Sdk {
        #[command(subcommand)]
        command: SdkCommand,
    },
    /// Read and change device shadows on the running core (the local shadow service).
    Shadow {
        #[command(subcommand)]
        command: ShadowCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShadowCommand {
    /// Print THING's shadow document (state, delta, metadata, version).
    Get { thing: String },
    /// Apply an update request to THING's shadow, e.g. '{"state": {"desired": {"on": true}}}'
    /// ('-' reads it from stdin); prints the accepted document.
    Update { thing: String, json: String },
    /// Delete THING's shadow.
    Delete { thing: String },
}

#[derive(Debug, Subcommand)]
pub enum SdkCommand {
    /// Print where the SDK of LANGUAGE is (the last line of stdout): Python
    /// and Node the directory to put on PYTHONPATH / NODE_PATH; C a prefix P
    /// with P/include/greengrasssdk.h and P/lib/libaws-greengrass-core-sdk-c.so;
    /// Java the SDK jar (javac -cp).
    Path { language: SdkLanguage },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SdkLanguage {
    Python,
    Node,
    C,
    Java,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Make the group CA, the device CA and the server certificate where missing.
    Init,
    /// Issue a device certificate (CN = THING) signed by the device CA.
    Device {
        thing: String,
        /// Directory for THING.cert.pem, THING.private.key and group-ca.pem.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List every plugin found, with its availability.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn invalid(m: impl Into<String>) -> Self {
        Self { code: 2, message: m.into() }
    }
    pub fn other(m: impl Into<String>) -> Self {
        Self { code: 1, message: m.into() }
    }
}

impl From<daemon::RunError> for CliError {
    fn from(e: daemon::RunError) -> Self {
        Self { code: e.exit_code(), message: e.to_string() }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        Self::other(e.to_string())
    }
}

const ADMIN_TIMEOUT: Duration = Duration::from_secs(120);

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| CliError::other(e.to_string()))
}

/// Runs one command.
pub fn dispatch(cli: Cli) -> Result<(), CliError> {
    let root = layout::resolve_root(cli.root.as_deref());
    match cli.command {
        Command::Run => {
            // The thread count is read before the runtime exists; a bad file
            // is reported by `daemon::run` as usual.
            let threads = daemon::load_config(&root).map(|c| c.event_loop_threads()).unwrap_or(crate::config::DEFAULT_THREADS);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()
                .map_err(|e| CliError::other(e.to_string()))?;
            rt.block_on(daemon::run(root)).map_err(CliError::from)
        }
        Command::Deploy { path, reset, force } => runtime()?.block_on(deploy_cmd(&root, path.as_deref(), reset, force)),
        Command::Status { json } => runtime()?.block_on(status_cmd(&root, json)),
        Command::Certs { command: CertsCommand::Init } => certs_init(&root),
        Command::Certs { command: CertsCommand::Device { thing, out } } => certs_device(&root, &thing, out.as_deref()),
        Command::Plugins { command: PluginsCommand::List { json } } => plugins_list(&root, json),
        Command::Sdk { command: SdkCommand::Path { language } } => sdk_path(language),
        Command::Shadow { command } => runtime()?.block_on(shadow_cmd(&root, command)),
    }
}

fn layout_of(root: &Path) -> Result<(Layout, crate::config::CoreConfig), CliError> {
    let config = daemon::load_config(root)?;
    Ok((Layout::new(root.to_path_buf(), config.write_directory.clone()), config))
}

async fn deploy_cmd(root: &Path, path: Option<&Path>, reset: bool, force: bool) -> Result<(), CliError> {
    let (layout, config) = layout_of(root)?;
    if reset {
        return match admin::call(&layout.admin_socket(), &Request::Reset { force }, ADMIN_TIMEOUT).await {
            Ok(r) => report_deployment(r, None),
            Err(ClientError::NotRunning(_)) => {
                let id = deploy::stage_reset(&layout).map_err(|e| CliError::other(e.to_string()))?;
                println!("no core is running on {}; reset staged, applied at next start", root.display());
                println!("deployment {id}: Staged");
                Ok(())
            }
            Err(e) => Err(e.into()),
        };
    }
    let Some(path) = path else {
        return Err(CliError::invalid("deploy needs a PATH (group.json or a bundle directory), or --reset"));
    };
    let source = deploy::read_source(path).map_err(|e| CliError::invalid(e.to_string()))?;
    // Validate here first so that problems are named even with no core running.
    let registry = crate::plugins::Registry::scan(&config.plugin_path);
    let compiled = daemon::compile_source(&config, &registry, &layout, &source).map_err(|e| CliError::invalid(e.to_string()))?;
    let req = Request::Deploy { file: source.file.clone(), text: source.text.clone(), base_dir: source.base_dir.clone() };
    match admin::call(&layout.admin_socket(), &req, ADMIN_TIMEOUT).await {
        // The running core's own validation gives the warnings.
        Ok(r) => report_deployment(r, Some(&source.file)),
        Err(ClientError::NotRunning(_)) => {
            for w in &compiled.warnings {
                eprintln!("warning: {}: {w}", source.file);
            }
            let id = deploy::stage(&layout, &compiled.group, &source).map_err(|e| CliError::other(e.to_string()))?;
            println!("no core is running on {}; deployment staged, applied at next start", root.display());
            println!("deployment {id}: Staged");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Prints a deployment's outcome; warnings are prefixed with `file` when given.
fn report_deployment(r: admin::Response, file: Option<&str>) -> Result<(), CliError> {
    let id = r.body.as_ref().and_then(|b| b.get("id")).and_then(|v| v.as_str()).unwrap_or("-").to_string();
    let status = r.body.as_ref().and_then(|b| b.get("status")).and_then(|v| v.as_str()).unwrap_or("Failure").to_string();
    if r.ok {
        for w in &r.warnings {
            match file {
                Some(f) => eprintln!("warning: {f}: {w}"),
                None => eprintln!("warning: {w}"),
            }
        }
        println!("deployment {id}: {status}");
        Ok(())
    } else {
        if id != "-" {
            println!("deployment {id}: {status}");
        }
        Err(CliError { code: if r.code == 0 { 1 } else { r.code }, message: r.error.unwrap_or_else(|| "deployment failed".to_string()) })
    }
}

/// `ggcore shadow`: one request to the shadow service of the running core.
/// The answer document goes to stdout; a rejection also exits 1 (2 for a
/// malformed request) with its code and message on stderr.
async fn shadow_cmd(root: &Path, command: ShadowCommand) -> Result<(), CliError> {
    let (op, thing, payload) = match command {
        ShadowCommand::Get { thing } => ("get", thing, String::new()),
        ShadowCommand::Delete { thing } => ("delete", thing, String::new()),
        ShadowCommand::Update { thing, json } => {
            let json = if json == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .map_err(|e| CliError::other(format!("reading the update from stdin: {e}")))?;
                s
            } else {
                json
            };
            ("update", thing, json)
        }
    };
    let r = ask_running_core(root, &Request::Shadow { action: op.to_string(), thing: thing.clone(), payload }).await?;
    let Some(body) = r.body.filter(|_| r.ok) else {
        return Err(CliError { code: r.code.max(1), message: r.error.unwrap_or_else(|| "the shadow request failed".into()) });
    };
    println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
    match (body.get("code").and_then(|c| c.as_u64()), body.get("message").and_then(|m| m.as_str())) {
        (Some(code), Some(message)) => Err(CliError {
            code: if code == 400 || code == 413 { 2 } else { 1 },
            message: format!("shadow {op} of {thing} rejected: {code} {message}"),
        }),
        _ => Ok(()),
    }
}

/// Sends `req` to the core running on `root`; no core running is an error.
async fn ask_running_core(root: &Path, req: &Request) -> Result<admin::Response, CliError> {
    let (layout, _) = layout_of(root)?;
    match admin::call(&layout.admin_socket(), req, ADMIN_TIMEOUT).await {
        Ok(r) => Ok(r),
        Err(ClientError::NotRunning(_)) => Err(CliError::other(format!("no ggcore is running on {}", root.display()))),
        Err(e) => Err(e.into()),
    }
}

async fn status_cmd(root: &Path, json: bool) -> Result<(), CliError> {
    let r = ask_running_core(root, &Request::Status).await?;
    let Some(body) = r.body.filter(|_| r.ok) else {
        return Err(CliError::other(r.error.unwrap_or_else(|| "status failed".into())));
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
        return Ok(());
    }
    let s =
        |p: &str| body.pointer(p).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).unwrap_or_else(|| "-".into());
    println!("ggcore {} (pid {}), up {} s, root {}", s("/version"), s("/pid"), s("/uptimeSeconds"), s("/root"));
    println!("mqtt: {}", s("/mqtt"));
    println!("deployment: {} {} (group {})", s("/deployment/id"), s("/deployment/status"), s("/group/groupId"));
    if let Some(err) = body.pointer("/deployment/error").and_then(|v| v.as_str()) {
        println!("  error: {err}");
    }
    println!("group: {} devices, {} functions, {} subscriptions", s("/group/devices"), s("/group/functions"), s("/group/subscriptions"));
    println!("devices connected: {}", s("/devices/connected"));
    for d in body.pointer("/devices/list").and_then(|v| v.as_array()).into_iter().flatten() {
        let g = |k: &str| d.get(k).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).unwrap_or_default();
        println!(
            "  {} from {} ({} pending, {} delivered, held back publishers {} times)",
            g("thing"),
            g("peer"),
            g("pending"),
            g("delivered"),
            g("held")
        );
    }
    for d in body.pointer("/devices/offline").and_then(|v| v.as_array()).into_iter().flatten() {
        let g = |k: &str| d.get(k).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).unwrap_or_default();
        println!("  {} offline, persistent session ({} queued, {} dropped while full)", g("thing"), g("pending"), g("dropped"));
    }
    println!(
        "router: {} received, {} delivered, {} unrouted, {} dropped, {} refused (AllOrError), publishers held back {} times",
        s("/router/received"),
        s("/router/delivered"),
        s("/router/unrouted"),
        s("/router/dropped"),
        s("/router/refused"),
        s("/router/heldBack")
    );
    let functions = body.pointer("/functions").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    println!("functions: {} (memory limits: {})", functions.len(), s("/memoryLimits"));
    for f in &functions {
        let g = |k: &str| f.get(k).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).unwrap_or_default();
        let pids: Vec<String> = f
            .get("instances")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().map(|i| format!("{} {}", i["pid"], i["state"].as_str().unwrap_or(""))).collect())
            .unwrap_or_default();
        let instances = if pids.is_empty() { "no instances".to_string() } else { format!("instances: {}", pids.join(", ")) };
        println!(
            "  {} [{} {}] {instances}; {} queued, {} invocations: {} ok, {} handled, {} unhandled ({} timeouts, {} crashes, {} out of memory)",
            g("arn"),
            g("runtime"),
            g("lifecycle"),
            g("queued"),
            g("invocations"),
            g("succeeded"),
            g("handledErrors"),
            g("unhandledErrors"),
            g("timeouts"),
            g("crashes"),
            g("outOfMemory")
        );
        let user = match (f.pointer("/runAs/uid").and_then(|v| v.as_u64()), f.pointer("/runAs/gid").and_then(|v| v.as_u64())) {
            (Some(uid), Some(gid)) => format!("uid {uid}, gid {gid}"),
            _ => "the core's user".to_string(),
        };
        println!("    runs as {user}; isolation: {}", g("isolation"));
    }
    let mut cloud = format!("cloud: {}", s("/cloud/state"));
    if body.pointer("/cloud/host").is_some_and(|h| !h.is_null()) {
        cloud += &format!(" {}:{} as {}", s("/cloud/host"), s("/cloud/port"), s("/cloud/clientId"));
    }
    println!(
        "{cloud}; {} connections, {} reconnection attempts; {} sent ({} again), {} acknowledged, {} received",
        s("/cloud/connects"),
        s("/cloud/reconnects"),
        s("/cloud/published"),
        s("/cloud/resent"),
        s("/cloud/acked"),
        s("/cloud/received")
    );
    if let Some(err) = body.pointer("/cloud/lastError").and_then(|v| v.as_str()) {
        println!("  last error: {err}");
    }
    if let Some(t) = body.pointer("/cloud/retryInSeconds").and_then(|v| v.as_f64()) {
        println!("  next attempt in {t:.1} s");
    }
    let oldest = body.pointer("/queue/oldestAgeMs").and_then(|v| v.as_u64()).map(|ms| format!(", oldest {:.1} s", ms as f64 / 1000.0));
    println!(
        "queue ({} {}, fsync {}, when full {}): {} messages, {} of {} bytes{}; {} dropped, {} refused, {} waiting for room, {} replayed at start",
        s("/queue/storage"),
        if s("/queue/storage") == "FileSystem" { "storage" } else { "only" },
        s("/queue/fsync"),
        s("/queue/whenFull"),
        s("/queue/messages"),
        s("/queue/bytes"),
        s("/queue/maxSizeBytes"),
        oldest.unwrap_or_default(),
        s("/queue/dropped"),
        s("/queue/refused"),
        s("/queue/waitingForRoom"),
        s("/queue/replayed")
    );
    if let Some(err) = body.pointer("/queue/storageError").and_then(|v| v.as_str()) {
        println!("  storage error: {err} (publishers to the cloud wait until writing works again)");
    }
    Ok(())
}

fn certs_init(root: &Path) -> Result<(), CliError> {
    let (layout, config) = layout_of(root)?;
    let cas = certs::ensure_cas(&layout).map_err(|e| CliError::other(e.to_string()))?;
    for f in &cas.created {
        println!("made {}", f.display());
    }
    let names = certs::server_names(&config.connectivity.iter().map(|c| c.host_address.clone()).collect::<Vec<_>>());
    match certs::ensure_server_cert(&layout, &cas.group, &names).map_err(|e| CliError::other(e.to_string()))? {
        Some(why) => println!("made {} ({why}; names: {})", layout.server_cert().display(), names.join(", ")),
        None => println!("{} is current", layout.server_cert().display()),
    }
    println!("group CA (devices trust it): {}", layout.group_ca_cert().display());
    println!("device CA (signs device certificates): {}", layout.device_ca_cert().display());
    Ok(())
}

fn certs_device(root: &Path, thing: &str, out: Option<&Path>) -> Result<(), CliError> {
    let (layout, config) = layout_of(root)?;
    if !crate::group::arn::valid_thing_name(thing) {
        return Err(CliError::invalid(format!("'{thing}' is not a valid thing name (1-128 characters of [a-zA-Z0-9:_-])")));
    }
    let cas = certs::ensure_cas(&layout).map_err(|e| CliError::other(e.to_string()))?;
    let issued = certs::issue_device(&cas.device, thing).map_err(|e| CliError::other(e.to_string()))?;
    let dir = out.map(Path::to_path_buf).unwrap_or_else(|| layout.devices_certs_dir());
    let cert = dir.join(format!("{thing}.cert.pem"));
    let key = dir.join(format!("{thing}.private.key"));
    let w = |p: &Path, d: &[u8], m: u32| certs::write_file(p, d, m).map_err(|e| CliError::other(e.to_string()));
    w(&cert, issued.cert_pem.as_bytes(), 0o644)?;
    w(&key, issued.key_pem.as_bytes(), 0o600)?;
    eprintln!("wrote {} and {}", cert.display(), key.display());
    if out.is_some() {
        let ca = dir.join("group-ca.pem");
        w(&ca, cas.group.cert_pem.as_bytes(), 0o644)?;
        eprintln!("wrote {} (the CA devices trust)", ca.display());
    }
    let (region, account) = config.region_account();
    println!("{}", crate::group::CertificateArn::build(&region, &account, &issued.fingerprint).as_str());
    Ok(())
}

/// `ggcore sdk path LANGUAGE`: the SDK under the SDK root (`$GGCORE_SDK_ROOT`,
/// else the directory of the `ggcore` executable; docs/install.md). Each is
/// checked for the file a build needs, so a printed path is usable.
fn sdk_path(language: SdkLanguage) -> Result<(), CliError> {
    let root = crate::functions::sdk_root();
    let (path, needs): (PathBuf, &[&str]) = match language {
        SdkLanguage::Python => (root.join("sdk-python"), &["greengrasssdk/__init__.py"]),
        SdkLanguage::Node => (root.join("sdk-node").join("node_modules"), &["aws-greengrass-core-sdk/package.json"]),
        SdkLanguage::C => (root.join("sdk-c"), &["include/greengrasssdk.h", "lib/libaws-greengrass-core-sdk-c.so"]),
        SdkLanguage::Java => (root.join("sdk-java").join("aws-greengrass-core-sdk-java.jar"), &[""]),
    };
    for need in needs {
        let file = if need.is_empty() { path.clone() } else { path.join(need) };
        if !file.is_file() {
            return Err(CliError::other(format!(
                "{} is missing: the SDK root {} is incomplete (build with `cargo build`, install with scripts/install, or set GGCORE_SDK_ROOT)",
                file.display(),
                root.display()
            )));
        }
    }
    println!("{}", path.display());
    Ok(())
}

fn plugins_list(root: &Path, json: bool) -> Result<(), CliError> {
    let (_, config) = layout_of(root)?;
    let registry = crate::plugins::Registry::scan(&config.plugin_path);
    if json {
        let v = serde_json::json!({
            "path": config.plugin_path,
            "plugins": registry.plugins.iter().map(|p| {
                let mut v = serde_json::to_value(p).unwrap_or_default();
                v["status"] = serde_json::Value::String(p.status());
                v
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!("plugin path: {}", crate::plugins::describe_path(&config.plugin_path));
    if registry.plugins.is_empty() {
        println!("no runtime plugins found");
    }
    for p in &registry.plugins {
        let name = if p.name.is_empty() { "-" } else { &p.name };
        let runtimes = if p.runtimes.is_empty() { "-".to_string() } else { p.runtimes.join(",") };
        println!(
            "{name} {} (ABI {}) runtimes {runtimes} {}: {}",
            or_dash(&p.version),
            or_dash(&p.abi_version),
            p.file.display(),
            p.status()
        );
    }
    Ok(())
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}
