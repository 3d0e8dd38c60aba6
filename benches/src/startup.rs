//! ggcore's idle memory and start-to-ready time (and, for context, the idle
//! memory of the peers as configured for the load runs).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use crate::brokers::{self, Kind};
use crate::procfs;
use crate::report::median;

/// The brokers' executables, and how many warm starts of ggcore to time.
pub struct Binaries {
    pub ggcore: PathBuf,
    pub mosquitto: PathBuf,
    pub rumqttd: PathBuf,
    pub starts: usize,
}

/// Idle RSS and start-to-ready of ggcore (and, for context, the idle RSS of the
/// peers as configured here).
pub fn measure(a: &Binaries, work: &Path, kinds: &[Kind]) -> Result<serde_json::Value> {
    let root = work.join("demo-root");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    let log = work.join("core-demo.log");
    // First start: bootstraps the embedded demo (CAs, server and device keys).
    let first = brokers::start_ggcore(&a.ggcore, &root, &log, &[("GGCORE_MQTT_PORT", "0")])?;
    let cold_ms = first.ready_after.as_secs_f64() * 1000.0;
    std::thread::sleep(Duration::from_secs(3));
    let idle_first = procfs::status_kb(first.pid(), "VmRSS")?;
    first.stop()?;

    // Warm starts on the same root.
    let mut ready_ms = Vec::new();
    let mut self_ms = Vec::new();
    let mut rss = Vec::new();
    let mut hwm = Vec::new();
    let mut threads = Vec::new();
    let mut tree_rss = Vec::new();
    let mut rss_anon = Vec::new();
    let mut rss_file = Vec::new();
    let mut children = Vec::new();
    let mut exits = Vec::new();
    for _ in 0..a.starts {
        let r = brokers::start_ggcore(&a.ggcore, &root, &log, &[("GGCORE_MQTT_PORT", "0")])?;
        ready_ms.push(r.ready_after.as_secs_f64() * 1000.0);
        // startup_ms= as the core itself reports it on the ready line.
        if let Some(v) = std::fs::read_to_string(&log).ok().and_then(|s| {
            s.lines()
                .rev()
                .find(|l| l.contains("ggcore ready"))
                .and_then(|l| l.split("startup_ms=").nth(1))
                .and_then(|v| v.chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse::<f64>().ok())
        }) {
            self_ms.push(v);
        }
        std::thread::sleep(Duration::from_secs(2));
        rss.push(procfs::status_kb(r.pid(), "VmRSS")? as f64);
        hwm.push(procfs::status_kb(r.pid(), "VmHWM")? as f64);
        rss_anon.push(procfs::status_kb(r.pid(), "RssAnon")? as f64);
        rss_file.push(procfs::status_kb(r.pid(), "RssFile")? as f64);
        threads.push(procfs::threads(r.pid()) as f64);
        // Function workers and the like, started by the core.
        let kids = procfs::descendants(r.pid());
        tree_rss.push(
            (procfs::status_kb(r.pid(), "VmRSS")? + kids.iter().filter_map(|k| procfs::status_kb(*k, "VmRSS").ok()).sum::<u64>()) as f64,
        );
        children.push(kids.len() as f64);
        let t = Instant::now();
        let code = r.stop()?;
        exits.push(json!({"code": code, "stop_ms": t.elapsed().as_secs_f64() * 1000.0}));
    }

    // Peers, idle, as configured for the load runs.
    let mut peers = serde_json::Map::new();
    let pki_needed = kinds.iter().any(|k| *k != Kind::Ggcore);
    if pki_needed {
        let pki = brokers::prepare_pki(&a.ggcore, work, &[])?;
        for k in kinds.iter().filter(|k| **k != Kind::Ggcore) {
            let r = match k {
                Kind::Mosquitto => brokers::start_mosquitto(&a.mosquitto, &pki, &work.join("mosquitto")),
                Kind::Rumqttd => brokers::start_rumqttd(&a.rumqttd, &pki, &work.join("rumqttd")),
                Kind::Ggcore => unreachable!(),
            };
            match r {
                Ok(r) => {
                    std::thread::sleep(Duration::from_secs(2));
                    peers.insert(
                        k.name().into(),
                        json!({
                            "idle_rss_kb": procfs::status_kb(r.pid(), "VmRSS")?,
                            "threads": procfs::threads(r.pid()),
                            "listening_after_ms": r.ready_after.as_secs_f64() * 1000.0,
                        }),
                    );
                    r.stop()?;
                }
                Err(e) => {
                    peers.insert(k.name().into(), json!({"error": format!("{e:#}")}));
                }
            }
        }
    }
    Ok(json!({
        "cold_bootstrap_ready_ms": cold_ms,
        "idle_rss_kb_after_bootstrap": idle_first,
        "starts": a.starts,
        "warm_ready_ms": ready_ms,
        "warm_ready_ms_median": median(ready_ms.clone()),
        "self_reported_startup_ms_median": median(self_ms.clone()),
        "idle_rss_kb": rss,
        "idle_rss_kb_median": median(rss.clone()),
        "idle_hwm_kb_median": median(hwm.clone()),
        "idle_rss_anon_kb_median": median(rss_anon.clone()),
        "idle_rss_file_kb_median": median(rss_file.clone()),
        "threads_median": median(threads.clone()),
        "tree_rss_kb_median": median(tree_rss.clone()),
        "children_median": median(children.clone()),
        "stops": exits,
        "peers": peers,
    }))
}

