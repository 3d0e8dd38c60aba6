//! Benchmarks of ggcore's cloud link and store-and-forward queue
//! (BENCHMARKS.md, "Cloud queue"), each against a real `ggcore run` and, where
//! there is one, a peer measured in the same run: Mosquitto bridging to the
//! same "cloud" (a Mosquitto with TLS, client certificates and persistence).
//!
//! ```text
//! queue-bench --ggcore BIN --mosquitto BIN --work DIR append --fsync batch --payload 100 --publishers 64
//! queue-bench ... drain --edge ggcore|bridge --backlog 100000
//! queue-bench ... routing --backlog 100000
//! queue-bench ... replay --backlog 100000 [--kill]
//! queue-bench ... outage --edge ggcore|bridge
//! ```
//! Every run prints one line for people (stderr) and one JSON object (stdout).

mod client;
mod setup;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use client::{Endpoint, Observed, PubOutcome, PubShared};
use ggcore_benches::brokers::{self, free_port};
use ggcore_benches::load::seqset::SeqSet;
use ggcore_benches::procfs;
use serde_json::json;
use setup::{CoreSetup, Env};

#[derive(Parser)]
#[command(about = "ggcore's cloud queue: append throughput, drain vs a Mosquitto bridge, replay, kill -9")]
struct Args {
    #[arg(long)]
    ggcore: PathBuf,
    #[arg(long, default_value = "/usr/sbin/mosquitto")]
    mosquitto: PathBuf,
    /// Work directory (PKI, roots of the runs).
    #[arg(long)]
    work: PathBuf,
    /// The Mosquitto bridge's `autosave_interval` in seconds (how often it
    /// writes its persistence file); default: Mosquitto's (1800 s).
    #[arg(long)]
    bridge_autosave: Option<u32>,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Device QoS 1 publishes (one in flight each) into the queue while the
    /// cloud is unreachable: acknowledged msg/s.
    Append {
        #[arg(long, default_value = "batch")]
        fsync: String,
        #[arg(long, default_value_t = 100)]
        payload: usize,
        #[arg(long, default_value_t = 64)]
        publishers: usize,
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
    },
    /// Fill a backlog while the cloud is down, start the cloud, time the drain.
    Drain {
        #[arg(long, default_value = "ggcore")]
        edge: String,
        #[arg(long, default_value_t = 100_000)]
        backlog: u64,
        #[arg(long, default_value_t = 100)]
        payload: usize,
        #[arg(long, default_value_t = 16)]
        publishers: usize,
    },
    /// Device → device routing through ggcore with and without a draining backlog.
    Routing {
        #[arg(long, default_value_t = 100_000)]
        backlog: u64,
        #[arg(long, default_value_t = 3.0)]
        duration: f64,
        /// QoS of the device → device pair.
        #[arg(long, default_value_t = 1)]
        qos: u8,
    },
    /// Restart ggcore with a backlog; time to ready and to all acknowledged upstream.
    Replay {
        #[arg(long, default_value_t = 100_000)]
        backlog: u64,
        /// Stop ggcore with SIGKILL instead of SIGTERM.
        #[arg(long)]
        kill: bool,
    },
    /// Devices publish during a cloud outage; the edge is killed with SIGKILL
    /// after `--before` s and restarted; devices go on for `--after` s; the
    /// cloud comes back: what the devices got PUBACKs for vs what arrived.
    Outage {
        #[arg(long, default_value = "ggcore")]
        edge: String,
        #[arg(long, default_value_t = 8)]
        publishers: usize,
        #[arg(long, default_value_t = 2.0)]
        before: f64,
        #[arg(long, default_value_t = 2.0)]
        after: f64,
    },
}

fn main() -> Result<()> {
    let a = Args::parse();
    let work = a.work.clone();
    std::fs::create_dir_all(&work)?;
    let pki = brokers::prepare_pki(&a.ggcore, &work, &setup::things(128))?;
    let env = Env { ggcore: a.ggcore.clone(), mosquitto: a.mosquitto.clone(), work, pki, bridge_autosave: a.bridge_autosave };
    let out = match a.what {
        What::Append { fsync, payload, publishers, warmup, duration } => append(&env, &fsync, payload, publishers, warmup, duration)?,
        What::Drain { edge, backlog, payload, publishers } => drain(&env, &edge, backlog, payload, publishers)?,
        What::Routing { backlog, duration, qos } => routing(&env, backlog, duration, qos)?,
        What::Replay { backlog, kill } => replay(&env, backlog, kill)?,
        What::Outage { edge, publishers, before, after } => outage(&env, &edge, publishers, before, after)?,
    };
    println!("{out}");
    Ok(())
}

