//! The queue alone, without MQTT: `Spool::append` + the group commit into a
//! RocksDB store, per `fsync` mode, for N concurrent publishers that each wait
//! until their message is settled (written as `fsync` asks) before the next,
//! and for one publisher that appends without waiting ("pipelined": the
//! committer's batches are as large as it likes).
//!
//! ```text
//! cargo run -p ggcore-benches --example spool -- DIR [SECONDS]
//! ```
//! DIR: where the RocksDB stores go (use the file system ggcore's state is on).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ggcore::cloud::spool::{Appended, Spool, SpoolSettings, Storage};
use ggcore::config::{Fsync, WhenFull};
use ggcore::store::{RocksStore, StateStore};

/// Messages per run at most: the queue keeps every message in memory too
/// (with per-entry overhead well above the bytes `maxSizeBytes` counts), and
/// `never` appends millions per second.
const MAX_MESSAGES: u64 = 1_000_000;

fn open(dir: &std::path::Path, fsync: Fsync) -> anyhow::Result<Arc<Spool>> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let store: Arc<dyn StateStore> = Arc::new(RocksStore::open(dir)?);
    let settings = SpoolSettings { storage: Storage::FileSystem, max_bytes: 4 << 30, fsync, when_full: WhenFull::DropOldest };
    Ok(Spool::open(Some(store), settings)?)
}

/// `publishers` tasks, each appending and waiting until settled; msg/s and
/// messages per commit.
fn one_at_a_time(spool: &Arc<Spool>, publishers: usize, payload: usize, seconds: f64) -> anyhow::Result<(f64, f64)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let c0 = spool.stats.commits.load(Ordering::Relaxed);
    let t0 = Instant::now();
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..publishers {
            let (spool, done, stop) = (spool.clone(), done.clone(), stop.clone());
            let topic: Arc<str> = Arc::from(format!("up/q-{i}").as_str());
            let source: Arc<str> = Arc::from("bench");
            let body = Bytes::from(vec![b'x'; payload]);
            set.spawn(async move {
                while !stop.load(Ordering::Relaxed) && done.load(Ordering::Relaxed) < MAX_MESSAGES {
                    match spool.append(&source, &topic, &body, true) {
                        Appended::Pending(t) => loop {
                            let notified = spool.settled_notify(t).notified();
                            tokio::pin!(notified);
                            notified.as_mut().enable();
                            if spool.is_settled(t) {
                                break;
                            }
                            notified.await;
                        },
                        Appended::Settled => {}
                        other => panic!("append: {other:?}"),
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        while Instant::now() < deadline && done.load(Ordering::Relaxed) < MAX_MESSAGES {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.store(true, Ordering::Relaxed);
        while set.join_next().await.is_some() {}
    });
    let secs = t0.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let commits = spool.stats.commits.load(Ordering::Relaxed) - c0;
    Ok((n as f64 / secs, n as f64 / commits.max(1) as f64))
}

/// One publisher appending `n` messages without waiting, then waiting for the last.
fn pipelined(spool: &Arc<Spool>, n: u64, payload: usize) -> (f64, f64) {
    let topic: Arc<str> = Arc::from("up/q-0");
    let source: Arc<str> = Arc::from("bench");
    let body = Bytes::from(vec![b'x'; payload]);
    let c0 = spool.stats.commits.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut last = 0;
    for _ in 0..n {
        if let Appended::Pending(t) = spool.append(&source, &topic, &body, true) {
            last = t;
        }
    }
    while !spool.is_settled(last) {
        std::thread::sleep(Duration::from_micros(200));
    }
    let secs = t0.elapsed().as_secs_f64();
    let commits = spool.stats.commits.load(Ordering::Relaxed) - c0;
    (n as f64 / secs, n as f64 / commits.max(1) as f64)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!("usage: spool DIR [SECONDS]"))?);
    let seconds: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2.0);
    println!("| fsync | payload | 1 publisher | 8 publishers | 64 publishers | pipelined (no wait) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, fsync) in [("always", Fsync::Always), ("batch", Fsync::Batch), ("never", Fsync::Never)] {
        for payload in [100usize, 4096] {
            let mut cells = Vec::new();
            for publishers in [1usize, 8, 64] {
                let spool = open(&dir.join("db"), fsync)?;
                let (rate, per_commit) = one_at_a_time(&spool, publishers, payload, seconds)?;
                spool.close();
                cells.push(format!("{:.1}k ({per_commit:.1}/commit)", rate / 1000.0));
            }
            let spool = open(&dir.join("db"), fsync)?;
            let n = if payload > 1000 { 50_000 } else { 200_000 };
            let (rate, per_commit) = pipelined(&spool, n, payload);
            spool.close();
            cells.push(format!("{:.1}k ({per_commit:.0}/commit)", rate / 1000.0));
            println!("| {name} | {payload} B | {} |", cells.join(" | "));
        }
    }
    let _ = std::fs::remove_dir_all(dir.join("db"));
    Ok(())
}
