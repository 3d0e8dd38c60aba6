//! Starting the worker process of one instance: the plugin's spare when one
//! is ready, else a fork from the plugin's zygote, else a new process.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use ggcore_ipc::Role;

use ggcore_plugin_abi::LogLevel;

use super::ipc::new_token;
use super::output::{forward_lines, new_pipes, LineSink};
use super::process::{death_reason, Exit, WorkerProcess};
use super::slot::{FunctionSlot, InstanceStatus};
use super::zygote::ForkKind;
use super::FunctionManager;

/// A worker must connect within this long after it is started.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A worker process connected as the instance, not yet told to start unless
/// it was forked with its spec.
pub(crate) struct StartedWorker {
    pub(crate) process: Arc<WorkerProcess>,
    pub(crate) conn: super::ipc::Connected,
    pub(crate) cg_name: String,
    pub(crate) exit: Arc<Exit>,
    /// The worker waits for `Down::Start` (spawned directly, or a spare).
    pub(crate) direct: bool,
    pub(crate) spec: ggcore_ipc::Spec,
}

/// Starts the worker of one instance: the plugin's spare when one is ready,
/// else a fork from the zygote, else a new process.
pub(crate) async fn start_worker(
    mgr: &Arc<FunctionManager>,
    slot: &Arc<FunctionSlot>,
    id: u64,
    limit: u64,
) -> Result<StartedWorker, String> {
    if let Some(spare) = mgr.take_spare(slot) {
        let limited = spare.cg_name.is_empty() || mgr.memory.set_limit(&spare.cg_name, limit);
        if limited {
            spare.sink.assign(slot);
            let spec = mgr.spec_for(slot, None);
            return Ok(StartedWorker {
                process: spare.process,
                conn: spare.conn,
                cg_name: spare.cg_name,
                exit: spare.exit,
                direct: true,
                spec,
            });
        }
        mgr.discard(spare.process, spare.cg_name).await;
    }
    let arn = &slot.def.arn;
    // Unique in this core: two versions of a function (a redeploy) share
    // the name and count their instances from 1 each.
    let cg_name = format!("{}-{}", arn.name(), mgr.next_cgroup_id());
    let cgroup_procs = mgr.memory.create(&cg_name, Some(limit)).map(|p| p.display().to_string());
    let spec = mgr.spec_for(slot, cgroup_procs);
    let exit = Exit::new();
    let sink = LineSink::for_slot(slot);

    let mut forked = None;
    if let Some(z) = mgr.zygote_for(&slot.plugin, &slot.def.runtime).await {
        match new_pipes() {
            Ok(((out_r, out_w), (err_r, err_w))) => {
                forward_lines(&mgr.tracker, sink.clone(), out_r, LogLevel::Info);
                forward_lines(&mgr.tracker, sink.clone(), err_r, LogLevel::Error);
                let token = new_token();
                let connected = mgr.hub.expect(&token);
                match z.fork(token.clone(), ForkKind::Instance(Box::new(spec.clone())), out_w, err_w).await {
                    Ok(process) => {
                        mgr.watch_pid(process.pid(), exit.clone());
                        forked = Some((process, token, connected));
                    }
                    Err(e) => {
                        // A child forked all the same cannot connect with this token.
                        mgr.hub.forget(&token);
                        tracing::warn!(function = %arn, error = %e, "zygote fork failed; starting the instance directly");
                    }
                }
            }
            Err(e) => tracing::warn!(function = %arn, error = %e, "cannot make pipes for the instance"),
        }
    }
    let direct = forked.is_none();
    let (process, token, connected) = match forked {
        Some(f) => f,
        None => {
            let token = new_token();
            let connected = mgr.hub.expect(&token);
            let mut cmd = tokio::process::Command::new(&mgr.worker);
            cmd.arg("instance").arg(&mgr.socket).arg(&token).arg(&slot.plugin.file);
            // Only what a plugin's `prepare` may read to find its language
            // (a zygote sees the same): the host's PATH and JAVA_HOME (where
            // programs and the JDK are, by the usual conventions) and ggcore's
            // own GGCORE_* settings (GGCORE_NODE, GGCORE_LIBPYTHON, ...). The
            // function's environment comes with the spec.
            cmd.env_clear();
            cmd.envs(
                std::env::vars_os()
                    .filter(|(k, _)| k == "PATH" || k == "JAVA_HOME" || k.to_str().is_some_and(|k| k.starts_with("GGCORE_"))),
            );
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    mgr.hub.forget(&token);
                    mgr.memory.remove(&cg_name);
                    return Err(format!("cannot start the worker {}: {e}", mgr.worker.display()));
                }
            };
            if let Some(o) = child.stdout.take() {
                forward_lines(&mgr.tracker, sink.clone(), o, LogLevel::Info);
            }
            if let Some(e) = child.stderr.take() {
                forward_lines(&mgr.tracker, sink.clone(), e, LogLevel::Error);
            }
            (WorkerProcess::spawned(child, exit.clone(), &mgr.tracker), token, connected)
        }
    };
    let pid = process.pid();
    slot.set_instance(InstanceStatus { id, pid, state: "starting", started_unix: crate::deploy::now_unix(), invocations: 0 });

    let conn = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, connected) => r.ok().and_then(|r| r.ok()),
        _ = exit.dead.cancelled() => None,
        _ = slot.removed.cancelled() => None,
    };
    let Some(conn) = conn.filter(|c| c.role == Role::Instance) else {
        mgr.hub.forget(&token);
        let fallback = if slot.removed.is_cancelled() { "the function was stopped while starting" } else { "the worker did not connect" };
        process.kill();
        let reason = death_reason(&mgr.memory, &cg_name, &exit, fallback).await;
        mgr.discard(process, cg_name).await;
        return Err(reason);
    };
    Ok(StartedWorker { process, conn, cg_name, exit, direct, spec })
}
