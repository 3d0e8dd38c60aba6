//! Medians over repeats and the markdown tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::brokers::Kind;
use crate::load::{LoadResult, Scenario};

/// One run of one scenario against one broker.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub scenario: Scenario,
    pub label: String,
    pub broker: Kind,
    pub repeat: usize,
    pub result: Result<LoadResult, String>,
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Medians of one (scenario, broker) over its successful repeats.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub runs: usize,
    pub failures: Vec<String>,
    pub msgs_per_sec: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub broker_cpu_per_m: Option<f64>,
    pub client_cpu_per_m: Option<f64>,
    /// Worst loss over the repeats, as a fraction of expected deliveries.
    pub worst_loss: f64,
    pub tls: Option<String>,
    pub broker_cores: Option<f64>,
    pub client_cores: Option<f64>,
    /// Highest background load (cores used by other processes) of the runs.
    pub max_background_cores: f64,
    pub syscalls_per_msg: Option<f64>,
    pub ctx_switches_per_msg: Option<f64>,
}

pub fn summarize(records: &[Record]) -> BTreeMap<(String, Kind), Summary> {
    let mut groups: BTreeMap<(String, Kind), Vec<&Record>> = BTreeMap::new();
    for r in records {
        groups.entry((r.label.clone(), r.broker)).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|(k, rs)| {
            let ok: Vec<&LoadResult> = rs.iter().filter_map(|r| r.result.as_ref().ok()).collect();
            let m = |f: &dyn Fn(&LoadResult) -> Option<f64>| median(ok.iter().filter_map(|r| f(r)).collect());
            let s = Summary {
                runs: ok.len(),
                failures: rs.iter().filter_map(|r| r.result.as_ref().err().cloned()).collect(),
                msgs_per_sec: m(&|r| Some(r.msgs_per_sec)),
                p50_us: m(&|r| Some(r.p50_us)),
                p99_us: m(&|r| Some(r.p99_us)),
                broker_cpu_per_m: m(&|r| r.broker_cpu_s_per_million),
                client_cpu_per_m: m(&|r| Some(r.client_cpu_s_per_million)),
                worst_loss: ok.iter().map(|r| if r.expected == 0 { 0.0 } else { r.lost as f64 / r.expected as f64 }).fold(0.0, f64::max),
                tls: ok.first().map(|r| r.tls.clone()),
                broker_cores: m(&|r| r.broker_cores),
                client_cores: m(&|r| Some(r.client_cores)),
                syscalls_per_msg: m(&|r| r.broker_syscalls_per_msg),
                ctx_switches_per_msg: m(&|r| r.broker_ctx_switches_per_msg),
                max_background_cores: ok.iter().map(|r| r.background_cores).fold(0.0, f64::max),
            };
            (k, s)
        })
        .collect()
}

fn num(x: Option<f64>) -> String {
    match x {
        None => "—".to_string(),
        Some(v) if v >= 100_000.0 => format!("{:.0}k", v / 1000.0),
        Some(v) if v >= 10_000.0 => format!("{:.1}k", v / 1000.0),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".to_string(),
    }
}

fn lat(s: &Summary) -> String {
    match (s.p50_us, s.p99_us) {
        (Some(a), Some(b)) => format!("{} / {}", ms(a), ms(b)),
        _ => "—".to_string(),
    }
}

/// Microseconds shown as ms with sensible precision.
fn ms(us: f64) -> String {
    let m = us / 1000.0;
    if m >= 100.0 {
        format!("{m:.0}")
    } else if m >= 10.0 {
        format!("{m:.1}")
    } else {
        format!("{m:.2}")
    }
}