fn rt() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Publishers `q-0..n` against `ep`, each from its `start` on. `limit`: per
/// publisher; `window`: (warm-up, measured) seconds, after which they stop;
/// `kill_at`: called once after that many seconds (publishers go on until
/// their connection fails). Returns the outcomes and the acknowledged msg/s
/// inside the window (0 without one) with the window's CPU seconds of `pid`.
struct PubRun {
    outcomes: Vec<PubOutcome>,
    rate: f64,
    cpu_s: Option<f64>,
    /// This process's CPU seconds inside the window (the clients').
    client_cpu_s: f64,
    seconds: f64,
}

fn publishers(
    ep: &Endpoint,
    n: usize,
    payload: usize,
    start: &[u64],
    limit: u64,
    window: Option<(f64, f64, Option<u32>)>,
    mut at: Option<(f64, Box<dyn FnOnce() + '_>)>,
) -> Result<PubRun> {
    let shared = Arc::new(PubShared::default());
    rt()?.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let (ep, shared, s) = (ep.clone(), shared.clone(), start.get(i).copied().unwrap_or(0));
            set.spawn(async move { client::publish_one_at_a_time(&ep, i as u32, payload, s, limit, &shared).await });
        }
        let (mut rate, mut cpu_s, mut seconds, mut client_cpu_s) = (0.0, None, 0.0, 0.0);
        if let Some((warmup, dur, pid)) = window {
            tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
            let (a0, t0, c0) = (shared.acked.load(Ordering::Relaxed), Instant::now(), pid.and_then(|p| procfs::cpu_seconds(p).ok()));
            let s0 = procfs::self_cpu_seconds();
            tokio::time::sleep(Duration::from_secs_f64(dur)).await;
            let (a1, t1, c1) = (shared.acked.load(Ordering::Relaxed), Instant::now(), pid.and_then(|p| procfs::cpu_seconds(p).ok()));
            client_cpu_s = procfs::self_cpu_seconds() - s0;
            shared.stop.store(true, Ordering::Relaxed);
            seconds = (t1 - t0).as_secs_f64();
            rate = (a1 - a0) as f64 / seconds;
            cpu_s = c0.zip(c1).map(|(a, b)| b - a);
        }
        if let Some((after, f)) = at.take() {
            tokio::time::sleep(Duration::from_secs_f64(after)).await;
            f();
        }
        let mut outcomes = Vec::new();
        while let Some(o) = set.join_next().await {
            outcomes.push(o?);
        }
        outcomes.sort_by_key(|o| o.index);
        Ok(PubRun { outcomes, rate, cpu_s, client_cpu_s, seconds })
    })
}

/// Adds `start..outcome.acked_upto` of every publisher to `acked`.
fn record(acked: &mut HashMap<u32, SeqSet>, start: &[u64], outcomes: &[PubOutcome]) -> u64 {
    let mut n = 0;
    for o in outcomes {
        let set = acked.entry(o.index).or_default();
        for s in start.get(o.index as usize).copied().unwrap_or(0)..o.acked_upto {
            set.insert(s);
            n += 1;
        }
    }
    n
}

fn errors(outcomes: &[PubOutcome]) -> Vec<String> {
    let mut e: Vec<String> = outcomes.iter().filter_map(|o| o.error.clone()).collect();
    e.sort();
    e.dedup();
    e
}

fn core_endpoint(env: &Env, r: &brokers::Running) -> Result<Endpoint> {
    Endpoint::new(r.addr, &env.pki.group_ca, &env.pki.devices)
}

