//! One load scenario against one running broker.
//!
//! ```text
//! loadgen --addr 127.0.0.1:8883 --ca CA.pem --certs-dir DIR [--broker-pid PID] \
//!         --topology pairs:1 --payload 128 --qos 0 [--rate N] [--duration 5] [--warmup 2]
//! ```
//!
//! Devices are `pub-I` and `sub-J` (client id = thing name) with
//! `DIR/THING.cert.pem` and `DIR/THING.private.key`; publisher I publishes on
//! `bench/pub-I`. For ggcore the group must route exactly the scenario's pairs
//! (the `suite` binary deploys it). Prints one JSON object.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use ggcore_benches::load::{self, Options, Scenario, Target, Topology};

#[derive(Parser)]
#[command(about = "MQTT-over-TLS device→device load: msgs/s, latency, CPU")]
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
    /// Total offered messages/s; default: as fast as the window allows.
    #[arg(long)]
    rate: Option<u64>,
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
    /// Count the broker's system calls and context switches (perf stat).
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
    /// Most PUBLISH packets per write (0: as many as fit in 64 KiB).
    #[arg(long, default_value_t = 0)]
    batch: usize,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let target = Target { addr: a.addr, server_name: a.server_name, ca: a.ca, certs_dir: a.certs_dir, broker_pid: a.broker_pid };
    let scenario = Scenario { topology: Topology::parse(&a.topology)?, payload: a.payload, qos: a.qos, rate: a.rate };
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
        perf_stat: a.perf_stat,
        batch: a.batch,
        ..Options::default()
    };
    let r = load::run_blocking(&target, &scenario, &opts)?;
    eprintln!(
        "{}: {:.0} msg/s, p50 {:.0} µs, p99 {:.0} µs, broker CPU {} s/M, client CPU {:.2} s/M, lost {}",
        scenario.label(),
        r.msgs_per_sec,
        r.p50_us,
        r.p99_us,
        r.broker_cpu_s_per_million.map(|c| format!("{c:.2}")).unwrap_or_else(|| "?".into()),
        r.client_cpu_s_per_million,
        r.lost
    );
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
