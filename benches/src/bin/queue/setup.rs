//! The brokers of the queue benchmarks, all on the certificates of the load
//! suite's PKI (`brokers::prepare_pki`):
//!
//! - the "cloud": Mosquitto with TLS, client certificates required (device
//!   CA) and persistence on, on a port chosen before it starts (so the edge can
//!   be pointed at it while nothing listens there);
//! - ggcore as the edge: devices `q-I` publish on `up/q-I`, routed to `cloud`;
//!   its link uses the certificate of thing `cloud-core`;
//! - Mosquitto as the edge: the same device listener, persistence on, and a
//!   bridge (`cleansession false`, QoS 1, `up/# out 1`) to the cloud, with the
//!   certificate of thing `bridge-edge`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ggcore_benches::brokers::{self, Pki, REGION_ACCOUNT};
use serde_json::json;

pub const CORE_THING: &str = "cloud-core";
pub const BRIDGE_THING: &str = "bridge-edge";
pub const OBSERVER: &str = "observer";
pub const UP_FILTER: &str = "up/#";

pub fn q_name(i: usize) -> String {
    format!("q-{i}")
}

pub fn q_topic(i: usize) -> String {
    format!("up/q-{i}")
}

/// Every thing the queue benchmarks need (and the routing pair of the load suite).
pub fn things(publishers: usize) -> Vec<String> {
    let mut t: Vec<String> = (0..publishers).map(q_name).collect();
    t.extend([CORE_THING, BRIDGE_THING, OBSERVER, "pub-0", "sub-0"].map(String::from));
    t
}

fn thing_arn(t: &str) -> String {
    format!("arn:aws:iot:{REGION_ACCOUNT}:thing/{t}")
}

pub struct Env {
    pub ggcore: PathBuf,
    pub mosquitto: PathBuf,
    pub work: PathBuf,
    pub pki: Pki,
    /// The bridge's `autosave_interval` (s); Mosquitto's default (1800) when `None`.
    pub bridge_autosave: Option<u32>,
}

/// How ggcore's queue is set up for a run.
#[derive(Debug, Clone)]
pub struct CoreSetup {
    pub fsync: String,
    pub storage: String,
    pub max_bytes: u64,
    /// The cloud's port (nothing need listen there).
    pub cloud_port: u16,
}

impl Env {
    /// A fresh ggcore root (a copy of the PKI's, no state) configured with
    /// the cloud link and queue of `s`.
    pub fn core_root(&self, name: &str, s: &CoreSetup) -> Result<PathBuf> {
        let root = self.work.join("runs").join(name);
        if root.exists() {
            std::fs::remove_dir_all(&root)?;
        }
        std::fs::create_dir_all(root.parent().unwrap_or(&self.work))?;
        let ok = Command::new("cp").arg("-a").arg(&self.pki.root).arg(&root).status()?.success();
        if !ok {
            bail!("cannot copy {} to {}", self.pki.root.display(), root.display());
        }
        let state = root.join("ggc/var/state/db");
        if state.exists() {
            std::fs::remove_dir_all(&state)?;
        }
        let d = &self.pki.devices;
        let config = json!({
            "coreThing": {
                "caPath": self.pki.group_ca,
                "certPath": d.join(format!("{CORE_THING}.cert.pem")),
                "keyPath": d.join(format!("{CORE_THING}.private.key")),
                "thingArn": thing_arn(CORE_THING),
                "iotHost": "127.0.0.1",
                "iotMqttPort": s.cloud_port,
                "keepAlive": 600,
                "mqttMaxConnectionRetryInterval": 1,
            },
            "ggcore": {
                "mqtt": {"host": "127.0.0.1", "port": 0},
                "spooler": {"storage": s.storage, "maxSizeBytes": s.max_bytes, "fsync": s.fsync},
            },
        });
        std::fs::write(root.join("config/config.json"), serde_json::to_string_pretty(&config)?)?;
        Ok(root)
    }

