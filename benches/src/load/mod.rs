//! The load harness: device → device messages through one broker over TLS.
//!
//! Every client runs on ONE current-thread tokio runtime, so the harness never
//! takes more than one core (the machine has two, shared with the broker); its
//! CPU time is measured and reported next to the broker's.
//!
//! How clients write ([`Writes`]): by default each packet is its own write, as
//! it is produced — one PUBLISH (or one PUBACK) is one TLS record and one system
//! call, which is what paho and the AWS device SDKs do. `Batched` keeps the
//! harness's older, cheaper way, which no device does: a publisher encodes up
//! to 64 KiB of PUBLISH packets into one buffer and hands them to rustls in one
//! write, and a subscriber answers everything one read returned with one write
//! of PUBACKs. Either way subscribers parse everything one read returns and take
//! the clock once per read.
//!
//! How fast publishers go ([`Pace`]): `Window` (the default) keeps at most
//! `window` of a publisher's messages in flight end to end (sent but not yet
//! seen by every subscriber it feeds; shared with the other publishers of the
//! same subscriber) and, at QoS 1, at most `window` unacknowledged by the
//! broker, so a broker is measured at the highest rate it sustains without
//! queueing without bound. `Rate` offers a fixed total rate (same window on
//! top): the latency figures. `FlatOut` has no end-to-end window: publishers
//! write as fast as the broker reads (at QoS 1 at most `inflight`
//! unacknowledged, as a device SDK's in-flight limit), so a subscriber slower
//! than its publisher fills the broker's queues and what the broker does then
//! (slow the publisher, or drop) shows in the loss figures.
//!
//! Loss is computed message by message: every publisher's accepted messages
//! (QoS 0: every message it wrote; QoS 1: every message the broker
//! acknowledged with a PUBACK), times the subscribers it feeds, minus the ones
//! each subscriber received (duplicates counted apart), after waiting for
//! the queues to drain.
//!
//! Each payload starts with `publisher index (u32 LE) | sequence (u64 LE) |
//! send time (u64 LE, ns on this process's monotonic clock)`; latency is receive
//! time minus send time, for messages received inside the measurement window.

mod clients;
mod scenario;
pub mod seqset;

pub use scenario::{all_things, pub_name, sub_name, topic, Pace, Scenario, Topology, Writes};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use rumqttc::mqttbytes::QoS;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, Semaphore};
use tokio_rustls::client::TlsStream;

use clients::{connect, disconnect, publisher, publisher_reader, subscribe, subscriber, AckStats, PubParams, PubStats, SubStats};
use seqset::SeqSet;

/// Bytes at the start of each payload: publisher index, sequence, send time.
pub const HEADER: usize = 20;
const MAX_PACKET: usize = 1 << 20;
const KEEP_ALIVE_S: u16 = 600;

fn clock() -> &'static Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now)
}

/// Nanoseconds on this process's monotonic clock.
pub fn now_ns() -> u64 {
    clock().elapsed().as_nanos() as u64
}