fn append(env: &Env, fsync: &str, payload: usize, n: usize, warmup: f64, duration: f64) -> Result<serde_json::Value> {
    let cloud_port = free_port()?; // nothing listens there
    let s = CoreSetup { fsync: fsync.into(), storage: "FileSystem".into(), max_bytes: 2 << 30, cloud_port };
    let root = env.core_root("append", &s)?;
    let core = env.start_core(&root)?;
    env.deploy(&root, n, false)?;
    let ep = core_endpoint(env, &core)?;
    let before = env.status(&root)?;
    let run = publishers(&ep, n, payload, &vec![0; n], u64::MAX, Some((warmup, duration, Some(core.pid()))), None)?;
    let acked: u64 = run.outcomes.iter().map(|o| o.acked_upto).sum();
    let st = env.queue_settled(&root)?;
    let q = &st["queue"];
    let messages = q["messages"].as_u64().unwrap_or(0);
    let commits = q["commits"].as_u64().unwrap_or(0) - before["queue"]["commits"].as_u64().unwrap_or(0);
    let rss_kb = procfs::status_kb(core.pid(), "VmRSS").ok();
    core.stop()?;
    let _ = std::fs::remove_dir_all(&root);
    let lost = acked.saturating_sub(messages);
    eprintln!(
        "append fsync={fsync} payload={payload} publishers={n}: {:.0} msg/s acknowledged; core CPU {:.2} cores, clients {:.2}; acked {acked}, queue.messages {messages} (lost {lost}); {commits} commits ({:.1} msg/commit); errors {:?}",
        run.rate,
        run.cpu_s.unwrap_or(0.0) / run.seconds,
        run.client_cpu_s / run.seconds,
        acked as f64 / commits.max(1) as f64,
        errors(&run.outcomes)
    );
    Ok(json!({"what": "append", "fsync": fsync, "payload": payload, "publishers": n, "rate": run.rate,
        "core_cores": run.cpu_s.map(|c| c / run.seconds), "client_cores": run.client_cpu_s / run.seconds, "acked": acked, "queue_messages": messages, "lost": lost,
        "commits": commits, "rss_kb": rss_kb, "errors": errors(&run.outcomes), "queue": q}))
}

/// The observer on its own thread: subscribed to `up/#` at the cloud.
struct Watcher {
    seen: Arc<Mutex<Observed>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Watcher {
    fn start(ep: Endpoint, clean: bool) -> Watcher {
        let seen = Arc::new(Mutex::new(Observed::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            rt()?.block_on(client::observe(ep, setup::OBSERVER.into(), setup::UP_FILTER.into(), clean, s2, st2))
        });
        Watcher { seen, stop, thread: Some(thread) }
    }

    fn distinct(&self) -> u64 {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).distinct
    }

    /// Waits until `want` distinct messages arrived, or nothing arrived for `quiet`.
    fn wait_for(&self, want: u64, quiet: Duration) {
        let (mut last, mut since) = (0, Instant::now());
        loop {
            let d = self.distinct();
            if d >= want {
                return;
            }
            if d != last {
                (last, since) = (d, Instant::now());
            } else if since.elapsed() > quiet {
                return;
            }
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn finish(mut self) -> Result<Observed> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(r) => r?,
                Err(_) => bail!("observer thread panicked"),
            }
        }
        let mut g = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        Ok(std::mem::take(&mut *g))
    }
}

/// Starts the cloud once so that the observer's persistent session (QoS 1
/// subscription to `up/#`) exists before anything is published, then stops it
/// (SIGTERM: Mosquitto saves its persistence file).
fn prepare_cloud(env: &Env, dir: &Path, port: u16) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let cloud = env.start_cloud(dir, port)?;
    let w = Watcher::start(Endpoint::new(cloud.addr, &env.pki.group_ca, &env.pki.devices)?, false);
    std::thread::sleep(Duration::from_millis(300));
    w.finish()?;
    drop(cloud);
    Ok(())
}

enum Edge {
    Core(brokers::Running, PathBuf),
    Bridge(setup::Mosq, PathBuf),
}

