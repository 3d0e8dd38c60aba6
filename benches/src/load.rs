//! The load harness: device → device messages through one broker over TLS.
//!
//! Every client runs on ONE current-thread tokio runtime, so the harness never
//! takes more than one core (the machine has two, shared with the broker); its
//! CPU time is measured and reported next to the broker's.
//!
//! Cheapness: publishers encode a batch of PUBLISH packets (up to 64 KiB) with
//! the `mqttbytes::v4` codec into one buffer and hand it to rustls in one write,
//! so records are large and syscalls few; subscribers parse everything one read
//! returned, take the clock once per read, and answer QoS 1 with one batch of
//! PUBACKs per read.
//!
//! Flow control: a publisher keeps at most `window` of its messages in flight
//! end to end (sent but not yet seen by every subscriber it feeds; shared with
//! the other publishers of the same subscriber) and, at QoS 1, at most `window`
//! unacknowledged by the broker. So a broker is measured at the highest rate it
//! sustains without queueing without bound, and no broker is pushed into its
//! overflow policy (dropping QoS 0). Losses are still counted.
//!
//! Each payload starts with `publisher index (u32 LE) | sequence (u64 LE) |
//! send time (u64 LE, ns on this process's monotonic clock)`; latency is receive
//! time minus send time, for messages received inside the measurement window.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use rumqttc::mqttbytes::v4::{Connect, Packet, PubAck, Publish, Subscribe, SubscribeReasonCode};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, Semaphore};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Bytes at the start of each payload: publisher index, sequence, send time.
pub const HEADER: usize = 20;
const MAX_PACKET: usize = 1 << 20;
const BATCH_BYTES: usize = 64 * 1024;
const KEEP_ALIVE_S: u16 = 600;

fn clock() -> &'static Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now)
}

/// Nanoseconds on this process's monotonic clock.
pub fn now_ns() -> u64 {
    clock().elapsed().as_nanos() as u64
}

/// Who talks to whom. Publishers are the things `pub-I`, subscribers `sub-J`;
/// publisher I publishes on `bench/pub-I`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Topology {
    /// N publishers, N subscribers, publisher I → subscriber I.
    Pairs(usize),
    /// N publishers → subscriber 0 (which subscribes to `bench/+`).
    FanIn(usize),
    /// Publisher 0 → N subscribers.
    FanOut(usize),
}

impl Topology {
    pub fn publishers(&self) -> usize {
        match *self {
            Topology::Pairs(n) | Topology::FanIn(n) => n,
            Topology::FanOut(_) => 1,
        }
    }

    pub fn subscribers(&self) -> usize {
        match *self {
            Topology::Pairs(n) | Topology::FanOut(n) => n,
            Topology::FanIn(_) => 1,
        }
    }

    /// Every (publisher, subscriber) pair that must be routed, and nothing else.
    pub fn routes(&self) -> Vec<(usize, usize)> {
        match *self {
            Topology::Pairs(n) => (0..n).map(|i| (i, i)).collect(),
            Topology::FanIn(n) => (0..n).map(|i| (i, 0)).collect(),
            Topology::FanOut(n) => (0..n).map(|j| (0, j)).collect(),
        }
    }

    /// The topic filters subscriber `j` subscribes to.
    pub fn filters(&self, j: usize) -> Vec<String> {
        match *self {
            Topology::Pairs(_) => vec![topic(j)],
            Topology::FanIn(_) => vec!["bench/+".to_string()],
            Topology::FanOut(_) => vec![topic(0)],
        }
    }

    pub fn label(&self) -> String {
        match *self {
            Topology::Pairs(n) => format!("{n}→{n}"),
            Topology::FanIn(n) => format!("{n}→1 fan-in"),
            Topology::FanOut(n) => format!("1→{n} fan-out"),
        }
    }