    /// Deploys a group: `q-0..publishers` → cloud, and with `local_pair`
    /// also `pub-0` → `sub-0` on `bench/pub-0` (the load suite's 1→1 pair).
    pub fn deploy(&self, root: &Path, publishers: usize, local_pair: bool) -> Result<()> {
        let mut things: Vec<String> = (0..publishers).map(q_name).collect();
        let mut subs: Vec<serde_json::Value> = (0..publishers)
            .map(|i| json!({"Id": format!("c{i}"), "Source": thing_arn(&q_name(i)), "Subject": q_topic(i), "Target": "cloud"}))
            .collect();
        if local_pair {
            things.extend(["pub-0".to_string(), "sub-0".to_string()]);
            subs.push(json!({"Id": "l0", "Source": thing_arn("pub-0"), "Subject": "bench/pub-0", "Target": thing_arn("sub-0")}));
        }
        let devices = things
            .iter()
            .map(|t| {
                let arn = self.pki.arns.get(t).with_context(|| format!("no certificate for {t}"))?;
                Ok(json!({"Id": t, "ThingArn": thing_arn(t), "CertificateArn": arn, "SyncShadow": false}))
            })
            .collect::<Result<Vec<_>>>()?;
        let group = json!({
            "GroupId": "queue-bench",
            "DeviceDefinition": {"Devices": devices},
            "SubscriptionDefinition": {"Subscriptions": subs},
        });
        let path = root.join("queue-group.json");
        std::fs::write(&path, serde_json::to_string_pretty(&group)?)?;
        let out = Command::new(&self.ggcore).arg("deploy").arg(&path).arg("--root").arg(root).stdin(Stdio::null()).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !text.contains("Success") {
            bail!("ggcore deploy failed: {text}{}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    pub fn start_core(&self, root: &Path) -> Result<brokers::Running> {
        brokers::start_ggcore(&self.ggcore, root, &root.join("core.log"), &[])
    }

    /// `ggcore status --json`.
    pub fn status(&self, root: &Path) -> Result<serde_json::Value> {
        let out = Command::new(&self.ggcore).args(["status", "--json", "--root"]).arg(root).stdin(Stdio::null()).output()?;
        if !out.status.success() {
            bail!("ggcore status failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// Polls status until `queue.messages` stops changing (the last commits).
    pub fn queue_settled(&self, root: &Path) -> Result<serde_json::Value> {
        let mut last = self.status(root)?;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.status(root)?;
            if now["queue"]["messages"] == last["queue"]["messages"] {
                return Ok(now);
            }
            last = now;
        }
        Ok(last)
    }

    fn mosquitto_common(&self, dir: &Path) -> String {
        let mut c = String::from("# written by ggcore-benches (queue)\nper_listener_settings false\nallow_anonymous true\n");
        c.push_str("log_dest stderr\nlog_type error\nlog_type warning\nconnection_messages false\n");
        // Unlimited in flight: see brokers::mosquitto_conf (2.0.11's inflight
        // quota bugs). Unlimited queues: a 100k backlog must not be cut at
        // the default 1000 per client.
        c.push_str("max_inflight_messages 0\nmax_queued_messages 0\nset_tcp_nodelay true\n");
        c.push_str(&format!("persistence true\npersistence_location {}/\n", dir.display()));
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            c.push_str("user root\n");
        }
        c
    }

    fn listener(&self, port: u16) -> String {
        format!(
            "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            self.pki.device_ca.display(),
            self.pki.server_cert.display(),
            self.pki.server_key.display()
        )
    }

    /// The cloud: Mosquitto on `port`, persistence in `dir` (kept across
    /// restarts of the same `dir`).
    pub fn start_cloud(&self, dir: &Path, port: u16) -> Result<Mosq> {
        std::fs::create_dir_all(dir)?;
        let conf = format!("{}{}", self.mosquitto_common(dir), self.listener(port));
        Mosq::start(&self.mosquitto, dir, &conf, port)
    }

    /// Mosquitto as the edge: devices on `port`, bridged to the cloud on `cloud_port`.
    pub fn start_bridge(&self, dir: &Path, port: u16, cloud_port: u16) -> Result<Mosq> {
        std::fs::create_dir_all(dir)?;
        let d = &self.pki.devices;
        let autosave = self.bridge_autosave.map(|n| format!("autosave_interval {n}\n")).unwrap_or_default();
        let conf = format!(
            "{}{autosave}{}\nconnection up\naddress 127.0.0.1:{cloud_port}\ntopic up/# out 1\ncleansession false\n\
             remote_clientid {BRIDGE_THING}\nbridge_protocol_version mqttv311\nnotifications false\nrestart_timeout 1\n\
             keepalive_interval 60\nbridge_cafile {}\nbridge_certfile {}\nbridge_keyfile {}\n",
            self.mosquitto_common(dir),
            self.listener(port),
            self.pki.group_ca.display(),
            d.join(format!("{BRIDGE_THING}.cert.pem")).display(),
            d.join(format!("{BRIDGE_THING}.private.key")).display(),
        );
        Mosq::start(&self.mosquitto, dir, &conf, port)
    }
}

/// A Mosquitto process, stopped with SIGTERM (persistence saved) when dropped.
pub struct Mosq {
    pub child: Child,
    pub addr: SocketAddr,
    pub started: Instant,
}

impl Mosq {
    fn start(bin: &Path, dir: &Path, conf: &str, port: u16) -> Result<Mosq> {
        let path = dir.join("mosquitto.conf");
        std::fs::write(&path, conf)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("mosquitto.log"))?;
        let started = Instant::now();
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                break;
            }
            if let Some(s) = child.try_wait()? {
                bail!("mosquitto exited ({s}) before listening; see {}/mosquitto.log", dir.display());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("mosquitto not listening on {addr} after 20 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(Mosq { child, addr, started })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mosq {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// SIGKILL of a ggcore.
pub fn kill9_core(mut r: brokers::Running) -> Result<()> {
    r.child.kill()?;
    r.child.wait()?;
    Ok(())
}