/// Where the broker is and how devices reach it.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// Name checked against the server certificate.
    pub server_name: String,
    /// CA that signed the server certificate.
    pub ca: PathBuf,
    /// Holds `THING.cert.pem` and `THING.private.key` for every device.
    pub certs_dir: PathBuf,
    /// Broker process, for its CPU time.
    pub broker_pid: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub warmup: Duration,
    pub duration: Duration,
    /// Most messages in flight towards one subscriber (`Window` and `Rate`).
    pub window: usize,
    /// Most payload bytes in flight towards one subscriber (caps `window` for
    /// large payloads).
    pub window_bytes: usize,
    /// `FlatOut` at QoS 1: most messages a publisher keeps unacknowledged
    /// (rumqttc's default in-flight limit is 100).
    pub inflight: usize,
    /// TLS handshakes in progress at once while connecting.
    pub connect_parallelism: usize,
    /// Abort when no message arrives for this long while publishing.
    pub stall_timeout: Duration,
    /// After publishing stopped, wait for deliveries (and PUBACKs) until none
    /// arrived for this long (at most `drain_max`); what has not arrived then
    /// is lost.
    pub drain_quiet: Duration,
    pub drain_max: Duration,
    /// `Batched`: most PUBLISH packets per write (0: as many as fit in 64 KiB).
    pub batch: usize,
    /// Count the broker's system calls and context switches around the window
    /// with `perf stat` (tracepoint `raw_syscalls:sys_enter`). Counting taxes
    /// the broker (a syscall-heavy one most), so a run with it is a counting
    /// run: its throughput and CPU figures are not comparable and are never
    /// reported as such ([`LoadResult::perf_attached`]).
    pub perf_stat: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(5),
            window: 500,
            window_bytes: 4 << 20,
            inflight: 100,
            connect_parallelism: 8,
            stall_timeout: Duration::from_secs(10),
            drain_quiet: Duration::from_secs(2),
            drain_max: Duration::from_secs(120),
            batch: 0,
            perf_stat: false,
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    /// Deliveries (one message arriving at one subscriber) inside the window.
    pub delivered: u64,
    /// Length of the measurement window, s.
    pub seconds: f64,
    /// Deliveries per second inside the window (for fan-out, N per message).
    pub deliveries_per_sec: f64,
    /// Messages published per second inside the window.
    pub published_per_sec: f64,
    /// Latency of the deliveries inside the window. For `Rate` runs this is
    /// the latency at that offered rate; for `Window` and `FlatOut` runs it is
    /// latency *through the window* (mostly the time a message waits behind
    /// the others in flight: it restates the throughput, and is not a latency
    /// figure).
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// Messages published over the whole run (warm-up included).
    pub sent: u64,
    /// Of those, accepted by the broker: QoS 0 every message written, QoS 1
    /// every message PUBACKed.
    pub accepted: u64,
    /// QoS 1: messages sent but never PUBACKed (not accepted, not counted lost).
    pub unacknowledged: u64,
    /// Deliveries owed: accepted × subscribers of its publisher.
    pub expected: u64,
    /// Distinct deliveries received over the whole run (of accepted messages
    /// or not).
    pub received: u64,
    /// Deliveries owed and never received, after draining.
    pub lost: u64,
    /// Deliveries received more than once (QoS 1 redelivery).
    pub duplicates: u64,
    /// Deliveries that arrived after a later message of the same publisher.
    pub out_of_order: u64,
    /// PUBACKs for no message in flight (or a second one for the same).
    pub stray_pubacks: u64,
    /// Clients whose connection the broker closed during the run, and how
    /// (what they would have received counts as lost).
    #[serde(default)]
    pub cut_off: Vec<String>,
    /// Seconds spent waiting for the last deliveries after publishing stopped.
    pub drain_seconds: f64,
    /// Broker CPU (user + system) inside the window, s.
    pub broker_cpu_s: Option<f64>,
    pub broker_cpu_s_per_million: Option<f64>,
    /// Harness CPU inside the window, s.
    pub client_cpu_s: f64,
    pub client_cpu_s_per_million: f64,
    /// Cores the broker and the harness used on average inside the window.
    pub broker_cores: Option<f64>,
    pub client_cores: f64,
    /// Cores used by everything else on the machine inside the window (another
    /// build, say): busy time of all CPUs minus broker minus harness. A noisy
    /// run shows here.
    pub background_cores: f64,
    /// `perf stat` was attached to the broker in this run: a counting run,
    /// whose throughput, latency and CPU are not reported.
    #[serde(default)]
    pub perf_attached: bool,
    /// With [`Options::perf_stat`]: broker system calls and context switches
    /// per delivery.
    #[serde(default)]
    pub broker_syscalls_per_msg: Option<f64>,
    #[serde(default)]
    pub broker_ctx_switches_per_msg: Option<f64>,
    /// Negotiated protocol and cipher suite.
    pub tls: String,
}

type Rd = tokio::io::ReadHalf<TlsStream<TcpStream>>;
type Wr = tokio::io::WriteHalf<TlsStream<TcpStream>>;

/// What the clients share (all on one thread; atomics only for `Send`).
struct Shared {
    /// `last[j][i]`: 1 + the highest sequence number from publisher i that
    /// subscriber j has received (0: none yet).
    last: Vec<Vec<AtomicU64>>,
    /// PUBACKs each publisher received.
    acked: Vec<AtomicU64>,
    /// Messages each publisher handed to TLS.
    sent: Vec<AtomicU64>,
    /// Wakes publisher i when its window may have opened.
    wake: Vec<Notify>,
    stop: AtomicBool,
    /// Measurement window, ns on [`now_ns`]'s clock.
    window_start: AtomicU64,
    window_end: AtomicU64,
    /// Deliveries received so far (all subscribers, duplicates included).
    received: AtomicU64,
    /// Publishers and subscribers whose connection the broker closed.
    pubs_cut: AtomicU64,
    subs_cut: AtomicU64,
}

