//! Spare workers: one child per runtime plugin, forked by the zygote ahead of
//! need, already in a fresh memory cgroup (moving a process into a cgroup is
//! the slow part of a start: 5-15 ms of RCU wait on cgroup v1) and connected.
//! A cold start takes the spare, sets its memory limit, sends it the function
//! to become, and asks the zygote for the next spare in the background.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ggcore_plugin_abi::LogLevel;

use super::ipc::{new_token, Connected};
use super::output::{forward_lines, new_pipes, LineSink};
use super::process::{Exit, WorkerProcess};
use super::slot::FunctionSlot;
use super::worker::CONNECT_TIMEOUT;
use super::zygote::ForkKind;
use super::FunctionManager;
use crate::plugins::PluginEntry;

/// A plugin's spare: being made, or ready.
pub enum SpareSlot {
    Making,
    Ready(Spare),
}

/// A connected spare, waiting for its function.
pub struct Spare {
    pub process: Arc<WorkerProcess>,
    pub conn: Connected,
    /// Its memory cgroup (empty under the memory watcher).
    pub cg_name: String,
    pub exit: Arc<Exit>,
    pub sink: Arc<LineSink>,
}

impl FunctionManager {
    /// Takes the spare for `slot`'s plugin, if one is ready; a new one is
    /// prepared in the background either way.
    pub(crate) fn take_spare(self: &Arc<Self>, slot: &FunctionSlot) -> Option<Spare> {
        if !self.zygotes_enabled {
            return None;
        }
        let taken = {
            let mut spares = self.spares.lock().unwrap_or_else(|p| p.into_inner());
            match spares.remove(&slot.plugin.file) {
                Some(SpareSlot::Ready(s)) => Some(s),
                Some(SpareSlot::Making) => {
                    spares.insert(slot.plugin.file.clone(), SpareSlot::Making);
                    None
                }
                None => None,
            }
        };
        self.refill_spare(&slot.plugin, &slot.def.runtime);
        match taken {
            Some(s) if s.exit.dead.is_cancelled() => {
                let mgr = self.clone();
                self.tracker.spawn(async move { mgr.discard(s.process, s.cg_name).await });
                None
            }
            taken => taken,
        }
    }

    /// Prepares a spare for `plugin` in the background, unless one is ready
    /// or being made. Plugins' spares are made independently of each other.
    pub(crate) fn refill_spare(self: &Arc<Self>, plugin: &PluginEntry, runtime: &str) {
        {
            let mut spares = self.spares.lock().unwrap_or_else(|p| p.into_inner());
            if spares.contains_key(&plugin.file) || self.draining.is_cancelled() {
                return;
            }
            spares.insert(plugin.file.clone(), SpareSlot::Making);
        }
        let mgr = self.clone();
        let plugin = plugin.clone();
        let runtime = runtime.to_string();
        self.tracker.spawn(async move {
            let made = mgr.make_spare(&plugin, &runtime).await;
            let unwanted = {
                let mut spares = mgr.spares.lock().unwrap_or_else(|p| p.into_inner());
                let wanted = matches!(spares.get(&plugin.file), Some(SpareSlot::Making)) && !mgr.draining.is_cancelled();
                match made {
                    Ok(spare) if wanted => {
                        spares.insert(plugin.file.clone(), SpareSlot::Ready(spare));
                        None
                    }
                    // Spares were dropped (the core is stopping) while this one was made.
                    Ok(spare) => Some(spare),
                    Err(e) => {
                        if wanted {
                            spares.remove(&plugin.file);
                        }
                        tracing::debug!(plugin = %plugin.file.display(), error = %e, "no spare worker");
                        None
                    }
                }
            };
            if let Some(spare) = unwanted {
                mgr.discard(spare.process, spare.cg_name).await;
            }
        });
    }

    async fn make_spare(self: &Arc<Self>, plugin: &PluginEntry, runtime: &str) -> Result<Spare, String> {
        let zygote = self.zygote_for(plugin, runtime).await.ok_or("no zygote")?;
        let cg_name = format!("spare-{}", self.spare_seq.fetch_add(1, Ordering::Relaxed));
        let cgroup_procs = self.memory.create(&cg_name, None).map(|p| p.display().to_string());
        let cg_name = if cgroup_procs.is_some() { cg_name } else { String::new() };
        let ((out_r, out_w), (err_r, err_w)) = new_pipes().map_err(|e| e.to_string())?;
        let sink = Arc::new(LineSink::default());
        forward_lines(&self.tracker, sink.clone(), out_r, LogLevel::Info);
        forward_lines(&self.tracker, sink.clone(), err_r, LogLevel::Error);
        let token = new_token();
        let connected = self.hub.expect(&token);
        let exit = Exit::new();
        let process = match zygote.fork(token.clone(), ForkKind::Spare { cgroup_procs }, out_w, err_w).await {
            Ok(p) => p,
            Err(e) => {
                self.hub.forget(&token);
                self.memory.remove(&cg_name);
                return Err(e);
            }
        };
        self.watch_pid(process.pid(), exit.clone());
        let conn = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, connected) => r.ok().and_then(|r| r.ok()),
            _ = exit.dead.cancelled() => None,
            _ = self.stopping.cancelled() => None,
        };
        let Some(conn) = conn else {
            self.hub.forget(&token);
            self.discard(process, cg_name).await;
            return Err("the spare did not connect".to_string());
        };
        Ok(Spare { process, conn, cg_name, exit, sink })
    }

    /// Ends every spare and waits until they have ended (shutdown); spares
    /// still being made are discarded when they are.
    pub(crate) async fn drop_spares(&self) {
        let spares: Vec<SpareSlot> = self.spares.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, s)| s).collect();
        for s in spares {
            if let SpareSlot::Ready(s) = s {
                self.discard(s.process, s.cg_name).await;
            }
        }
    }
}
