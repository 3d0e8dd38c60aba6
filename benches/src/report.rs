//! Medians over repeats and the markdown tables.
//!
//! Which run feeds which table:
//! - throughput (deliveries/s, with every broker's loss): the measured runs
//!   paced by the window or flat out, in three separate tables — per-packet
//!   writes (the headline), flat out, and batched writes;
//! - latency (p50/p99): only the runs at a fixed offered rate; a saturated
//!   run's latency is the wait behind the window (it restates throughput) and
//!   is left out of the tables (it stays in the JSON, named as such);
//! - CPU per million deliveries and cores in use: every measured run;
//! - system calls and context switches: only the counting pass (`perf stat`
//!   attached), whose runs are in no other table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::brokers::Kind;
use crate::load::{LoadResult, Pace, Scenario, Writes};

/// Which pass a run belongs to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pass {
    /// Throughput, latency, CPU: nothing attached to the broker.
    #[default]
    Measured,
    /// `perf stat` attached: only its counters are reported.
    Counters,
}

/// One run of one scenario against one broker.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub scenario: Scenario,
    pub label: String,
    pub broker: Kind,
    pub repeat: usize,
    pub pass: Pass,
    pub result: Result<LoadResult, String>,
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// One (scenario, broker): medians over its successful measured runs, sums of
/// the delivery accounting over them, and the counters of its counting runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub runs: usize,
    pub failures: Vec<String>,
    pub deliveries_per_sec: Option<f64>,
    pub published_per_sec: Option<f64>,
    /// At a fixed offered rate: latency. Otherwise latency through the window.
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub broker_cpu_per_m: Option<f64>,
    pub client_cpu_per_m: Option<f64>,
    /// Over all measured runs: deliveries owed, lost, received twice, received
    /// out of order; QoS 1 messages never acknowledged (not owed).
    pub expected: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub unacknowledged: u64,
    /// Clients whose connection the broker closed, over the measured runs.
    pub cut_off: u64,
    pub tls: Option<String>,
    pub broker_cores: Option<f64>,
    pub client_cores: Option<f64>,
    /// Highest background load (cores used by other processes) of the runs.
    pub max_background_cores: f64,
    /// From the counting pass only.
    pub counting_runs: usize,
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
            let ok =
                |pass: Pass| -> Vec<&LoadResult> { rs.iter().filter(|r| r.pass == pass).filter_map(|r| r.result.as_ref().ok()).collect() };
            let (measured, counting) = (ok(Pass::Measured), ok(Pass::Counters));
            let m = |f: &dyn Fn(&LoadResult) -> Option<f64>| median(measured.iter().filter_map(|r| f(r)).collect());
            let c = |f: &dyn Fn(&LoadResult) -> Option<f64>| median(counting.iter().filter_map(|r| f(r)).collect());
            let sum = |f: &dyn Fn(&LoadResult) -> u64| measured.iter().map(|r| f(r)).sum::<u64>();
            let s = Summary {
                runs: measured.len(),
                failures: rs.iter().filter_map(|r| r.result.as_ref().err().map(|e| format!("{:?} pass: {e}", r.pass))).collect(),
                deliveries_per_sec: m(&|r| Some(r.deliveries_per_sec)),
                published_per_sec: m(&|r| Some(r.published_per_sec)),
                p50_us: m(&|r| Some(r.p50_us)),
                p99_us: m(&|r| Some(r.p99_us)),
                broker_cpu_per_m: m(&|r| r.broker_cpu_s_per_million),
                client_cpu_per_m: m(&|r| Some(r.client_cpu_s_per_million)),
                expected: sum(&|r| r.expected),
                lost: sum(&|r| r.lost),
                duplicates: sum(&|r| r.duplicates),
                out_of_order: sum(&|r| r.out_of_order),
                unacknowledged: sum(&|r| r.unacknowledged),
                cut_off: sum(&|r| r.cut_off.len() as u64),
                tls: measured.first().or(counting.first()).map(|r| r.tls.clone()),
                broker_cores: m(&|r| r.broker_cores),
                client_cores: m(&|r| Some(r.client_cores)),
                max_background_cores: measured.iter().map(|r| r.background_cores).fold(0.0, f64::max),
                counting_runs: counting.len(),
                syscalls_per_msg: c(&|r| r.broker_syscalls_per_msg),
                ctx_switches_per_msg: c(&|r| r.broker_ctx_switches_per_msg),
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

/// A count in k/M, exact below 10,000.
fn count(n: u64) -> String {
    match n {
        0..10_000 => n.to_string(),
        10_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.2}M", n as f64 / 1e6),
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

/// `lost of owed` over the measured runs, with duplicates, reordering and
/// unacknowledged QoS 1 messages when there were any; `—` without a run.
fn loss(s: &Summary) -> String {
    if s.runs == 0 {
        return "—".to_string();
    }
    let mut out = format!("{} of {}", s.lost, count(s.expected));
    for (n, what) in
        [(s.duplicates, "dup"), (s.out_of_order, "reordered"), (s.unacknowledged, "never PUBACKed"), (s.cut_off, "cut off by the broker")]
    {
        if n > 0 {
            let _ = write!(out, ", {n} {what}");
        }
    }
    out
}

/// Which table a scenario's throughput belongs to (`None`: a latency run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    PerPacket,
    FlatOut,
    Batched,
}

fn section(s: &Scenario) -> Option<Section> {
    match (s.pace, s.writes) {
        (Pace::Rate(_), _) => None,
        (Pace::FlatOut, _) => Some(Section::FlatOut),
        (Pace::Window, Writes::PerPacket) => Some(Section::PerPacket),
        (Pace::Window, Writes::Batched) => Some(Section::Batched),
    }
}

struct Tables<'a> {
    sums: BTreeMap<(String, Kind), Summary>,
    /// Labels in the order they were run, with their scenario.
    rows: Vec<(String, &'a Scenario)>,
    brokers: &'a [Kind],
    peers: Vec<Kind>,
    has_gg: bool,
}

impl Tables<'_> {
    fn get(&self, l: &str, k: Kind) -> Summary {
        self.sums.get(&(l.to_string(), k)).cloned().unwrap_or_default()
    }

    fn ratio_header(&self, out: &mut String, prefix: &str) {
        if self.has_gg {
            for p in &self.peers {
                let _ = write!(out, " {prefix}ggcore/{} |", p.name());
            }
        }
    }

    fn ratio_cells(&self, out: &mut String, l: &str, f: fn(&Summary) -> Option<f64>) {
        if self.has_gg {
            for p in &self.peers {
                let _ = write!(out, " {} |", ratio(f(&self.get(l, Kind::Ggcore)), f(&self.get(l, *p))));
            }
        }
    }

    fn ratio_cols(&self) -> usize {
        if self.has_gg {
            self.peers.len()
        } else {
            0
        }
    }

    fn throughput(&self, out: &mut String, which: Section) {
        let rows: Vec<&(String, &Scenario)> = self.rows.iter().filter(|(_, s)| section(s) == Some(which)).collect();
        if rows.is_empty() {
            return;
        }
        let title = match which {
            Section::PerPacket => "Throughput, each packet its own write (as paho and the AWS device SDKs write)",
            Section::FlatOut => "Throughput flat out: no end-to-end window, each packet its own write (QoS 1: in-flight limit only)",
            Section::Batched => "Throughput with batched writes (up to 64 KiB of PUBLISH packets per write; no device writes this way)",
        };
        let _ = writeln!(out, "\n#### {title}\n");
        let _ = write!(out, "| scenario | counted |");
        for k in self.brokers {
            let _ = write!(out, " {} |", k.name());
        }
        self.ratio_header(out, "");
        for k in self.brokers {
            let _ = write!(out, " {} lost |", k.name());
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "|---|---|{}{}", "---:|".repeat(self.brokers.len() + self.ratio_cols()), "---:|".repeat(self.brokers.len()));
        for (l, s) in rows {
            let _ = write!(out, "| {l} | {} |", s.counted());
            for k in self.brokers {
                let _ = write!(out, " {} |", num(self.get(l, *k).deliveries_per_sec));
            }
            self.ratio_cells(out, l, |s| s.deliveries_per_sec);
            for k in self.brokers {
                let _ = write!(out, " {} |", loss(&self.get(l, *k)));
            }
            let _ = writeln!(out);
        }
    }

    fn latency(&self, out: &mut String) {
        let rows: Vec<&(String, &Scenario)> = self.rows.iter().filter(|(_, s)| section(s).is_none()).collect();
        if rows.is_empty() {
            return;
        }
        let names = self.brokers.iter().map(|k| k.name()).collect::<Vec<_>>().join(" / ");
        let _ =
            writeln!(out, "\n#### Latency at fixed offered rates (publish → receive; `@ N/s`: messages published per second in total)\n");
        let _ = write!(out, "| scenario |");
        for k in self.brokers {
            let _ = write!(out, " {} p50 / p99 ms |", k.name());
        }
        self.ratio_header(out, "p99 ");
        let _ = writeln!(out, " delivered/s ({names}) | lost ({names}) |");
        let _ = writeln!(out, "|---|{}---:|---:|", "---:|".repeat(self.brokers.len() + self.ratio_cols()));
        for (l, _) in rows {
            let _ = write!(out, "| {l} |");
            for k in self.brokers {
                let _ = write!(out, " {} |", lat(&self.get(l, *k)));
            }
            self.ratio_cells(out, l, |s| s.p99_us);
            let rates: Vec<String> = self.brokers.iter().map(|k| num(self.get(l, *k).deliveries_per_sec)).collect();
            let losses: Vec<String> = self.brokers.iter().map(|k| loss(&self.get(l, *k))).collect();
            let _ = writeln!(out, " {} | {} |", rates.join(" / "), losses.join(" / "));
        }
    }

    fn cpu(&self, out: &mut String) {
        let names = self.brokers.iter().map(|k| k.name()).collect::<Vec<_>>().join(" / ");
        let _ = writeln!(out, "\n#### Broker CPU-seconds per million deliveries (every measured scenario)\n");
        let _ = write!(out, "| scenario |");
        for k in self.brokers {
            let _ = write!(out, " {} |", k.name());
        }
        self.ratio_header(out, "");
        let _ = writeln!(out, " client CPU-s/M ({names}) |");
        let _ = writeln!(out, "|---|{}---:|", "---:|".repeat(self.brokers.len() + self.ratio_cols()));
        for (l, _) in &self.rows {
            let _ = write!(out, "| {l} |");
            for k in self.brokers {
                let _ = write!(out, " {} |", num(self.get(l, *k).broker_cpu_per_m));
            }
            self.ratio_cells(out, l, |s| s.broker_cpu_per_m);
            let clients: Vec<String> = self.brokers.iter().map(|k| num(self.get(l, *k).client_cpu_per_m)).collect();
            let _ = writeln!(out, " {} |", clients.join(" / "));
        }
    }

    fn cores(&self, out: &mut String) {
        let _ = writeln!(out, "\n#### Cores in use inside the window: broker + harness\n");
        let _ = write!(out, "| scenario |");
        for k in self.brokers {
            let _ = write!(out, " {} |", k.name());
        }
        let _ = writeln!(out, " most background cores in any run |");
        let _ = writeln!(out, "|---|{}---:|", "---:|".repeat(self.brokers.len()));
        for (l, _) in &self.rows {
            let _ = write!(out, "| {l} |");
            for k in self.brokers {
                let s = self.get(l, *k);
                let c = |x: Option<f64>| x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "—".into());
                let _ = write!(out, " {} + {} |", c(s.broker_cores), c(s.client_cores));
            }
            let bg = self.brokers.iter().map(|k| self.get(l, *k).max_background_cores).fold(0.0, f64::max);
            let _ = writeln!(out, " {bg:.2} |");
        }
    }

    fn counters(&self, out: &mut String) {
        if !self.sums.values().any(|s| s.counting_runs > 0) {
            return;
        }
        let _ = writeln!(
            out,
            "\n#### Broker system calls / context switches per delivery (separate counting pass, `perf stat` attached; none of these runs is in the tables above)\n"
        );
        let _ = write!(out, "| scenario |");
        for k in self.brokers {
            let _ = write!(out, " {} |", k.name());
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "|---|{}", "---:|".repeat(self.brokers.len()));
        for (l, _) in &self.rows {
            if !self.brokers.iter().any(|k| self.get(l, *k).counting_runs > 0) {
                continue;
            }
            let _ = write!(out, "| {l} |");
            for k in self.brokers {
                let s = self.get(l, *k);
                let c = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "—".into());
                let _ = write!(out, " {} / {} |", c(s.syscalls_per_msg), c(s.ctx_switches_per_msg));
            }
            let _ = writeln!(out);
        }
    }
}