/// Runs `scenario` against `target` on a fresh current-thread runtime.
pub fn run_blocking(target: &Target, scenario: &Scenario, opts: &Options) -> Result<LoadResult> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(target, scenario, opts))
}

/// Accepted messages (by sequence number) of each publisher.
fn accepted_sets(qos: QoS, sent: &[u64], acks: &[AckStats]) -> Vec<SeqSet> {
    sent.iter().zip(acks).map(|(&n, a)| if qos == QoS::AtMostOnce { SeqSet::first(n) } else { a.acked.clone() }).collect()
}

/// Runs one scenario. Must be called on a current-thread runtime for the
/// client CPU figure to mean "one core at most".
pub async fn run(target: &Target, scenario: &Scenario, opts: &Options) -> Result<LoadResult> {
    if scenario.payload < HEADER {
        bail!("payload must be at least {HEADER} bytes");
    }
    let qos = match scenario.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        q => bail!("QoS {q} is not measured (0 or 1)"),
    };
    let topo = scenario.topology;
    let (np, ns) = (topo.publishers(), topo.subscribers());
    let routes = topo.routes();
    let mut subs_of: Vec<Vec<usize>> = vec![Vec::new(); np];
    let mut fan_in = vec![0usize; ns];
    for &(i, j) in &routes {
        subs_of[i].push(j);
        fan_in[j] += 1;
    }
    // Window per publisher: the per-subscriber budget shared by the publishers
    // that feed that subscriber. Fewer than 65,535 unacknowledged, so that a
    // PUBACK's packet identifier names one message.
    let per_sub = opts.window.min(opts.window_bytes / scenario.payload).max(1);
    let max_fan_in = fan_in.iter().copied().max().unwrap_or(1).max(1);
    let window = ((per_sub / max_fan_in).max(1) as u64).min(60_000);
    let (end_to_end, unacked) = match scenario.pace {
        Pace::Window | Pace::Rate(_) => (Some(window), window),
        Pace::FlatOut => (None, (opts.inflight.max(1) as u64).min(60_000)),
    };

    let shared = Arc::new(Shared {
        last: (0..ns).map(|_| (0..np).map(|_| AtomicU64::new(0)).collect()).collect(),
        acked: (0..np).map(|_| AtomicU64::new(0)).collect(),
        sent: (0..np).map(|_| AtomicU64::new(0)).collect(),
        wake: (0..np).map(|_| Notify::new()).collect(),
        stop: AtomicBool::new(false),
        window_start: AtomicU64::new(u64::MAX),
        window_end: AtomicU64::new(u64::MAX),
        received: AtomicU64::new(0),
        pubs_cut: AtomicU64::new(0),
        subs_cut: AtomicU64::new(0),
    });

    // Connect: subscribers first (CONNECT, SUBSCRIBE, SUBACK), then publishers.
    let roots = crate::tls::roots(&target.ca)?;
    let gate = Arc::new(Semaphore::new(opts.connect_parallelism.max(1)));
    let mut sub_conns = tokio::task::JoinSet::new();
    for j in 0..ns {
        let (target, roots, gate) = (target.clone(), roots.clone(), gate.clone());
        let filters = topo.filters(j);
        sub_conns.spawn(async move {
            let _permit = gate.acquire().await?;
            let mut s = connect(&target, roots, &sub_name(j)).await?;
            subscribe(&mut s, &filters, qos).await.with_context(|| format!("{}: subscribing", sub_name(j)))?;
            anyhow::Ok((j, s))
        });
    }
    let mut subs: Vec<Option<TlsStream<TcpStream>>> = (0..ns).map(|_| None).collect();
    while let Some(r) = sub_conns.join_next().await {
        let (j, s) = r??;
        subs[j] = Some(s);
    }
    let mut pub_conns = tokio::task::JoinSet::new();
    for i in 0..np {
        let (target, roots, gate) = (target.clone(), roots.clone(), gate.clone());
        pub_conns.spawn(async move {
            let _permit = gate.acquire().await?;
            let s = connect(&target, roots, &pub_name(i)).await?;
            anyhow::Ok((i, s))
        });
    }
    let mut pubs: Vec<Option<TlsStream<TcpStream>>> = (0..np).map(|_| None).collect();
    while let Some(r) = pub_conns.join_next().await {
        let (i, s) = r??;
        pubs[i] = Some(s);
    }
    let subs: Vec<TlsStream<TcpStream>> =
        subs.into_iter().map(|s| s.ok_or_else(|| anyhow!("a subscriber did not connect"))).collect::<Result<_>>()?;
    let pubs: Vec<TlsStream<TcpStream>> =
        pubs.into_iter().map(|s| s.ok_or_else(|| anyhow!("a publisher did not connect"))).collect::<Result<_>>()?;
    let tls = {
        let (_, c) = subs[0].get_ref();
        format!(
            "{:?} {:?}",
            c.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default(),
            c.negotiated_cipher_suite().map(|s| s.suite())
        )
        .replace('"', "")
    };

    // Start subscribers, then publishers.
    let (done_tx, done_rx) = watch::channel(false);
    let mut sub_tasks = Vec::new();
    for (j, s) in subs.into_iter().enumerate() {
        let (rd, wr) = tokio::io::split(s);
        sub_tasks.push(tokio::spawn(subscriber(j, rd, wr, scenario.writes, shared.clone(), done_rx.clone())));
    }
    let mut pub_tasks = Vec::new();
    let mut ack_tasks = Vec::new();
    for (i, s) in pubs.into_iter().enumerate() {
        let (rd, wr) = tokio::io::split(s);
        ack_tasks.push(tokio::spawn(publisher_reader(i, rd, shared.clone(), done_rx.clone())));
        let p = PubParams {
            index: i,
            subs: subs_of[i].clone(),
            qos,
            payload: scenario.payload,
            end_to_end,
            unacked,
            writes: scenario.writes,
            batch: opts.batch,
            interval: match scenario.pace {
                Pace::Rate(r) => Some(Duration::from_secs_f64(np as f64 / r.max(1) as f64)),
                _ => None,
            },
        };
        pub_tasks.push(tokio::spawn(publisher(p, wr, shared.clone())));
    }

    // Warm-up, then the measurement window.
    let t0 = now_ns() + opts.warmup.as_nanos() as u64;
    shared.window_start.store(t0, Ordering::SeqCst);
    let check = Duration::from_millis(250);
    let mut progress = (0u64, Instant::now());
    let watch_progress = |progress: &mut (u64, Instant)| -> Result<()> {
        let r = shared.received.load(Ordering::Relaxed);
        if r != progress.0 || shared.subs_cut.load(Ordering::Acquire) == ns as u64 {
            // Progress, or nobody left to receive (the broker cut every
            // subscriber off: reported, not a harness failure).
            *progress = (r, Instant::now());
        } else if progress.1.elapsed() > opts.stall_timeout {
            bail!("no message arrived for {:?} (received {r} so far); the broker stalled or dropped connections", opts.stall_timeout);
        }
        Ok(())
    };
    // A task that ended before the stop signal, other than one whose
    // connection the broker closed (counted, and the run goes on), failed:
    // stop waiting for it.
    let fail_fast = |pubs: &[tokio::task::JoinHandle<Result<PubStats>>], subs: &[tokio::task::JoinHandle<Result<SubStats>>]| -> bool {
        let ended = |ts: usize, cut: &AtomicU64| ts as u64 > cut.load(Ordering::Acquire);
        ended(pubs.iter().filter(|t| t.is_finished()).count(), &shared.pubs_cut)
            || ended(subs.iter().filter(|t| t.is_finished()).count(), &shared.subs_cut)
    };
    let sent_total = |s: &Shared| s.sent.iter().map(|x| x.load(Ordering::Relaxed)).sum::<u64>();
    // perf stat (when asked: a counting run) attaches during the last part of
    // the warm-up; its counts are divided by the deliveries between its start
    // and its end.
    let perf_at = t0.saturating_sub(300_000_000);
    let mut perf = None;
    while now_ns() < t0 {
        let next = if perf.is_none() && opts.perf_stat && now_ns() < perf_at { perf_at } else { t0 };
        tokio::time::sleep(check.min(Duration::from_nanos(next.saturating_sub(now_ns())))).await;
        watch_progress(&mut progress)?;
        if fail_fast(&pub_tasks, &sub_tasks) {
            break;
        }
        if let (true, None, Some(pid)) = (opts.perf_stat, &perf, target.broker_pid) {
            if now_ns() >= perf_at {
                perf = Some((crate::procfs::PerfStat::start(pid)?, shared.received.load(Ordering::Relaxed)));
            }
        }
    }
    let cpu0 = target.broker_pid.map(crate::procfs::cpu_seconds).transpose()?;
    let client0 = crate::procfs::self_cpu_seconds();
    let system0 = crate::procfs::system_busy_seconds()?;
    let published0 = sent_total(&shared);
    let t0 = now_ns();
    shared.window_start.store(t0, Ordering::SeqCst);
    let t1 = t0 + opts.duration.as_nanos() as u64;
    shared.window_end.store(t1, Ordering::SeqCst);
    while now_ns() < t1 {
        tokio::time::sleep(check.min(Duration::from_nanos(t1.saturating_sub(now_ns())))).await;
        watch_progress(&mut progress)?;
        if fail_fast(&pub_tasks, &sub_tasks) {
            break;
        }
    }
    let cpu1 = target.broker_pid.map(crate::procfs::cpu_seconds).transpose()?;
    let perf = match perf {
        Some((p, received0)) => {
            let delivered = shared.received.load(Ordering::Relaxed) - received0;
            Some((p.finish()?, delivered))
        }
        None => None,
    };
    let client1 = crate::procfs::self_cpu_seconds();
    let system1 = crate::procfs::system_busy_seconds()?;
    let published1 = sent_total(&shared);
    let t1 = now_ns().min(t1);
    shared.stop.store(true, Ordering::SeqCst);
    for w in &shared.wake {
        w.notify_one();
    }
    let mut sent = vec![0u64; np];
    let mut cut: Vec<String> = Vec::new();
    let mut pub_writers = Vec::with_capacity(np);
    for (i, t) in pub_tasks.into_iter().enumerate() {
        // A publisher blocked in a write (the broker is not reading from it)
        // finishes once the broker reads again.
        let p = tokio::time::timeout(opts.drain_max, t)
            .await
            .map_err(|_| anyhow!("{}: its last write did not complete within {:?} of the end", pub_name(i), opts.drain_max))??
            .context("publisher")?;
        sent[i] = p.sent;
        cut.extend(p.cut);
        pub_writers.extend(p.wr);
    }

    // Drain: wait until every route has seen its publisher's last message (and,
    // at QoS 1, every message is acknowledged), or nothing arrived for
    // `drain_quiet`.
    let drain_start = Instant::now();
    let activity = |s: &Shared| s.received.load(Ordering::Relaxed) + s.acked.iter().map(|a| a.load(Ordering::Relaxed)).sum::<u64>();
    let drained = |s: &Shared| {
        routes.iter().all(|&(i, j)| s.last[j][i].load(Ordering::Acquire) >= sent[i])
            && (qos == QoS::AtMostOnce || (0..np).all(|i| s.acked[i].load(Ordering::Acquire) >= sent[i]))
    };
    let mut seen = (activity(&shared), Instant::now());
    while !drained(&shared) && seen.1.elapsed() < opts.drain_quiet && drain_start.elapsed() < opts.drain_max {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let a = activity(&shared);
        if a != seen.0 {
            seen = (a, Instant::now());
        }
    }
    let drain_seconds = drain_start.elapsed().as_secs_f64();
    let _ = done_tx.send(true);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3)?;
    let (mut in_window, mut duplicates, mut out_of_order) = (0u64, 0u64, 0u64);
    let mut got: Vec<Vec<SeqSet>> = Vec::with_capacity(ns);
    for t in sub_tasks {
        let s = t.await?.context("subscriber")?;
        hist.add(&s.hist)?;
        in_window += s.in_window;
        duplicates += s.duplicates;
        out_of_order += s.out_of_order;
        cut.extend(s.cut);
        got.push(s.received);
    }
    let mut acks = Vec::with_capacity(np);
    for t in ack_tasks {
        acks.push(t.await?.context("publisher (reading PUBACKs)")?);
    }
    for mut wr in pub_writers {
        disconnect(&mut wr).await;
    }
    let accepted = accepted_sets(qos, &sent, &acks);
    let tally = tally(&routes, &accepted, &got);
    if std::env::var_os("LOADGEN_DEBUG").is_some() {
        for &(i, j) in &routes {
            let missing = accepted[i].missing_from(&got[j][i]);
            if missing > 0 {
                eprintln!(
                    "route {i}→{j}: sent {}, accepted {}, received {}, missing {missing}",
                    sent[i],
                    accepted[i].len(),
                    got[j][i].len()
                );
            }
        }
    }
    let seconds = (t1 - t0) as f64 / 1e9;
    let million = in_window as f64 / 1e6;
    let broker_cpu_s = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let client_cpu_s = client1 - client0;
    let background_cores = ((system1 - system0) - broker_cpu_s.unwrap_or(0.0) - client_cpu_s).max(0.0) / seconds;
    let us = |ns: u64| ns as f64 / 1000.0;
    let sent_sum: u64 = sent.iter().sum();
    let accepted_sum: u64 = accepted.iter().map(|a| a.len()).sum();
    Ok(LoadResult {
        delivered: in_window,
        seconds,
        deliveries_per_sec: in_window as f64 / seconds,
        published_per_sec: published1.saturating_sub(published0) as f64 / seconds,
        p50_us: us(hist.value_at_quantile(0.50)),
        p99_us: us(hist.value_at_quantile(0.99)),
        max_us: us(hist.max()),
        sent: sent_sum,
        accepted: accepted_sum,
        unacknowledged: if qos == QoS::AtMostOnce { 0 } else { sent_sum.saturating_sub(accepted_sum) },
        expected: tally.expected,
        received: tally.received,
        lost: tally.lost,
        duplicates,
        out_of_order,
        stray_pubacks: acks.iter().map(|a| a.stray).sum(),
        cut_off: cut,
        drain_seconds,
        broker_cpu_s,
        broker_cpu_s_per_million: broker_cpu_s.filter(|_| million > 0.0).map(|c| c / million),
        client_cpu_s,
        client_cpu_s_per_million: if million > 0.0 { client_cpu_s / million } else { 0.0 },
        broker_cores: broker_cpu_s.map(|c| c / seconds),
        perf_attached: opts.perf_stat,
        broker_syscalls_per_msg: perf.filter(|(_, n)| *n > 0).map(|(p, n)| p.syscalls as f64 / n as f64),
        broker_ctx_switches_per_msg: perf.filter(|(_, n)| *n > 0).map(|(p, n)| p.context_switches as f64 / n as f64),
        client_cores: client_cpu_s / seconds,
        background_cores,
        tls,
    })
}