/// The table of `BENCHMARKS.md` from [`measure`]'s figures.
pub fn markdown(s: &serde_json::Value) -> String {
    let f = |v: &serde_json::Value| v.as_f64().map(|x| format!("{x:.1}")).unwrap_or("—".into());
    let mb = |v: &serde_json::Value| v.as_f64().map(|x| format!("{:.1} MB ({x:.0} kB)", x / 1024.0)).unwrap_or("—".into());
    let mut out = String::new();
    out.push_str("### ggcore idle memory and start-to-ready\n\n");
    out.push_str("| measure | value |\n|---|---:|\n");
    out.push_str(&format!(
        "| idle VmRSS, demo group, no clients (median of {} warm starts, 2 s after ready) | {} |\n",
        s["starts"],
        mb(&s["idle_rss_kb_median"])
    ));
    out.push_str(&format!(
        "| of which anonymous (heap, stacks) / file-backed (mapped binary and libraries) | {} / {} |\n",
        mb(&s["idle_rss_anon_kb_median"]),
        mb(&s["idle_rss_file_kb_median"])
    ));
    out.push_str(&format!("| idle VmHWM (peak RSS) over the same starts | {} |\n", mb(&s["idle_hwm_kb_median"])));
    out.push_str(&format!(
        "| idle VmRSS right after bootstrapping the empty root (3 s after ready) | {} |\n",
        mb(&s["idle_rss_kb_after_bootstrap"])
    ));
    out.push_str(&format!("| threads when idle | {} |\n", f(&s["threads_median"])));
    out.push_str(&format!(
        "| processes the core started (function workers), and VmRSS of core + them | {} / {} |\n",
        f(&s["children_median"]),
        mb(&s["tree_rss_kb_median"])
    ));
    out.push_str(&format!(
        "| start → `ggcore ready` line, warm root (median of {}; spawn to line read) | {} ms |\n",
        s["starts"],
        f(&s["warm_ready_ms_median"])
    ));
    out.push_str(&format!(
        "| same, as the core reports it (`startup_ms=` on the ready line) | {} ms |\n",
        f(&s["self_reported_startup_ms_median"])
    ));
    out.push_str(&format!(
        "| first start on an empty root (bootstraps the demo: CA and device keys) | {} ms |\n",
        f(&s["cold_bootstrap_ready_ms"])
    ));
    if let Some(p) = s["peers"].as_object() {
        for (k, v) in p {
            out.push_str(&format!("| {k} idle VmRSS (bench config, no clients), for context | {} |\n", mb(&v["idle_rss_kb"])));
        }
    }
    out.push_str(&format!(
        "\nWarm start-to-ready, each start (ms): {}.\n",
        s["warm_ready_ms"]
            .as_array()
            .map(|v| v.iter().map(|x| format!("{:.1}", x.as_f64().unwrap_or(0.0))).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    ));
    out
}