    /// Parses `pairs:N`, `fanin:N`, `fanout:N` (also `1:1`-style `N:N`).
    pub fn parse(s: &str) -> Result<Self> {
        let (kind, n) = s.split_once(':').ok_or_else(|| anyhow!("topology '{s}': expected pairs:N, fanin:N or fanout:N"))?;
        let n: usize = n.parse().with_context(|| format!("topology '{s}'"))?;
        if n == 0 {
            bail!("topology '{s}': N must be at least 1");
        }
        Ok(match kind {
            "pairs" => Topology::Pairs(n),
            "fanin" => Topology::FanIn(n),
            "fanout" => Topology::FanOut(n),
            _ => bail!("topology '{s}': expected pairs:N, fanin:N or fanout:N"),
        })
    }
}

pub fn pub_name(i: usize) -> String {
    format!("pub-{i}")
}

pub fn sub_name(j: usize) -> String {
    format!("sub-{j}")
}

pub fn topic(i: usize) -> String {
    format!("bench/pub-{i}")
}

/// Every thing name the largest scenario needs: `pub-0..N`, `sub-0..N`.
pub fn all_things(n: usize) -> Vec<String> {
    (0..n).map(pub_name).chain((0..n).map(sub_name)).collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    pub topology: Topology,
    /// Payload bytes (at least [`HEADER`]).
    pub payload: usize,
    /// 0 or 1.
    pub qos: u8,
    /// Total offered messages/s (shared by the publishers); `None`: as fast as
    /// the flow-control window allows (a throughput run).
    pub rate: Option<u64>,
}

impl Scenario {
    pub fn label(&self) -> String {
        let size = if self.payload >= 1024 && self.payload.is_multiple_of(1024) {
            format!("{} KiB", self.payload / 1024)
        } else {
            format!("{} B", self.payload)
        };
        let rate = match self.rate {
            Some(r) => format!(" @ {r}/s"),
            None => String::new(),
        };
        format!("{} {size} QoS {}{rate}", self.topology.label(), self.qos)
    }
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
    /// Most messages in flight towards one subscriber.
    pub window: usize,
    /// Most payload bytes in flight towards one subscriber (caps `window` for
    /// large payloads).
    pub window_bytes: usize,
    /// TLS handshakes in progress at once while connecting.
    pub connect_parallelism: usize,
    /// Abort when no message arrives for this long while publishing.
    pub stall_timeout: Duration,
    /// Most PUBLISH packets per write (0: as many as fit in 64 KiB).
    pub batch: usize,
    /// Count the broker's system calls and context switches inside the window
    /// with `perf stat` (tracepoint `raw_syscalls:sys_enter`; costs the broker a
    /// little, so it is a separate pass from the throughput runs).
    pub perf_stat: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(5),
            window: 500,
            window_bytes: 4 << 20,
            connect_parallelism: 8,
            stall_timeout: Duration::from_secs(10),
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
    /// Deliveries per second inside the window.
    pub msgs_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// Messages published over the whole run (warm-up included).
    pub sent: u64,
    /// Deliveries expected over the whole run (sent × subscribers per publisher).
    pub expected: u64,
    /// Deliveries received over the whole run (duplicates excluded).
    pub received: u64,
    /// expected − received after draining.
    pub lost: u64,
    /// Deliveries received more than once (QoS 1 redelivery).
    pub duplicates: u64,
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
    /// With [`Options::perf_stat`]: broker system calls and context switches
    /// per delivered message.
    #[serde(default)]
    pub broker_syscalls_per_msg: Option<f64>,
    #[serde(default)]
    pub broker_ctx_switches_per_msg: Option<f64>,
    /// Negotiated protocol and cipher suite.
    pub tls: String,
}

type Rd = ReadHalf<TlsStream<TcpStream>>;
type Wr = WriteHalf<TlsStream<TcpStream>>;

struct Shared {
    /// `last[j][i]`: 1 + the highest sequence number from publisher i that
    /// subscriber j has received (0: none yet).
    last: Vec<Vec<AtomicU64>>,
    /// PUBACKs each publisher received.
    acked: Vec<AtomicU64>,
    /// Messages each publisher sent.
    sent: Vec<AtomicU64>,
    /// Wakes publisher i when its window may have opened.
    wake: Vec<Notify>,
    stop: AtomicBool,
    /// Measurement window, ns on [`now_ns`]'s clock.
    window_start: AtomicU64,
    window_end: AtomicU64,
    /// Deliveries received so far (all subscribers, duplicates included).
    received: AtomicU64,
}