/// Deliveries owed, received and lost over every route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tally {
    expected: u64,
    received: u64,
    lost: u64,
}

/// `accepted[i]`: publisher i's accepted messages; `got[j][i]`: what
/// subscriber j received of publisher i.
fn tally(routes: &[(usize, usize)], accepted: &[SeqSet], got: &[Vec<SeqSet>]) -> Tally {
    let mut t = Tally { expected: 0, received: 0, lost: 0 };
    for &(i, j) in routes {
        t.expected += accepted[i].len();
        t.lost += accepted[i].missing_from(&got[j][i]);
    }
    t.received = got.iter().flatten().map(|s| s.len()).sum();
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_loss_per_route_against_accepted_messages() {
        // Fan-out 1→2: publisher 0 had 10 messages accepted; subscriber 0 got
        // all, subscriber 1 missed two and also got one never accepted.
        let topo = Topology::FanOut(2);
        let accepted = vec![SeqSet::first(10)];
        let mut all = SeqSet::new();
        let mut some = SeqSet::new();
        for s in 0..10 {
            all.insert(s);
            if s != 3 && s != 9 {
                some.insert(s);
            }
        }
        some.insert(10);
        let t = tally(&topo.routes(), &accepted, &[vec![all], vec![some]]);
        assert_eq!(t, Tally { expected: 20, received: 19, lost: 2 });
    }

    #[test]
    fn qos1_accepts_only_acknowledged_messages() {
        let mut acked = SeqSet::new();
        acked.insert(0);
        acked.insert(2);
        let acks = vec![AckStats { acked, stray: 0 }];
        assert_eq!(accepted_sets(QoS::AtLeastOnce, &[3], &acks)[0].len(), 2);
        assert_eq!(accepted_sets(QoS::AtMostOnce, &[3], &acks)[0].len(), 3);
    }
}