impl Edge {
    fn start(env: &Env, kind: &str, name: &str, cloud_port: u16, publishers: usize) -> Result<Edge> {
        match kind {
            "ggcore" => {
                let s = CoreSetup { fsync: "batch".into(), storage: "FileSystem".into(), max_bytes: 2 << 30, cloud_port };
                let root = env.core_root(name, &s)?;
                let core = env.start_core(&root)?;
                env.deploy(&root, publishers, true)?;
                Ok(Edge::Core(core, root))
            }
            "bridge" => {
                let dir = env.work.join("runs").join(name);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)?;
                }
                Ok(Edge::Bridge(env.start_bridge(&dir, free_port()?, cloud_port)?, dir))
            }
            _ => bail!("edge '{kind}': ggcore or bridge"),
        }
    }

    /// Starts the same edge again (same state) after it stopped.
    fn restart(env: &Env, old: Edge, cloud_port: u16) -> Result<Edge> {
        match old {
            Edge::Core(r, root) => {
                drop(r);
                Ok(Edge::Core(env.start_core(&root)?, root))
            }
            Edge::Bridge(m, dir) => {
                let port = m.addr.port();
                drop(m);
                Ok(Edge::Bridge(env.start_bridge(&dir, port, cloud_port)?, dir))
            }
        }
    }

    fn endpoint(&self, env: &Env) -> Result<Endpoint> {
        let addr = match self {
            Edge::Core(r, _) => r.addr,
            Edge::Bridge(m, _) => m.addr,
        };
        Endpoint::new(addr, &env.pki.group_ca, &env.pki.devices)
    }

    fn pid(&self) -> u32 {
        match self {
            Edge::Core(r, _) => r.pid(),
            Edge::Bridge(m, _) => m.pid(),
        }
    }

    fn kill9(self) -> Result<Edge> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGKILL) };
        Ok(self)
    }
}

fn drain(env: &Env, edge: &str, backlog: u64, payload: usize, n: usize) -> Result<serde_json::Value> {
    let cloud_port = free_port()?;
    let cloud_dir = env.work.join("runs/cloud");
    prepare_cloud(env, &cloud_dir, cloud_port)?;
    let e = Edge::start(env, edge, &format!("drain-{edge}"), cloud_port, n)?;
    let ep = e.endpoint(env)?;
    let per = backlog.div_ceil(n as u64);
    let fill = publishers(&ep, n, payload, &vec![0; n], per, None, None)?;
    let mut acked = HashMap::new();
    let total = record(&mut acked, &[], &fill.outcomes);
    let queued = match &e {
        Edge::Core(_, root) => env.queue_settled(root)?["queue"]["messages"].as_u64(),
        Edge::Bridge(..) => None,
    };
    let cloud = env.start_cloud(&cloud_dir, cloud_port)?;
    let up = cloud.started;
    let w = Watcher::start(Endpoint::new(cloud.addr, &env.pki.group_ca, &env.pki.devices)?, false);
    let c0 = procfs::cpu_seconds(e.pid()).ok();
    w.wait_for(total, Duration::from_secs(20));
    let c1 = procfs::cpu_seconds(e.pid()).ok();
    let seen = w.finish()?;
    let missing = seen.missing(&acked);
    let (first, last) = (seen.first.map(|t| (t - up).as_secs_f64()), seen.last.map(|t| (t - up).as_secs_f64()));
    let rate = match (first, last) {
        (Some(f), Some(l)) if l > f => seen.distinct as f64 / (l - f),
        _ => 0.0,
    };
    eprintln!(
        "drain edge={edge} backlog={total} payload={payload}: {rate:.0} msg/s (first arrival {:.2} s, last {:.2} s after the cloud started); \
         edge CPU {:.2} s; queued {queued:?}; arrived {} distinct, {} duplicates, missing {missing}; fill errors {:?}",
        first.unwrap_or(0.0),
        last.unwrap_or(0.0),
        c0.zip(c1).map(|(a, b)| b - a).unwrap_or(0.0),
        seen.distinct,
        seen.duplicates,
        errors(&fill.outcomes)
    );
    drop(e);
    drop(cloud);
    Ok(json!({"what": "drain", "edge": edge, "backlog": total, "payload": payload, "rate": rate, "first_s": first, "last_s": last,
        "edge_cpu_s": c0.zip(c1).map(|(a, b)| b - a), "queued": queued, "arrived": seen.distinct, "duplicates": seen.duplicates, "missing": missing}))
}