#[derive(Debug)]
struct SubStats {
    hist: Histogram<u64>,
    in_window: u64,
    unique: u64,
    duplicates: u64,
}

/// Runs `scenario` against `target` on a fresh current-thread runtime.
pub fn run_blocking(target: &Target, scenario: &Scenario, opts: &Options) -> Result<LoadResult> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(target, scenario, opts))
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
    // that feed that subscriber.
    let per_sub = opts.window.min(opts.window_bytes / scenario.payload).max(1);
    let max_fan_in = fan_in.iter().copied().max().unwrap_or(1).max(1);
    let window = (per_sub / max_fan_in).max(1) as u64;

    let shared = Arc::new(Shared {
        last: (0..ns).map(|_| (0..np).map(|_| AtomicU64::new(0)).collect()).collect(),
        acked: (0..np).map(|_| AtomicU64::new(0)).collect(),
        sent: (0..np).map(|_| AtomicU64::new(0)).collect(),
        wake: (0..np).map(|_| Notify::new()).collect(),
        stop: AtomicBool::new(false),
        window_start: AtomicU64::new(u64::MAX),
        window_end: AtomicU64::new(u64::MAX),
        received: AtomicU64::new(0),
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
    let tls = {
        let (_, c) = subs[0].as_ref().expect("connected").get_ref();
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
        let (rd, wr) = tokio::io::split(s.expect("connected"));
        let shared = shared.clone();
        let done = done_rx.clone();
        sub_tasks.push(tokio::spawn(subscriber(j, rd, wr, shared, done)));
    }
    let mut pub_tasks = Vec::new();
    let mut ack_tasks = Vec::new();
    for (i, s) in pubs.into_iter().enumerate() {
        let (rd, wr) = tokio::io::split(s.expect("connected"));
        let shared2 = shared.clone();
        ack_tasks.push(tokio::spawn(publisher_reader(i, rd, shared2, done_rx.clone())));
        let p = PubParams {
            index: i,
            subs: subs_of[i].clone(),
            qos,
            payload: scenario.payload,
            window,
            batch: opts.batch,
            interval: scenario.rate.map(|r| Duration::from_secs_f64(np as f64 / r.max(1) as f64)),
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
        if r != progress.0 {
            *progress = (r, Instant::now());
        } else if progress.1.elapsed() > opts.stall_timeout {
            bail!("no message arrived for {:?} (received {r} so far); the broker stalled or dropped connections", opts.stall_timeout);
        }
        Ok(())
    };
    // A task that ended before the stop signal failed: stop waiting for it.
    let fail_fast = |pubs: &[tokio::task::JoinHandle<Result<u64>>], subs: &[tokio::task::JoinHandle<Result<SubStats>>]| -> bool {
        pubs.iter().any(|t| t.is_finished()) || subs.iter().any(|t| t.is_finished())
    };
    // perf stat (when asked) attaches during the last part of the warm-up; its
    // counts are divided by the deliveries between its start and its end.
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
    let t1 = now_ns().min(t1);
    shared.stop.store(true, Ordering::SeqCst);
    for w in &shared.wake {
        w.notify_one();
    }
    let mut sent = 0u64;
    for t in pub_tasks {
        sent += t.await?.context("publisher")?;
    }
    // Drain: wait until every route has seen its publisher's last message.
    let drained = |s: &Shared| routes.iter().all(|&(i, j)| s.last[j][i].load(Ordering::Acquire) >= s.sent[i].load(Ordering::Acquire));
    let deadline = Instant::now() + Duration::from_secs(3);
    while !drained(&shared) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if std::env::var_os("LOADGEN_DEBUG").is_some() {
        for &(i, j) in &routes {
            let (sent, acked, seen) = (
                shared.sent[i].load(Ordering::Relaxed),
                shared.acked[i].load(Ordering::Relaxed),
                shared.last[j][i].load(Ordering::Relaxed),
            );
            if seen < sent {
                eprintln!("route {i}→{j}: sent {sent}, PUBACKed {acked}, seen up to {seen}");
            }
        }
    }
    let _ = done_tx.send(true);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3)?;
    let (mut in_window, mut unique, mut duplicates) = (0u64, 0u64, 0u64);
    for t in sub_tasks {
        let s = t.await?.context("subscriber")?;
        hist.add(&s.hist)?;
        in_window += s.in_window;
        unique += s.unique;
        duplicates += s.duplicates;
    }
    for t in ack_tasks {
        let _ = t.await;
    }
    let expected: u64 = (0..np).map(|i| shared.sent[i].load(Ordering::Relaxed) * subs_of[i].len() as u64).sum();
    let seconds = (t1 - t0) as f64 / 1e9;
    let million = in_window as f64 / 1e6;
    let broker_cpu_s = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let client_cpu_s = client1 - client0;
    let background_cores = ((system1 - system0) - broker_cpu_s.unwrap_or(0.0) - client_cpu_s).max(0.0) / seconds;
    let us = |ns: u64| ns as f64 / 1000.0;
    Ok(LoadResult {
        delivered: in_window,
        seconds,
        msgs_per_sec: in_window as f64 / seconds,
        p50_us: us(hist.value_at_quantile(0.50)),
        p99_us: us(hist.value_at_quantile(0.99)),
        max_us: us(hist.max()),
        sent,
        expected,
        received: unique,
        lost: expected.saturating_sub(unique),
        duplicates,
        broker_cpu_s,
        broker_cpu_s_per_million: broker_cpu_s.filter(|_| million > 0.0).map(|c| c / million),
        client_cpu_s,
        client_cpu_s_per_million: if million > 0.0 { client_cpu_s / million } else { 0.0 },
        broker_cores: broker_cpu_s.map(|c| c / seconds),
        broker_syscalls_per_msg: perf.filter(|(_, n)| *n > 0).map(|(p, n)| p.syscalls as f64 / n as f64),
        broker_ctx_switches_per_msg: perf.filter(|(_, n)| *n > 0).map(|(p, n)| p.context_switches as f64 / n as f64),
        client_cores: client_cpu_s / seconds,
        background_cores,
        tls,
    })
}

/// TCP + TLS (client certificate of `thing`) + CONNECT/CONNACK with client id
/// `thing`.
async fn connect(target: &Target, roots: Arc<rustls::RootCertStore>, thing: &str) -> Result<TlsStream<TcpStream>> {
    let config = crate::tls::client_config(
        roots,
        &target.certs_dir.join(format!("{thing}.cert.pem")),
        &target.certs_dir.join(format!("{thing}.private.key")),
    )?;
    let tcp = TcpStream::connect(target.addr).await.with_context(|| format!("{thing}: connecting to {}", target.addr))?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from(target.server_name.clone())?;
    let mut tls = TlsConnector::from(config).connect(name, tcp).await.with_context(|| format!("{thing}: TLS handshake"))?;
    let mut c = Connect::new(thing);
    c.keep_alive = KEEP_ALIVE_S;
    c.clean_session = true;
    let mut buf = BytesMut::new();
    Packet::Connect(c).write(&mut buf, MAX_PACKET)?;
    tls.write_all(&buf).await?;
    tls.flush().await?;
    let mut rbuf = BytesMut::with_capacity(1024);
    match read_packet(&mut tls, &mut rbuf).await.with_context(|| format!("{thing}: waiting for CONNACK"))? {
        Packet::ConnAck(a) if a.code == rumqttc::mqttbytes::v4::ConnectReturnCode::Success => Ok(tls),
        Packet::ConnAck(a) => bail!("{thing}: connection refused: {:?}", a.code),
        p => bail!("{thing}: expected CONNACK, got {p:?}"),
    }
}

async fn subscribe<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, filters: &[String], qos: QoS) -> Result<()> {
    let mut sub = Subscribe::new(filters[0].clone(), qos);
    for f in &filters[1..] {
        sub.add(f.clone(), qos);
    }
    sub.pkid = 1;
    let mut buf = BytesMut::new();
    Packet::Subscribe(sub).write(&mut buf, MAX_PACKET)?;
    s.write_all(&buf).await?;
    s.flush().await?;
    let mut rbuf = BytesMut::with_capacity(1024);
    match read_packet(s, &mut rbuf).await? {
        Packet::SubAck(a) => {
            for (f, c) in filters.iter().zip(&a.return_codes) {
                if matches!(c, SubscribeReasonCode::Failure) {
                    bail!("SUBSCRIBE to '{f}' refused");
                }
            }
            Ok(())
        }
        p => bail!("expected SUBACK, got {p:?}"),
    }
}