/// Every table, with ratios of ggcore to each peer measured in the same run.
pub fn markdown(records: &[Record], brokers: &[Kind]) -> String {
    let mut rows: Vec<(String, &Scenario)> = Vec::new();
    for r in records {
        if !rows.iter().any(|(l, _)| *l == r.label) {
            rows.push((r.label.clone(), &r.scenario));
        }
    }
    let t = Tables {
        sums: summarize(records),
        rows,
        brokers,
        peers: brokers.iter().copied().filter(|k| *k != Kind::Ggcore).collect(),
        has_gg: brokers.contains(&Kind::Ggcore),
    };
    let mut out = String::new();
    t.throughput(&mut out, Section::PerPacket);
    t.throughput(&mut out, Section::FlatOut);
    t.throughput(&mut out, Section::Batched);
    t.latency(&mut out);
    t.cpu(&mut out);
    t.cores(&mut out);
    t.counters(&mut out);
    let failures: Vec<String> =
        t.sums.iter().flat_map(|((l, k), s)| s.failures.iter().map(move |f| format!("- {l}, {}: {f}", k.name()))).collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\nFailed runs (not in the medians):\n");
        for f in failures {
            let _ = writeln!(out, "{f}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Topology;

    fn result(rate: f64, lost: u64, perf: bool) -> LoadResult {
        LoadResult {
            delivered: 1000,
            seconds: 1.0,
            deliveries_per_sec: rate,
            published_per_sec: rate,
            p50_us: 100.0,
            p99_us: 900.0,
            max_us: 1000.0,
            sent: 2000,
            accepted: 2000,
            unacknowledged: 0,
            expected: 2000,
            received: 2000 - lost,
            lost,
            duplicates: 0,
            out_of_order: 0,
            stray_pubacks: 0,
            cut_off: Vec::new(),
            drain_seconds: 0.0,
            broker_cpu_s: Some(0.5),
            broker_cpu_s_per_million: Some(500.0),
            client_cpu_s: 0.5,
            client_cpu_s_per_million: 500.0,
            broker_cores: Some(0.5),
            client_cores: 0.5,
            background_cores: 0.0,
            perf_attached: perf,
            broker_syscalls_per_msg: perf.then_some(2.5),
            broker_ctx_switches_per_msg: perf.then_some(0.1),
            tls: "TLSv1_3".into(),
        }
    }

    fn record(s: &Scenario, broker: Kind, pass: Pass, r: LoadResult) -> Record {
        Record { scenario: s.clone(), label: s.label(), broker, repeat: 0, pass, result: Ok(r) }
    }

    fn scenario(topology: Topology, pace: Pace, writes: Writes) -> Scenario {
        Scenario { topology, payload: 128, qos: 0, pace, writes }
    }

    #[test]
    fn tables_keep_passes_and_kinds_of_run_apart() {
        let pairs = scenario(Topology::Pairs(1), Pace::Window, Writes::PerPacket);
        let batched = scenario(Topology::Pairs(1), Pace::Window, Writes::Batched);
        let fanout = scenario(Topology::FanOut(100), Pace::Window, Writes::PerPacket);
        let paced = scenario(Topology::Pairs(1), Pace::Rate(1000), Writes::PerPacket);
        let brokers = [Kind::Ggcore, Kind::Mosquitto];
        let mut rs = Vec::new();
        for k in brokers {
            rs.push(record(&pairs, k, Pass::Measured, result(200_000.0, if k == Kind::Mosquitto { 7 } else { 0 }, false)));
            rs.push(record(&batched, k, Pass::Measured, result(900_000.0, 0, false)));
            rs.push(record(&fanout, k, Pass::Measured, result(3_000_000.0, 0, false)));
            rs.push(record(&paced, k, Pass::Measured, result(1000.0, 0, false)));
            // A counting run: far slower, and it must not move the throughput.
            rs.push(record(&pairs, k, Pass::Counters, result(1.0, 0, true)));
        }
        let md = markdown(&rs, &brokers);
        let sums = summarize(&rs);
        let s = &sums[&(pairs.label(), Kind::Ggcore)];
        assert_eq!((s.runs, s.counting_runs, s.deliveries_per_sec, s.syscalls_per_msg), (1, 1, Some(200_000.0), Some(2.5)));

        let section_of = |line: &str| md[..md.find(line).unwrap()].rfind("#### ").map(|at| md[at..].lines().next().unwrap().to_string());
        let pair_row = md.lines().find(|l| l.starts_with("| 1→1 128 B QoS 0 | ")).unwrap();
        assert!(section_of(pair_row).unwrap().contains("each packet its own write"), "{md}");
        // Loss for every broker, computed (mosquitto lost 7 of 2000).
        assert!(pair_row.contains("| 0 of 2000 |") && pair_row.contains("| 7 of 2000 |"), "{pair_row}");
        let batched_row = md.lines().find(|l| l.starts_with("| 1→1 128 B QoS 0, batched writes | messages")).unwrap();
        assert!(section_of(batched_row).unwrap().contains("batched writes"), "{md}");
        let fan_row = md.lines().find(|l| l.starts_with("| 1→100 fan-out 128 B QoS 0 | ")).unwrap();
        assert!(fan_row.contains("deliveries/s (100 per message published)"), "{fan_row}");
        // Latency only from the paced run.
        let lat_header = md.find("#### Latency at fixed offered rates").unwrap();
        let lat_table = md[lat_header..].split("\n\n").nth(1).unwrap();
        assert!(lat_table.contains("| 1→1 128 B QoS 0 @ 1000/s | 0.10 / 0.90 |"), "{lat_table}");
        assert_eq!(lat_table.lines().count(), 3, "{lat_table}");
        assert!(md.contains("separate counting pass"));
    }

    #[test]
    fn loss_cells_name_what_happened() {
        let mut s = Summary { runs: 3, expected: 15_000_000, lost: 12, duplicates: 2, ..Default::default() };
        assert_eq!(loss(&s), "12 of 15.00M, 2 dup");
        s.cut_off = 1;
        assert_eq!(loss(&s), "12 of 15.00M, 2 dup, 1 cut off by the broker");
        s.runs = 0;
        assert_eq!(loss(&s), "—");
        assert_eq!(count(9_999), "9999");
        assert_eq!(count(52_100), "52.1k");
    }
}