/// The three tables (throughput, latency, CPU) with ratios of ggcore to each
/// peer measured in the same run.
pub fn markdown(records: &[Record], brokers: &[Kind]) -> String {
    let sums = summarize(records);
    let mut labels: Vec<String> = Vec::new();
    for r in records {
        if !labels.contains(&r.label) {
            labels.push(r.label.clone());
        }
    }
    let get = |l: &str, k: Kind| sums.get(&(l.to_string(), k)).cloned().unwrap_or_default();
    let peers: Vec<Kind> = brokers.iter().copied().filter(|k| *k != Kind::Ggcore).collect();
    let has_gg = brokers.contains(&Kind::Ggcore);
    let mut out = String::new();

    // Throughput.
    let _ = write!(out, "| scenario |");
    for k in brokers {
        let _ = write!(out, " {} msg/s |", k.name());
    }
    if has_gg {
        for p in &peers {
            let _ = write!(out, " ggcore/{} |", p.name());
        }
    }
    let _ = writeln!(out, " worst loss |");
    let _ = writeln!(out, "|---|{}{}---|", "---:|".repeat(brokers.len()), if has_gg { "---:|".repeat(peers.len()) } else { String::new() });
    for l in &labels {
        let _ = write!(out, "| {l} |");
        for k in brokers {
            let _ = write!(out, " {} |", num(get(l, *k).msgs_per_sec));
        }
        if has_gg {
            for p in &peers {
                let _ = write!(out, " {} |", ratio(get(l, Kind::Ggcore).msgs_per_sec, get(l, *p).msgs_per_sec));
            }
        }
        let losses: Vec<String> = brokers
            .iter()
            .map(|k| {
                let s = get(l, *k);
                if s.worst_loss > 0.0 {
                    format!("{} {:.2}%", k.name(), s.worst_loss * 100.0)
                } else {
                    String::new()
                }
            })
            .filter(|s| !s.is_empty())
            .collect();
        let _ = writeln!(out, " {} |", if losses.is_empty() { "0".to_string() } else { losses.join(", ") });
    }

    // Latency.
    let _ = writeln!(out);
    let _ = write!(out, "| scenario |");
    for k in brokers {
        let _ = write!(out, " {} p50 / p99 ms |", k.name());
    }
    if has_gg {
        for p in &peers {
            let _ = write!(out, " p99 ggcore/{} |", p.name());
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "|---|{}{}", "---:|".repeat(brokers.len()), if has_gg { "---:|".repeat(peers.len()) } else { String::new() });
    for l in &labels {
        let _ = write!(out, "| {l} |");
        for k in brokers {
            let _ = write!(out, " {} |", lat(&get(l, *k)));
        }
        if has_gg {
            for p in &peers {
                let _ = write!(out, " {} |", ratio(get(l, Kind::Ggcore).p99_us, get(l, *p).p99_us));
            }
        }
        let _ = writeln!(out);
    }

    // CPU.
    let _ = writeln!(out);
    let _ = write!(out, "| scenario |");
    for k in brokers {
        let _ = write!(out, " {} CPU-s/M |", k.name());
    }
    if has_gg {
        for p in &peers {
            let _ = write!(out, " ggcore/{} |", p.name());
        }
    }
    let _ = write!(out, " client CPU-s/M ({}) |", brokers.iter().map(|k| k.name()).collect::<Vec<_>>().join(" / "));
    let _ = writeln!(out);
    let _ =
        writeln!(out, "|---|{}{}---:|", "---:|".repeat(brokers.len()), if has_gg { "---:|".repeat(peers.len()) } else { String::new() });
    for l in &labels {
        let _ = write!(out, "| {l} |");
        for k in brokers {
            let _ = write!(out, " {} |", num(get(l, *k).broker_cpu_per_m));
        }
        if has_gg {
            for p in &peers {
                let _ = write!(out, " {} |", ratio(get(l, Kind::Ggcore).broker_cpu_per_m, get(l, *p).broker_cpu_per_m));
            }
        }
        let clients: Vec<String> = brokers.iter().map(|k| num(get(l, *k).client_cpu_per_m)).collect();
        let _ = writeln!(out, " {} |", clients.join(" / "));
    }

    // Cores in use.
    let _ = writeln!(out);
    let _ = write!(out, "| scenario |");
    for k in brokers {
        let _ = write!(out, " {}: broker + harness cores |", k.name());
    }
    let _ = writeln!(out, " most background cores in any run |");
    let _ = writeln!(out, "|---|{}---:|", "---:|".repeat(brokers.len()));
    for l in &labels {
        let _ = write!(out, "| {l} |");
        for k in brokers {
            let s = get(l, *k);
            let c = |x: Option<f64>| x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "—".into());
            let _ = write!(out, " {} + {} |", c(s.broker_cores), c(s.client_cores));
        }
        let bg = brokers.iter().map(|k| get(l, *k).max_background_cores).fold(0.0, f64::max);
        let _ = writeln!(out, " {bg:.2} |");
    }

    // System calls and context switches (only with --perf-stat).
    if sums.values().any(|s| s.syscalls_per_msg.is_some()) {
        let _ = writeln!(out);
        let _ = write!(out, "| scenario |");
        for k in brokers {
            let _ = write!(out, " {}: syscalls / ctx switches per msg |", k.name());
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "|---|{}", "---:|".repeat(brokers.len()));
        for l in &labels {
            let _ = write!(out, "| {l} |");
            for k in brokers {
                let s = get(l, *k);
                let c = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "—".into());
                let _ = write!(out, " {} / {} |", c(s.syscalls_per_msg), c(s.ctx_switches_per_msg));
            }
            let _ = writeln!(out);
        }
    }

    let failures: Vec<String> =
        sums.iter().flat_map(|((l, k), s)| s.failures.iter().map(move |f| format!("- {l}, {}: {f}", k.name()))).collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\nFailed runs (not in the medians):\n");
        for f in failures {
            let _ = writeln!(out, "{f}");
        }
    }
    out
}