fn routing(env: &Env, backlog: u64, duration: f64, qos: u8) -> Result<serde_json::Value> {
    use ggcore_benches::load::{self, Options, Pace, Scenario, Target, Topology, Writes};
    let n = 16;
    let cloud_port = free_port()?;
    let cloud_dir = env.work.join("runs/cloud");
    prepare_cloud(env, &cloud_dir, cloud_port)?;
    let e = Edge::start(env, "ggcore", "routing", cloud_port, n)?;
    let Edge::Core(core, root) = &e else { bail!("not ggcore") };
    let target = Target {
        addr: core.addr,
        server_name: "localhost".into(),
        ca: env.pki.group_ca.clone(),
        certs_dir: env.pki.devices.clone(),
        broker_pid: Some(core.pid()),
    };
    let scenario = Scenario { topology: Topology::Pairs(1), payload: 128, qos, pace: Pace::Window, writes: Writes::PerPacket };
    let opts = Options { warmup: Duration::from_secs(1), duration: Duration::from_secs_f64(duration), ..Options::default() };
    let label = scenario.label();
    // Baseline: the cloud up, the queue empty.
    let cloud = env.start_cloud(&cloud_dir, cloud_port)?;
    let w = Watcher::start(Endpoint::new(cloud.addr, &env.pki.group_ca, &env.pki.devices)?, false);
    std::thread::sleep(Duration::from_secs(2)); // the link connects
    let base1 = load::run_blocking(&target, &scenario, &opts)?;
    drop(w.finish()?);
    drop(cloud);
    // The backlog, filled while the cloud is down.
    let ep = e.endpoint(env)?;
    let fill = publishers(&ep, n, 100, &vec![0; n], backlog.div_ceil(n as u64), None, None)?;
    let mut acked = HashMap::new();
    let total = record(&mut acked, &[], &fill.outcomes);
    let queued = env.queue_settled(root)?["queue"]["messages"].as_u64().unwrap_or(0);
    // The cloud comes back; the routing run starts at once.
    let cloud = env.start_cloud(&cloud_dir, cloud_port)?;
    let up = cloud.started;
    let w = Watcher::start(Endpoint::new(cloud.addr, &env.pki.group_ca, &env.pki.devices)?, false);
    let during = load::run_blocking(&target, &scenario, &opts)?;
    let ended = up.elapsed().as_secs_f64();
    let window = (ended - during.drain_seconds - during.seconds, ended - during.drain_seconds);
    w.wait_for(total, Duration::from_secs(20));
    let seen = w.finish()?;
    // Baseline again, after the drain.
    let w = Watcher::start(Endpoint::new(cloud.addr, &env.pki.group_ca, &env.pki.devices)?, false);
    let base2 = load::run_blocking(&target, &scenario, &opts)?;
    drop(w.finish()?);
    let (first, last) = (seen.first.map(|t| (t - up).as_secs_f64()), seen.last.map(|t| (t - up).as_secs_f64()));
    let overlap = match (first, last) {
        (Some(f), Some(l)) => ((l.min(window.1) - f.max(window.0)).max(0.0)) / (window.1 - window.0),
        _ => 0.0,
    };
    let base = (base1.deliveries_per_sec + base2.deliveries_per_sec) / 2.0;
    let missing = seen.missing(&acked);
    eprintln!(
        "routing {label}: {:.0} msg/s without a backlog (before {:.0}, after {:.0}), {:.0} msg/s while {queued} queued drain \
         ({:.0}% slower); drain from {:.2} to {:.2} s, window {:.2}-{:.2} s ({:.0}% of it draining); local lost {}/{}/{}; cloud missing {missing} of {total}",
        base,
        base1.deliveries_per_sec,
        base2.deliveries_per_sec,
        during.deliveries_per_sec,
        (1.0 - during.deliveries_per_sec / base) * 100.0,
        first.unwrap_or(0.0),
        last.unwrap_or(0.0),
        window.0,
        window.1,
        overlap * 100.0,
        base1.lost,
        during.lost,
        base2.lost,
    );
    drop(cloud);
    drop(e);
    Ok(json!({"what": "routing", "scenario": label, "base_before": base1.deliveries_per_sec, "base_after": base2.deliveries_per_sec,
        "during": during.deliveries_per_sec, "slowdown": 1.0 - during.deliveries_per_sec / base, "backlog": queued, "overlap": overlap,
        "lost": [base1.lost, during.lost, base2.lost], "cloud_missing": missing, "drain_first_s": first, "drain_last_s": last}))
}

