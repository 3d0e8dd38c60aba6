//! Starting the worker process of one instance: the plugin's spare when one
//! is ready, else a fork from the plugin's zygote, else a new process.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use ggcore_ipc::Role;

use super::ipc::new_token;
use super::output::{forward_lines, new_pipes, LineSink};
use super::process::{death_reason, kill, Exit};
use super::slot::{FunctionSlot, InstanceStatus};
use super::zygote::ForkKind;
use super::FunctionManager;

/// A worker must connect within this long after it is started.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A worker process connected as the instance, not yet told to start unless
/// it was forked with its spec.
pub(crate) struct StartedWorker {
    pub(crate) pid: u32,
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
            return Ok(StartedWorker { pid: spare.pid, conn: spare.conn, cg_name: spare.cg_name, exit: spare.exit, direct: true, spec });
        }
        kill(spare.pid);
        mgr.memory.remove(&spare.cg_name);
    }
    let arn = &slot.def.arn;
    let cg_name = format!("{}-{}", arn.name(), id);
    let cgroup_procs = mgr.memory.create(&cg_name, Some(limit)).map(|p| p.display().to_string());
    let spec = mgr.spec_for(slot, cgroup_procs);
    let token = new_token();
    let connected = mgr.hub.expect(&token);
    let exit = Exit::new();
    let sink = LineSink::for_slot(slot);
    let fail = |reason: String| {
        mgr.hub.forget(&token);
        mgr.memory.remove(&cg_name);
        reason
    };

    let mut direct = false;
    let mut pid = 0u32;
    if let Some(z) = mgr.zygote_for(&slot.plugin, &slot.def.runtime).await {
        match new_pipes() {
            Ok(((out_r, out_w), (err_r, err_w))) => {
                forward_lines(sink.clone(), out_r, "INFO");
                forward_lines(sink.clone(), err_r, "ERROR");
                match z.fork(token.clone(), ForkKind::Instance(Box::new(spec.clone())), out_w, err_w).await {
                    Ok(p) => {
                        pid = p;
                        mgr.watch_pid(p, exit.clone());
                    }
                    Err(e) => tracing::warn!(function = %arn, error = %e, "zygote fork failed; starting the instance directly"),
                }
            }
            Err(e) => tracing::warn!(function = %arn, error = %e, "cannot make pipes for the instance"),
        }
    }
    if pid == 0 {
        direct = true;
        let mut cmd = tokio::process::Command::new(&mgr.worker);
        cmd.arg("instance").arg(&mgr.socket).arg(&token).arg(&slot.plugin.file);
        cmd.env_clear().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| fail(format!("cannot start the worker {}: {e}", mgr.worker.display())))?;
        pid = child.id().unwrap_or(0);
        if let Some(o) = child.stdout.take() {
            forward_lines(sink.clone(), o, "INFO");
        }
        if let Some(e) = child.stderr.take() {
            forward_lines(sink.clone(), e, "ERROR");
        }
        let exit2 = exit.clone();
        tokio::spawn(async move {
            use std::os::unix::process::ExitStatusExt;
            let status = match child.wait().await {
                Ok(s) => s.code().unwrap_or_else(|| -s.signal().unwrap_or(9)),
                Err(_) => -9,
            };
            exit2.record(status);
        });
    }
    slot.set_instance(InstanceStatus { id, pid, state: "starting", started_unix: crate::deploy::now_unix(), invocations: 0 });

    let conn = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, connected) => r.ok().and_then(|r| r.ok()),
        _ = exit.dead.cancelled() => None,
    };
    let Some(conn) = conn.filter(|c| c.role == Role::Instance) else {
        kill(pid);
        let reason = death_reason(&mgr.memory, &cg_name, &exit, "the worker did not connect").await;
        return Err(fail(reason));
    };
    Ok(StartedWorker { pid, conn, cg_name, exit, direct, spec })
}