async fn read_packet<S: AsyncRead + Unpin>(s: &mut S, buf: &mut BytesMut) -> Result<Packet> {
    loop {
        match Packet::read(buf, MAX_PACKET) {
            Ok(p) => return Ok(p),
            Err(CodecError::InsufficientBytes(_)) => {
                buf.reserve(4096);
                if s.read_buf(buf).await? == 0 {
                    bail!("connection closed by the broker");
                }
            }
            Err(e) => bail!("malformed packet from the broker: {e}"),
        }
    }
}

struct PubParams {
    index: usize,
    subs: Vec<usize>,
    qos: QoS,
    payload: usize,
    window: u64,
    batch: usize,
    /// Pacing: one message per interval (rate runs).
    interval: Option<Duration>,
}

/// Publishes until `stop`; returns how many messages it sent.
async fn publisher(p: PubParams, mut wr: Wr, shared: Arc<Shared>) -> Result<u64> {
    let i = p.index;
    let mut publish = Publish::from_bytes(topic(i), p.qos, Bytes::from(vec![0x5au8; p.payload]));
    if p.qos != QoS::AtMostOnce {
        publish.pkid = 1;
    }
    let per_msg = Packet::Publish(publish.clone()).size();
    let mut max_batch = (BATCH_BYTES / per_msg).max(1) as u64;
    if p.batch > 0 {
        max_batch = max_batch.min(p.batch as u64);
    }
    let mut buf = BytesMut::with_capacity(BATCH_BYTES + per_msg);
    let mut seq = 0u64;
    let started = tokio::time::Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let floor = p.subs.iter().map(|&j| shared.last[j][i].load(Ordering::Acquire)).min().unwrap_or(seq);
        let mut allowed = (floor + p.window).saturating_sub(seq);
        if p.qos != QoS::AtMostOnce {
            let acked = shared.acked[i].load(Ordering::Acquire);
            allowed = allowed.min((acked + p.window).saturating_sub(seq));
        }
        if let Some(iv) = p.interval {
            let due = (started.elapsed().as_nanos() / iv.as_nanos()) as u64 + 1;
            if due <= seq {
                tokio::time::sleep_until(started + iv * (seq as u32)).await;
                continue;
            }
            allowed = allowed.min(due - seq);
        }
        if allowed == 0 {
            tokio::select! {
                _ = shared.wake[i].notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            continue;
        }
        let n = allowed.min(max_batch);
        buf.clear();
        let ts = now_ns();
        for k in 0..n {
            let s = seq + k;
            if p.qos != QoS::AtMostOnce {
                publish.pkid = (s % 65_535) as u16 + 1;
            }
            publish.write(&mut buf)?;
            let start = buf.len() - p.payload;
            let h = &mut buf[start..start + HEADER];
            h[0..4].copy_from_slice(&(i as u32).to_le_bytes());
            h[4..12].copy_from_slice(&s.to_le_bytes());
            h[12..20].copy_from_slice(&ts.to_le_bytes());
        }
        wr.write_all(&buf).await.with_context(|| format!("{}: writing", pub_name(i)))?;
        wr.flush().await?;
        seq += n;
        shared.sent[i].store(seq, Ordering::Release);
    }
    buf.clear();
    Packet::Disconnect.write(&mut buf, MAX_PACKET)?;
    let _ = wr.write_all(&buf).await;
    let _ = wr.flush().await;
    Ok(seq)
}