fn replay(env: &Env, backlog: u64, kill: bool) -> Result<serde_json::Value> {
    let n = 16;
    let cloud_port = free_port()?;
    let cloud_dir = env.work.join("runs/cloud");
    prepare_cloud(env, &cloud_dir, cloud_port)?;
    let e = Edge::start(env, "ggcore", "replay", cloud_port, n)?;
    let ep = e.endpoint(env)?;
    let fill = publishers(&ep, n, 100, &vec![0; n], backlog.div_ceil(n as u64), None, None)?;
    let mut acked = HashMap::new();
    let total = record(&mut acked, &[], &fill.outcomes);
    let Edge::Core(core, root) = e else { bail!("not ggcore") };
    let t = Instant::now();
    if kill {
        setup::kill9_core(core)?;
    } else {
        core.stop()?;
    }
    let stop_s = t.elapsed().as_secs_f64();
    let cloud = env.start_cloud(&cloud_dir, cloud_port)?;
    let w = Watcher::start(Endpoint::new(cloud.addr, &env.pki.group_ca, &env.pki.devices)?, false);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let core = env.start_core(&root)?;
    let ready = core.ready_after.as_secs_f64();
    w.wait_for(total, Duration::from_secs(20));
    let seen = w.finish()?;
    let all = seen.last.map(|l| (l - t0).as_secs_f64());
    let replayed = env.status(&root)?["queue"]["replayed"].as_u64();
    let missing = seen.missing(&acked);
    eprintln!(
        "replay ({}) of {total}: stop {stop_s:.2} s; start → ready {ready:.3} s; start → all acknowledged upstream {:.2} s; replayed {replayed:?}; \
         arrived {} distinct, {} duplicates, missing {missing}",
        if kill { "SIGKILL" } else { "SIGTERM" },
        all.unwrap_or(0.0),
        seen.distinct,
        seen.duplicates
    );
    drop(core);
    drop(cloud);
    Ok(json!({"what": "replay", "kill": kill, "backlog": total, "stop_s": stop_s, "ready_s": ready, "all_s": all, "replayed": replayed,
        "arrived": seen.distinct, "duplicates": seen.duplicates, "missing": missing}))
}

fn outage(env: &Env, edge: &str, n: usize, before: f64, after: f64) -> Result<serde_json::Value> {
    let cloud_port = free_port()?;
    let cloud_dir = env.work.join("runs/cloud");
    prepare_cloud(env, &cloud_dir, cloud_port)?;
    let e = Edge::start(env, edge, &format!("outage-{edge}"), cloud_port, n)?;
    let ep = e.endpoint(env)?;
    let pid = e.pid();
    // Phase 1: publish until the edge is killed.
    let kill: Box<dyn FnOnce()> = Box::new(move || {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    });
    let p1 = publishers(&ep, n, 100, &vec![0; n], u64::MAX, None, Some((before, kill)))?;
    let mut acked = HashMap::new();
    let a1 = record(&mut acked, &[], &p1.outcomes);
    let e = Edge::restart(env, e.kill9()?, cloud_port)?;
    // Phase 2: the devices reconnect and go on.
    let ep = e.endpoint(env)?;
    let start: Vec<u64> = p1.outcomes.iter().map(|o| o.acked_upto + 1).collect();
    let p2 = publishers(&ep, n, 100, &start, u64::MAX, Some((0.0, after, None)), None)?;
    let a2 = record(&mut acked, &start, &p2.outcomes);
    let total = a1 + a2;
    let cloud = env.start_cloud(&cloud_dir, cloud_port)?;
    let w = Watcher::start(Endpoint::new(cloud.addr, &env.pki.group_ca, &env.pki.devices)?, false);
    w.wait_for(total, Duration::from_secs(15));
    let seen = w.finish()?;
    let missing = seen.missing(&acked);
    eprintln!(
        "outage + kill -9 edge={edge}: acknowledged {a1} before the kill and {a2} after; arrived {} distinct ({} duplicates); lost {missing} of {total}",
        seen.distinct, seen.duplicates
    );
    drop(e);
    drop(cloud);
    Ok(json!({"what": "outage", "edge": edge, "acked_before_kill": a1, "acked_after": a2, "arrived": seen.distinct,
        "duplicates": seen.duplicates, "lost": missing}))
}
