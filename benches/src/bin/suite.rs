//! The side-by-side benchmark: ggcore, Mosquitto and rumqttd on the same
//! certificates, same payloads, same client harness, in one run; every
//! scenario repeated, medians reported, every broker's loss computed; plus
//! ggcore's idle memory and start-to-ready time. Prints the markdown for
//! BENCHMARKS.md and writes the raw runs as JSON. Reports; never asserts.
//!
//! Passes: `--repeats` measured passes (nothing attached to any broker), then,
//! with `--perf-stat`, one counting pass with `perf stat` attached to the
//! broker, whose runs feed only the system-call table. Scenarios: see
//! `scenarios()`; `--batched` adds batched-write twins in their own rows.
//!
//! Usually started by `benches/run.sh`, which builds ggcore and installs rumqttd.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use ggcore_benches::brokers::{self, Kind, Pki, Running};
use ggcore_benches::load::{self, LoadResult, Options, Pace, Scenario, Target, Topology, Writes};
use ggcore_benches::procfs;
use ggcore_benches::report::{self, Pass, Record};
use ggcore_benches::startup;
use serde_json::json;

#[derive(Parser)]
#[command(
    about = "ggcore vs Mosquitto vs rumqttd: device→device deliveries/s and loss, latency at fixed rates, CPU; idle RSS; start-to-ready"
)]
struct Args {
    /// Scratch directory (roots, certificates, broker configs and logs, results).
    #[arg(long, default_value_os_t = default_work())]
    work: PathBuf,
    /// The ggcore binary to measure.
    #[arg(long, default_value_os_t = default_ggcore())]
    ggcore: PathBuf,
    #[arg(long, default_value = "/usr/sbin/mosquitto")]
    mosquitto: PathBuf,
    #[arg(long, default_value_os_t = default_rumqttd())]
    rumqttd: PathBuf,
    /// Brokers to compare, comma-separated.
    #[arg(long, default_value = "ggcore,mosquitto,rumqttd")]
    brokers: String,
    /// Measured runs of each (scenario, broker); medians are reported (0: only
    /// the counting pass of --perf-stat).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Most messages in flight towards one subscriber.
    #[arg(long, default_value_t = 500)]
    window: usize,
    /// Most payload bytes in flight towards one subscriber.
    #[arg(long, default_value_t = 4 << 20)]
    window_bytes: usize,
    /// Flat-out scenarios at QoS 1: most messages a publisher keeps
    /// unacknowledged.
    #[arg(long, default_value_t = 100)]
    inflight: usize,
    /// Only scenarios whose label contains one of these (comma-separated).
    #[arg(long)]
    only: Option<String>,
    /// Also count each broker's system calls and context switches per
    /// delivery: after the measured runs, one more run of each (scenario,
    /// broker) with `perf stat` attached to the broker. Counting taxes the
    /// broker, so these runs feed only the counters table, never a throughput,
    /// latency or CPU figure.
    #[arg(long)]
    perf_stat: bool,
    /// Also run the 128 B saturated scenarios with batched writes (up to 64 KiB
    /// of PUBLISH packets per write, as this harness used to), in rows and a
    /// table of their own.
    #[arg(long)]
    batched: bool,
    /// Skip the load scenarios (only idle RSS and start-to-ready).
    #[arg(long)]
    no_load: bool,
    /// Skip idle RSS and start-to-ready.
    #[arg(long)]
    no_startup: bool,
    /// Starts of ggcore on a warm root for start-to-ready.
    #[arg(long, default_value_t = 10)]
    starts: usize,
    /// Before each measurement wait up to this many seconds for compilers and
    /// linkers (another build) to finish.
    #[arg(long, default_value_t = 0)]
    quiet_wait: u64,
    /// A run during which other processes used more than this many cores is
    /// run again (up to --retries times), after waiting for quiet.
    #[arg(long, default_value_t = 0.3)]
    max_background: f64,
    #[arg(long, default_value_t = 2)]
    retries: usize,
}

/// Names of processes that mean another build is competing for the CPU.
const BUILD_PROCESSES: &[&str] =
    &["rustc", "cargo", "cc1", "cc1plus", "cc", "c++", "gcc", "g++", "clang", "ld", "ld.lld", "rust-lld", "cmake", "make", "ninja", "as"];