/// Reads what the broker sends a publisher (PUBACKs) until the run ends.
async fn publisher_reader(i: usize, mut rd: Rd, shared: Arc<Shared>, mut done: watch::Receiver<bool>) -> Result<()> {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        loop {
            match Packet::read(&mut buf, MAX_PACKET) {
                Ok(Packet::PubAck(_)) => {
                    shared.acked[i].fetch_add(1, Ordering::AcqRel);
                }
                Ok(_) => {}
                Err(CodecError::InsufficientBytes(_)) => break,
                Err(e) => bail!("{}: malformed packet from the broker: {e}", pub_name(i)),
            }
        }
        shared.wake[i].notify_one();
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        let n = tokio::select! {
            r = rd.read_buf(&mut buf) => r,
            _ = done.changed() => return Ok(()),
        };
        match n {
            Ok(0) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
    }
}

async fn subscriber(j: usize, mut rd: Rd, mut wr: Wr, shared: Arc<Shared>, mut done: watch::Receiver<bool>) -> Result<SubStats> {
    let mut stats = SubStats { hist: Histogram::new_with_bounds(1, 600_000_000_000, 3)?, in_window: 0, unique: 0, duplicates: 0 };
    let np = shared.last[j].len();
    let mut last: Vec<u64> = vec![0; np];
    let mut advanced: Vec<usize> = Vec::with_capacity(np);
    let mut marked: Vec<bool> = vec![false; np];
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut acks = BytesMut::with_capacity(4096);
    loop {
        if buf.capacity() - buf.len() < 32 * 1024 {
            buf.reserve(256 * 1024);
        }
        let n = tokio::select! {
            biased;
            r = rd.read_buf(&mut buf) => r,
            _ = done.changed() => break,
        };
        match n {
            Ok(0) => {
                if *done.borrow() {
                    break;
                }
                bail!("{}: connection closed by the broker", sub_name(j));
            }
            Ok(_) => {}
            Err(e) => bail!("{}: read failed: {e}", sub_name(j)),
        }
        let now = now_ns();
        let in_window = now >= shared.window_start.load(Ordering::Relaxed) && now < shared.window_end.load(Ordering::Relaxed);
        let mut count = 0u64;
        loop {
            let publish = match Packet::read(&mut buf, MAX_PACKET) {
                Ok(Packet::Publish(p)) => p,
                Ok(_) => continue,
                Err(CodecError::InsufficientBytes(_)) => break,
                Err(e) => bail!("{}: malformed packet from the broker: {e}", sub_name(j)),
            };
            count += 1;
            if publish.qos == QoS::AtLeastOnce {
                PubAck::new(publish.pkid).write(&mut acks)?;
            }
            let h = &publish.payload;
            if h.len() < HEADER {
                bail!("{}: payload of {} bytes has no header", sub_name(j), h.len());
            }
            let pi = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes")) as usize;
            let seq = u64::from_le_bytes(h[4..12].try_into().expect("8 bytes"));
            let ts = u64::from_le_bytes(h[12..20].try_into().expect("8 bytes"));
            if pi >= np {
                bail!("{}: message from unknown publisher {pi}", sub_name(j));
            }
            if seq < last[pi] {
                stats.duplicates += 1;
                continue;
            }
            if !marked[pi] {
                marked[pi] = true;
                advanced.push(pi);
            }
            last[pi] = seq + 1;
            stats.unique += 1;
            if in_window {
                stats.in_window += 1;
                let _ = stats.hist.record(now.saturating_sub(ts).max(1));
            }
        }
        if !acks.is_empty() {
            wr.write_all(&acks).await.with_context(|| format!("{}: writing PUBACKs", sub_name(j)))?;
            wr.flush().await?;
            acks.clear();
        }
        for &pi in &advanced {
            shared.last[j][pi].store(last[pi], Ordering::Release);
            shared.wake[pi].notify_one();
            marked[pi] = false;
        }
        advanced.clear();
        shared.received.fetch_add(count, Ordering::Relaxed);
    }
    let mut b = BytesMut::new();
    Packet::Disconnect.write(&mut b, MAX_PACKET)?;
    let _ = wr.write_all(&b).await;
    let _ = wr.flush().await;
    Ok(stats)
}
