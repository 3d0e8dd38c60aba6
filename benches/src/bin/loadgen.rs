//! One load scenario against one running broker.
//!
//! ```text
//! loadgen --addr 127.0.0.1:8883 --ca CA.pem --certs-dir DIR [--broker-pid PID] \
//!         --topology pairs:1 --payload 128 --qos 0 [--rate N | --flat-out] [--batched] \
//!         [--duration 5] [--warmup 2] [--perf-stat]
//! ```
//!
//! Clients write each packet as it is produced (one TLS record and one system
//! call per PUBLISH or PUBACK) unless `--batched`. With `--perf-stat` the run
//! is a counting run: `perf stat` taxes the broker while it is attached, so its
//! throughput is printed but marked as not comparable.
//!
//! Devices are `pub-I` and `sub-J` (client id = thing name) with
//! `DIR/THING.cert.pem` and `DIR/THING.private.key`; publisher I publishes on
//! `bench/pub-I`. For ggcore the group must route exactly the scenario's pairs
//! (the `suite` binary deploys it). Prints one JSON object.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use ggcore_benches::load::{self, Options, Pace, Scenario, Target, Topology, Writes};

#[derive(Parser)]
#[command(about = "MQTT-over-TLS device→device load: deliveries/s, loss, latency, CPU")]
struct Args {
    /// Broker address.
    #[arg(long)]
    addr: std::net::SocketAddr,
    /// Name the server certificate must carry.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// CA that signed the server certificate.
    #[arg(long)]
    ca: PathBuf,
    /// Directory with THING.cert.pem and THING.private.key of every device.
    #[arg(long)]
    certs_dir: PathBuf,
    /// Broker process id, for its CPU time (/proc/PID/stat).
    #[arg(long)]
    broker_pid: Option<u32>,
    /// pairs:N, fanin:N or fanout:N.
    #[arg(long, default_value = "pairs:1")]
    topology: String,
    /// Payload bytes (at least 20: publisher, sequence, timestamp).
    #[arg(long, default_value_t = 128)]
    payload: usize,
    #[arg(long, default_value_t = 0)]
    qos: u8,
    /// Total offered messages/s (a latency run); default: as fast as the
    /// end-to-end window allows (a throughput run).
    #[arg(long, conflicts_with = "flat_out")]
    rate: Option<u64>,
    /// No end-to-end window: publish as fast as the broker reads (QoS 1: at
    /// most --inflight unacknowledged).
    #[arg(long)]
    flat_out: bool,
    /// Write up to 64 KiB of PUBLISH packets per write (and all PUBACKs of one
    /// read in one write) instead of each packet as it is produced.
    #[arg(long)]
    batched: bool,
    /// --flat-out at QoS 1: most messages a publisher keeps unacknowledged.
    #[arg(long, default_value_t = 100)]
    inflight: usize,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Most messages in flight towards one subscriber.
    #[arg(long, default_value_t = 500)]
    window: usize,
    /// Most payload bytes in flight towards one subscriber.
    #[arg(long, default_value_t = 4 << 20)]
    window_bytes: usize,
    /// Count the broker's system calls and context switches (perf stat). A
    /// counting run: perf taxes the broker, so the throughput is not comparable.
    #[arg(long)]
    perf_stat: bool,
    /// Before running, deploy the scenario's group (exactly its routes) to the
    /// running ggcore of the suite's work directory `--work`, with this ggcore
    /// binary (as the suite does; for profiling one scenario).
    #[arg(long, requires = "work")]
    deploy_with: Option<PathBuf>,
    /// The suite's work directory (core-root/, devices/).
    #[arg(long)]
    work: Option<PathBuf>,
    /// With --batched: most PUBLISH packets per write (0: as many as fit in 64 KiB).
    #[arg(long, default_value_t = 0, requires = "batched")]
    batch: usize,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let target = Target { addr: a.addr, server_name: a.server_name, ca: a.ca, certs_dir: a.certs_dir, broker_pid: a.broker_pid };
    let pace = match (a.rate, a.flat_out) {
        (Some(r), _) => Pace::Rate(r),
        (None, true) => Pace::FlatOut,
        (None, false) => Pace::Window,
    };
    let writes = if a.batched { Writes::Batched } else { Writes::PerPacket };
    let scenario = Scenario { topology: Topology::parse(&a.topology)?, payload: a.payload, qos: a.qos, pace, writes };
    if let (Some(ggcore), Some(work)) = (&a.deploy_with, &a.work) {
        let t = scenario.topology;
        let pki = ggcore_benches::brokers::prepare_pki(ggcore, work, &load::all_things(t.publishers().max(t.subscribers())))?;
        ggcore_benches::brokers::deploy(ggcore, &pki, work, t)?;
    }
    let opts = Options {
        warmup: Duration::from_secs_f64(a.warmup),
        duration: Duration::from_secs_f64(a.duration),
        window: a.window,
        window_bytes: a.window_bytes,
        inflight: a.inflight,
        perf_stat: a.perf_stat,
        batch: a.batch,
        ..Options::default()
    };
    let r = load::run_blocking(&target, &scenario, &opts)?;
    let latency = match pace {
        Pace::Rate(_) => "latency",
        _ => "latency through the window (restates throughput)",
    };
    eprintln!(
        "{}{}: {:.0} deliveries/s ({:.0} published/s), {latency} p50 {:.0} µs p99 {:.0} µs, broker CPU {} s/M, client CPU {:.2} s/M, \
         lost {} of {} owed ({} duplicates, {} never PUBACKed){}{}",
        scenario.label(),
        if a.perf_stat { " [perf attached: throughput not comparable]" } else { "" },
        r.deliveries_per_sec,
        r.published_per_sec,
        r.p50_us,
        r.p99_us,
        r.broker_cpu_s_per_million.map(|c| format!("{c:.2}")).unwrap_or_else(|| "?".into()),
        r.client_cpu_s_per_million,
        r.lost,
        r.expected,
        r.duplicates,
        r.unacknowledged,
        if r.cut_off.is_empty() { String::new() } else { format!("; cut off by the broker: {}", r.cut_off.join("; ")) },
        match (r.broker_syscalls_per_msg, r.broker_ctx_switches_per_msg) {
            (Some(s), Some(c)) => format!(", {s:.3} syscalls and {c:.3} context switches per delivery"),
            _ => String::new(),
        }
    );
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