/// Waits (up to `max`) until no compiler or linker runs; returns what was still
/// running when it gave up.
fn wait_quiet(max: Duration) -> Vec<String> {
    let deadline = Instant::now() + max;
    let mut announced = false;
    loop {
        let busy = procfs::processes_named(BUILD_PROCESSES);
        if busy.is_empty() {
            return Vec::new();
        }
        if Instant::now() >= deadline {
            return busy.into_iter().map(|(p, n)| format!("{n}[{p}]")).collect();
        }
        if !announced && !max.is_zero() {
            eprintln!(
                "waiting for a quiet machine (running: {})",
                busy.iter().map(|(p, n)| format!("{n}[{p}]")).collect::<Vec<_>>().join(" ")
            );
            announced = true;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"))
}

fn default_work() -> PathBuf {
    home().join(".cache/mqtt-bench")
}

fn default_ggcore() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| home().join(".cache/ggcore-target")).join("debug/ggcore")
}

fn default_rumqttd() -> PathBuf {
    home().join(".cache/ggcore-peers/bin/rumqttd")
}

/// Every scenario, each packet its own write: 1→1, 10→10, 100→1 fan-in,
/// 1→100 fan-out; 128 B and 16 KiB; QoS 0 and 1; each at the highest rate the
/// end-to-end window allows (throughput). Then flat out, no end-to-end window:
/// 1→1 and 100→1 fan-in, 128 B (throughput and loss when the broker's queues
/// fill). Then latency at fixed offered rates: 1→1 at 1,000 and 10,000/s, 100→1
/// at 10,000/s, 1→100 at 100/s (10,000 deliveries/s). With `batched`, the 128 B
/// throughput scenarios once more with batched writes.
fn scenarios(batched: bool) -> Vec<Scenario> {
    let mut v = Vec::new();
    let s = |topology, payload, qos, pace, writes| Scenario { topology, payload, qos, pace, writes };
    for topology in [Topology::Pairs(1), Topology::Pairs(10), Topology::FanIn(100), Topology::FanOut(100)] {
        for payload in [128, 16 * 1024] {
            for qos in [0, 1] {
                v.push(s(topology, payload, qos, Pace::Window, Writes::PerPacket));
            }
        }
    }
    for topology in [Topology::Pairs(1), Topology::FanIn(100)] {
        for qos in [0, 1] {
            v.push(s(topology, 128, qos, Pace::FlatOut, Writes::PerPacket));
        }
    }
    for (topology, rate) in
        [(Topology::Pairs(1), 1000), (Topology::Pairs(1), 10_000), (Topology::FanIn(100), 10_000), (Topology::FanOut(100), 100)]
    {
        for qos in [0, 1] {
            v.push(s(topology, 128, qos, Pace::Rate(rate), Writes::PerPacket));
        }
    }
    if batched {
        let twins: Vec<Scenario> = v
            .iter()
            .filter(|x| x.pace == Pace::Window && x.payload == 128)
            .map(|x| Scenario { writes: Writes::Batched, ..x.clone() })
            .collect();
        v.extend(twins);
    }
    v
}

fn sh(cmd: &str) -> String {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_default();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "kernel": sh("uname -sr"),
        "mem_total": sh("grep MemTotal /proc/meminfo | tr -s ' '"),
        "loadavg_at_start": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    })
}

struct Brokers {
    ggcore: Option<Running>,
    mosquitto: Option<Running>,
    rumqttd: Option<Running>,
    /// Restarts and the like, reported with the results.
    events: Vec<String>,
}

impl Brokers {
    fn slot(&mut self, k: Kind) -> &mut Option<Running> {
        match k {
            Kind::Ggcore => &mut self.ggcore,
            Kind::Mosquitto => &mut self.mosquitto,
            Kind::Rumqttd => &mut self.rumqttd,
        }
    }

    fn get(&self, k: Kind) -> Option<&Running> {
        match k {
            Kind::Ggcore => self.ggcore.as_ref(),
            Kind::Mosquitto => self.mosquitto.as_ref(),
            Kind::Rumqttd => self.rumqttd.as_ref(),
        }
    }
}

fn main() -> Result<()> {
    let a = Args::parse();
    let kinds: Vec<Kind> = a.brokers.split(',').map(|s| Kind::parse(s.trim())).collect::<Result<_>>()?;
    std::fs::create_dir_all(&a.work)?;
    let work = a.work.canonicalize()?;
    let results = work.join("results");
    std::fs::create_dir_all(&results)?;
    if !a.ggcore.exists() {
        bail!("{} not found; build it with `cargo build -p ggcore`", a.ggcore.display());
    }

    let mut report = String::new();
    let machine = machine();
    let versions = json!({
        "ggcore": sh(&format!("{} --version", a.ggcore.display())),
        "ggcore_binary": a.ggcore.display().to_string(),
        "ggcore_sha256": sh(&format!("sha256sum {} | cut -c1-16", a.ggcore.display())),
        "ggcore_built": sh(&format!("date -u -r {} +%FT%TZ", a.ggcore.display())),
        "git_head": sh("git rev-parse --short HEAD 2>/dev/null"),
        "git_uncommitted_files": sh("git status --porcelain 2>/dev/null | wc -l"),
        "mosquitto": sh(&format!("{} -h 2>&1 | head -1", a.mosquitto.display())),
        "rumqttd": sh(&format!("{} --version", a.rumqttd.display())),
        "rustc": sh("rustc --version"),
    });
    eprintln!("machine: {machine}\nversions: {versions}");

    let mut startup = serde_json::Value::Null;
    if !a.no_startup {
        let busy = wait_quiet(Duration::from_secs(a.quiet_wait));
        if !busy.is_empty() {
            eprintln!("measuring start-up while busy: {}", busy.join(" "));
        }
        let bins =
            startup::Binaries { ggcore: a.ggcore.clone(), mosquitto: a.mosquitto.clone(), rumqttd: a.rumqttd.clone(), starts: a.starts };
        startup = startup::measure(&bins, &work, &kinds)?;
        report.push_str(&startup::markdown(&startup));
    }

    let mut records: Vec<Record> = Vec::new();
    if !a.no_load {
        let only: Option<Vec<String>> = a.only.as_ref().map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
        let scenarios: Vec<Scenario> = scenarios(a.batched)
            .into_iter()
            .filter(|s| only.as_ref().is_none_or(|o| o.iter().any(|x| s.label().contains(x.as_str()))))
            .collect();
        let n = scenarios.iter().map(|s| s.topology.publishers().max(s.topology.subscribers())).max().unwrap_or(1);
        let pki = brokers::prepare_pki(&a.ggcore, &work, &load::all_things(n))?;
        let mut running = start_brokers(&a, &pki, &work, &kinds)?;
        // Idle cost of each broker as set up for the runs (no clients yet).
        std::thread::sleep(Duration::from_secs(1));
        let idle_s = 5.0;
        let before: Vec<(Kind, f64)> =
            kinds.iter().filter_map(|k| running.get(*k).and_then(|r| procfs::cpu_seconds(r.pid()).ok()).map(|c| (*k, c))).collect();
        std::thread::sleep(Duration::from_secs_f64(idle_s));
        let mut idle = Vec::new();
        for (k, c0) in before {
            if let Some(r) = running.get(k) {
                let c1 = procfs::cpu_seconds(r.pid()).unwrap_or(c0);
                idle.push(format!(
                    "{} {:.2}% of a core, VmRSS {:.1} MB",
                    k.name(),
                    (c1 - c0) / idle_s * 100.0,
                    procfs::status_kb(r.pid(), "VmRSS").unwrap_or(0) as f64 / 1024.0
                ));
            }
        }
        let idle_line = format!(
            "Idle, as set up for the runs (bench group deployed for ggcore, no clients; CPU over {idle_s} s): {}.\n",
            idle.join("; ")
        );
        eprintln!("{idle_line}");
        let opts = Options {
            warmup: Duration::from_secs_f64(a.warmup),
            duration: Duration::from_secs_f64(a.duration),
            window: a.window,
            window_bytes: a.window_bytes,
            inflight: a.inflight,
            ..Options::default()
        };
        // The measured repeats, then (with --perf-stat) the counting pass: one
        // more run of each (scenario, broker) with perf attached.
        let mut passes: Vec<(Pass, usize)> = (0..a.repeats).map(|r| (Pass::Measured, r)).collect();
        if a.perf_stat {
            passes.push((Pass::Counters, 0));
        }
        let total = passes.len() * scenarios.len() * kinds.len();
        let mut done = 0;
        let started = Instant::now();
        for (pass, repeat) in passes {
            let opts = Options { perf_stat: pass == Pass::Counters, ..opts.clone() };
            for s in &scenarios {
                // Rotate the order of brokers between repeats so that none always
                // runs first (or right after the heaviest).
                let mut order = kinds.clone();
                order.rotate_left(repeat % kinds.len());
                for k in order {
                    done += 1;
                    let mut attempt = 0;
                    let r = loop {
                        let busy = wait_quiet(Duration::from_secs(a.quiet_wait));
                        if !busy.is_empty() && a.quiet_wait > 0 {
                            eprintln!("still busy after {} s: {}", a.quiet_wait, busy.join(" "));
                        }
                        let r = run_one(&a, &pki, &work, &mut running, k, s, &opts);
                        attempt += 1;
                        match &r {
                            Ok(x) if x.background_cores > a.max_background && attempt <= a.retries => {
                                eprintln!(
                                    "[{done}/{total}] {} {}: {:.2} cores of background load; again",
                                    s.label(),
                                    k.name(),
                                    x.background_cores
                                );
                                std::thread::sleep(Duration::from_secs(2));
                            }
                            Err(e) if attempt <= a.retries => {
                                eprintln!("[{done}/{total}] {} {}: failed ({e:#}); again", s.label(), k.name());
                                std::thread::sleep(Duration::from_secs(2));
                            }
                            _ => break r,
                        }
                    };
                    let spent = started.elapsed().as_secs();
                    let left = spent * (total - done) as u64 / done as u64;
                    eprintln!("[{done}/{total}] {}:{:02} so far, about {}:{:02} left", spent / 60, spent % 60, left / 60, left % 60);
                    match &r {
                        Ok(x) => eprintln!("[{done}/{total}] {}", progress_line(s, k, pass, x)),
                        Err(e) => eprintln!("[{done}/{total}] {} {} ({pass:?} pass): FAILED: {e:#}", s.label(), k.name()),
                    }
                    records.push(Record {
                        scenario: s.clone(),
                        label: s.label(),
                        broker: k,
                        repeat,
                        pass,
                        result: r.map_err(|e| format!("{e:#}")),
                    });
                    // Let the broker close the connections before the next run.
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
            std::fs::write(results.join("runs.json"), serde_json::to_string_pretty(&records)?)?;
        }
        // Memory kept after the load, once the connections are gone.
        std::thread::sleep(Duration::from_secs(3));
        let tls: Vec<String> = report::summarize(&records)
            .iter()
            .filter_map(|((_, k), s)| s.tls.as_ref().map(|t| format!("{}: {t}", k.name())))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        report.push_str(&format!(
            "\n### Device → device through each broker (median of {} runs; {} s measured after {} s warm-up)\n\n\
             Clients write each packet as it is produced unless a row says `batched writes`. \
             Loss: deliveries owed (QoS 0: messages written; QoS 1: messages PUBACKed; × subscribers) and not received, summed over the runs. \
             {}\n\nNegotiated TLS: {}.\n\n",
            a.repeats,
            a.duration,
            a.warmup,
            if a.perf_stat {
                "System calls and context switches come from a separate counting pass (one run per row with `perf stat` attached), never from the measured runs."
            } else {
                "No perf counters (run with --perf-stat for a separate counting pass)."
            },
            tls.join("; ")
        ));
        report.push_str(&idle_line);
        report.push('\n');
        report.push_str(&report::markdown(&records, &kinds));
        for k in [Kind::Ggcore, Kind::Mosquitto, Kind::Rumqttd] {
            if let Some(r) = running.get(k) {
                report.push_str(&format!(
                    "\n{} 3 s after the last run (no clients): VmRSS {} kB, VmHWM {} kB, {} threads.",
                    k.name(),
                    procfs::status_kb(r.pid(), "VmRSS").unwrap_or(0),
                    procfs::status_kb(r.pid(), "VmHWM").unwrap_or(0),
                    procfs::threads(r.pid())
                ));
            }
        }
        report.push('\n');
        for e in &running.events {
            report.push_str(&format!("\nNote: {e}."));
        }
        drop(running);
    }

    std::fs::write(
        results.join("results.json"),
        serde_json::to_string_pretty(&json!({
            "machine": machine,
            "versions": versions,
            "startup": startup,
            "summary": report::summarize(&records)
                .into_iter()
                .map(|((l, k), s)| json!({"scenario": l, "broker": k.name(), "summary": s}))
                .collect::<Vec<_>>(),
            "runs": records,
        }))?,
    )?;
    std::fs::write(results.join("results.md"), &report)?;
    println!("Machine: {machine}\nVersions: {versions}\n");
    println!("{report}");
    eprintln!("raw runs: {}", results.join("results.json").display());
    Ok(())
}

fn start_brokers(a: &Args, pki: &Pki, work: &Path, kinds: &[Kind]) -> Result<Brokers> {
    let mut b = Brokers { ggcore: None, mosquitto: None, rumqttd: None, events: Vec::new() };
    for k in kinds {
        match k {
            Kind::Ggcore => {
                let r = brokers::start_ggcore(&a.ggcore, &pki.root, &work.join("core.log"), &[])?;
                eprintln!("ggcore pid {} on {}", r.pid(), r.addr);
                b.ggcore = Some(r);
            }
            Kind::Mosquitto => {
                let r = brokers::start_mosquitto(&a.mosquitto, pki, &work.join("mosquitto"))?;
                eprintln!("mosquitto pid {} on {}", r.pid(), r.addr);
                b.mosquitto = Some(r);
            }
            Kind::Rumqttd => {
                let r = brokers::start_rumqttd(&a.rumqttd, pki, &work.join("rumqttd"))?;
                eprintln!("rumqttd pid {} on {}", r.pid(), r.addr);
                b.rumqttd = Some(r);
            }
        }
    }
    Ok(b)
}

/// One line per run on stderr: what it measured, labelled so that a
/// saturated run's latency is not mistaken for a latency figure and a counting
/// run's throughput is not mistaken for a measurement.
fn progress_line(s: &Scenario, k: Kind, pass: Pass, x: &LoadResult) -> String {
    let loss = format!(
        "lost {} of {} owed{}{}{}",
        x.lost,
        x.expected,
        if x.duplicates > 0 { format!(", {} dup", x.duplicates) } else { String::new() },
        if x.unacknowledged > 0 { format!(", {} never PUBACKed", x.unacknowledged) } else { String::new() },
        if x.cut_off.is_empty() { String::new() } else { format!(", cut off by the broker: {}", x.cut_off.join("; ")) }
    );
    let cpu = format!(
        "broker {} s/M  client {:.2} s/M  bg {:.2} cores",
        x.broker_cpu_s_per_million.map(|c| format!("{c:.2}")).unwrap_or_else(|| "—".into()),
        x.client_cpu_s_per_million,
        x.background_cores
    );
    let latency = match s.pace {
        Pace::Rate(_) => format!("latency p50 {:.0} µs p99 {:.0} µs", x.p50_us, x.p99_us),
        _ => format!("(through the window: p50 {:.0} µs p99 {:.0} µs)", x.p50_us, x.p99_us),
    };
    match pass {
        Pass::Measured => format!(
            "{} {:<10} {:>9.0} {}  published {:.0}/s  {loss}  {latency}  {cpu}",
            s.label(),
            k.name(),
            x.deliveries_per_sec,
            if matches!(s.topology, Topology::FanOut(n) if n > 1) { "deliveries/s" } else { "msg/s" },
            x.published_per_sec
        ),
        Pass::Counters => format!(
            "{} {:<10} counting pass (perf attached; not a measurement): {} syscalls, {} context switches per delivery; {loss}",
            s.label(),
            k.name(),
            x.broker_syscalls_per_msg.map(|v| format!("{v:.3}")).unwrap_or_else(|| "?".into()),
            x.broker_ctx_switches_per_msg.map(|v| format!("{v:.3}")).unwrap_or_else(|| "?".into()),
        ),
    }
}

fn run_one(a: &Args, pki: &Pki, work: &Path, running: &mut Brokers, kind: Kind, s: &Scenario, opts: &Options) -> Result<load::LoadResult> {
    // A broker that exited (crashed, or was killed from outside) is started again
    // and the event recorded.
    let exited = match running.slot(kind) {
        Some(r) => r.child.try_wait()?.map(|st| format!("{st}")),
        None => Some("not started".into()),
    };
    if let Some(status) = exited {
        let note = format!("{} had exited ({status}) before '{}'; started again", kind.name(), s.label());
        eprintln!("{note}");
        running.events.push(note);
        let fresh = match kind {
            Kind::Ggcore => brokers::start_ggcore(&a.ggcore, &pki.root, &work.join("core.log"), &[])?,
            Kind::Mosquitto => brokers::start_mosquitto(&a.mosquitto, pki, &work.join("mosquitto"))?,
            Kind::Rumqttd => brokers::start_rumqttd(&a.rumqttd, pki, &work.join("rumqttd"))?,
        };
        *running.slot(kind) = Some(fresh);
    }
    let r = running.get(kind).with_context(|| format!("{} not running", kind.name()))?;
    if kind == Kind::Ggcore {
        // Exactly the scenario's pairs are routed; nothing else.
        brokers::deploy(&a.ggcore, pki, work, s.topology)?;
    }
    let target = Target {
        addr: r.addr,
        server_name: "localhost".into(),
        ca: pki.group_ca.clone(),
        certs_dir: pki.devices.clone(),
        broker_pid: Some(r.pid()),
    };
    load::run_blocking(&target, s, opts)
}
