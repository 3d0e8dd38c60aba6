//! The three brokers, set up on the same certificates:
//!
//! - ggcore: `ggcore run --root R`, certificates from `ggcore certs`, the
//!   subscription table of each scenario deployed with `ggcore deploy`;
//! - Mosquitto: TLS listener, client certificate required (device CA), the same
//!   server certificate and key as ggcore, plain pub/sub, no persistence;
//! - rumqttd: a v4 TLS listener with client certificates (built with its
//!   `verify-client-cert` feature), the same files.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;

use crate::load::{pub_name, sub_name, topic, Topology};

pub const REGION_ACCOUNT: &str = "us-east-1:000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Kind {
    Ggcore,
    Mosquitto,
    Rumqttd,
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Ggcore => "ggcore",
            Kind::Mosquitto => "mosquitto",
            Kind::Rumqttd => "rumqttd",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "ggcore" => Kind::Ggcore,
            "mosquitto" => Kind::Mosquitto,
            "rumqttd" => Kind::Rumqttd,
            _ => bail!("unknown broker '{s}' (ggcore, mosquitto, rumqttd)"),
        })
    }
}

/// Files shared by the three brokers.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The ggcore root whose CAs made everything.
    pub root: PathBuf,
    /// Signs device certificates; brokers verify clients against it.
    pub device_ca: PathBuf,
    /// Signed the server certificate; clients trust it.
    pub group_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// `THING.cert.pem` / `THING.private.key` of every device.
    pub devices: PathBuf,
    /// thing name → CertificateArn.
    pub arns: BTreeMap<String, String>,
}

fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes (or reuses) a ggcore root with its local CAs and server certificate,
/// listening on 127.0.0.1 and a free port, and device certificates for
/// `things`. Certificates are reused across runs while the device CA is the
/// same (RSA key generation for 200 devices takes most of a minute).
pub fn prepare_pki(ggcore: &Path, work: &Path, things: &[String]) -> Result<Pki> {
    let root = work.join("core-root");
    std::fs::create_dir_all(root.join("config"))?;
    std::fs::write(root.join("config/config.json"), r#"{"ggcore":{"mqtt":{"host":"127.0.0.1","port":0}}}"#)?;
    run_ok(Command::new(ggcore).args(["certs", "init", "--root"]).arg(&root))?;
    let device_ca = root.join("certs/device-ca.pem");
    let devices = work.join("devices");
    std::fs::create_dir_all(&devices)?;
    let cache = devices.join("arns.json");
    let ca_pem = std::fs::read_to_string(&device_ca)?;
    let mut arns: BTreeMap<String, String> = std::fs::read_to_string(&cache)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .filter(|v| v["device_ca"].as_str() == Some(ca_pem.as_str()))
        .and_then(|v| serde_json::from_value(v["arns"].clone()).ok())
        .unwrap_or_default();
    let missing: Vec<&String> = things
        .iter()
        .filter(|t| {
            !arns.contains_key(*t) || !devices.join(format!("{t}.cert.pem")).exists() || !devices.join(format!("{t}.private.key")).exists()
        })
        .collect();
    if !missing.is_empty() {
        eprintln!("making {} device certificates with `ggcore certs device`", missing.len());
    }
    // Two at a time: key generation is CPU-bound and the machine has two cores.
    for chunk in missing.chunks(2) {
        let children: Vec<(String, std::process::Child)> = chunk
            .iter()
            .map(|t| {
                let child = Command::new(ggcore)
                    .args(["certs", "device", t, "--root"])
                    .arg(&root)
                    .arg("--out")
                    .arg(&devices)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()?;
                Ok(((*t).clone(), child))
            })
            .collect::<Result<_>>()?;
        for (t, child) in children {
            let out = child.wait_with_output()?;
            if !out.status.success() {
                bail!("ggcore certs device {t} failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            let arn = stdout
                .lines()
                .last()
                .filter(|l| l.starts_with("arn:aws:iot:"))
                .ok_or_else(|| anyhow!("ggcore certs device {t}: no CertificateArn printed"))?;
            arns.insert(t, arn.to_string());
        }
    }
    std::fs::write(&cache, serde_json::to_string_pretty(&json!({"device_ca": ca_pem, "arns": arns}))?)?;
    Ok(Pki {
        device_ca,
        group_ca: root.join("certs/group-ca.pem"),
        server_cert: root.join("ggc/var/state/server/server.crt"),
        server_key: root.join("ggc/var/state/server/server.key"),
        devices,
        root,
        arns,
    })
}

fn thing_arn(thing: &str) -> String {
    format!("arn:aws:iot:{REGION_ACCOUNT}:thing/{thing}")
}

/// The group of one scenario: its devices, and one subscription per
/// routed (publisher, subscriber) pair, Subject = the publisher's topic. Nothing
/// else is routed.
pub fn group_json(topology: Topology, arns: &BTreeMap<String, String>) -> Result<serde_json::Value> {
    let mut things: Vec<String> = (0..topology.publishers()).map(pub_name).collect();
    things.extend((0..topology.subscribers()).map(sub_name));
    let devices = things
        .iter()
        .map(|t| {
            let arn = arns.get(t).ok_or_else(|| anyhow!("no certificate for {t}"))?;
            Ok(json!({"Id": t, "ThingArn": thing_arn(t), "CertificateArn": arn, "SyncShadow": false}))
        })
        .collect::<Result<Vec<_>>>()?;
    let subscriptions: Vec<_> = topology
        .routes()
        .into_iter()
        .enumerate()
        .map(|(n, (i, j))| {
            json!({"Id": format!("s{n}"), "Source": thing_arn(&pub_name(i)),
                   "Subject": topic(i), "Target": thing_arn(&sub_name(j))})
        })
        .collect();
    Ok(json!({
        "GroupId": "bench",
        "DeviceDefinition": {"Devices": devices},
        "SubscriptionDefinition": {"Subscriptions": subscriptions},
    }))
}

/// Deploys the scenario's group to the running core (`ggcore deploy`).
pub fn deploy(ggcore: &Path, pki: &Pki, work: &Path, topology: Topology) -> Result<()> {
    let path = work.join("group.json");
    std::fs::write(&path, serde_json::to_string_pretty(&group_json(topology, &pki.arns)?)?)?;
    let out = run_ok(Command::new(ggcore).arg("deploy").arg(&path).arg("--root").arg(&pki.root))?;
    if !out.contains("Success") {
        bail!("ggcore deploy did not succeed: {out}");
    }
    Ok(())
}

/// A broker process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Running {
    pub kind: Kind,
    pub child: Child,
    pub addr: SocketAddr,
    /// From spawn to accepting connections (ggcore: to its `ggcore ready` line).
    pub ready_after: Duration,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait (up to 10 s, then SIGKILL); returns the exit status.
    pub fn stop(mut self) -> Result<Option<i32>> {
        let status = terminate(&mut self.child)?;
        Ok(status)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = terminate(&mut self.child);
    }
}

fn terminate(child: &mut Child) -> Result<Option<i32>> {
    if let Some(s) = child.try_wait()? {
        return Ok(s.code());
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait()? {
            return Ok(s.code());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill()?;
    Ok(child.wait()?.code())
}

/// Copies a child's output to `log`; the first line containing `needle` is
/// sent on `tx` with the time it was read.
fn pump(src: impl std::io::Read + Send + 'static, log: PathBuf, needle: Option<(&'static str, mpsc::Sender<(String, Instant)>)>) {
    std::thread::spawn(move || {
        let mut out = std::fs::OpenOptions::new().create(true).append(true).open(&log).ok();
        let mut needle = needle;
        for line in BufReader::new(src).lines() {
            let Ok(line) = line else { break };
            if let Some((n, tx)) = &needle {
                if line.contains(n) {
                    let _ = tx.send((line.clone(), Instant::now()));
                    needle = None;
                }
            }
            if let Some(f) = out.as_mut() {
                let _ = writeln!(f, "{line}");
            }
        }
    });
}

/// Address in a `ggcore ready ... mqtt=HOST:PORT ...` line (log colours allowed).
pub fn parse_ready(line: &str) -> Result<SocketAddr> {
    let at = line.find("mqtt=").ok_or_else(|| anyhow!("no mqtt= in ready line '{line}'"))?;
    let addr: String = line[at + 5..].chars().take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')).collect();
    addr.parse().with_context(|| format!("address '{addr}' in ready line"))
}

/// Starts `ggcore run --root ROOT`; returns once it logged `ggcore ready`.
/// `env`: extra environment (e.g. `GGCORE_MQTT_PORT=0` for a demo root, whose
/// embedded default listens on 8883).
pub fn start_ggcore(ggcore: &Path, root: &Path, log: &Path, env: &[(&str, &str)]) -> Result<Running> {
    let t0 = Instant::now();
    let mut child = Command::new(ggcore)
        .arg("run")
        .arg("--root")
        .arg(root)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", ggcore.display()))?;
    let (tx, rx) = mpsc::channel();
    pump(child.stderr.take().expect("piped"), log.to_path_buf(), Some(("ggcore ready", tx)));
    pump(child.stdout.take().expect("piped"), log.to_path_buf(), None);
    let (line, at) = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(x) => x,
        Err(_) => {
            let _ = terminate(&mut child);
            bail!("ggcore did not log `ggcore ready` within 60 s; see {}", log.display());
        }
    };
    let addr = parse_ready(&line)?;
    Ok(Running { kind: Kind::Ggcore, child, addr, ready_after: at - t0 })
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(child: &mut Child, addr: SocketAddr, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        if let Some(s) = child.try_wait()? {
            bail!("broker exited ({s}) before listening; see {}", log.display());
        }
        if Instant::now() > deadline {
            let _ = terminate(child);
            bail!("broker not listening on {addr} after 20 s; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Mosquitto's configuration: one TLS listener on 127.0.0.1:`port`, client
/// certificates required, no persistence, plain pub/sub, TCP_NODELAY on (as
/// ggcore does, so Nagle's algorithm does not handicap it).
///
/// `max_inflight_messages 0` (no limit on outgoing QoS 1 in flight): with the
/// default (20), and with 128 (ggcore's limit), Mosquitto 2.0.11 (Debian 12)
/// leaves queued QoS 1 messages undelivered until more traffic arrives for that
/// client (inflight-quota bugs fixed in 2.0.13), which showed as lost messages
/// and stalled publishers in the fan-in runs. The harness's own window bounds
/// what is in flight anyway. `max_queued_messages 1000` as ggcore's queue.
pub fn mosquitto_conf(pki: &Pki, port: u16) -> String {
    let mut c = String::new();
    c.push_str("# written by ggcore-benches\n");
    c.push_str("per_listener_settings false\nallow_anonymous true\npersistence false\n");
    c.push_str("log_dest stderr\nlog_type error\nlog_type warning\nconnection_messages false\n");
    c.push_str("max_inflight_messages 0\nmax_queued_messages 1000\nset_tcp_nodelay true\n");
    if is_root() {
        // Otherwise mosquitto drops to user `mosquitto`, which cannot read the
        // 0600 keys.
        c.push_str("user root\n");
    }
    c.push_str(&format!("listener {port} 127.0.0.1\n"));
    c.push_str(&format!("cafile {}\n", pki.device_ca.display()));
    c.push_str(&format!("certfile {}\n", pki.server_cert.display()));
    c.push_str(&format!("keyfile {}\n", pki.server_key.display()));
    c.push_str("require_certificate true\n");
    c
}

pub fn start_mosquitto(bin: &Path, pki: &Pki, dir: &Path) -> Result<Running> {
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, mosquitto_conf(pki, port))?;
    let log = dir.join("mosquitto.log");
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    pump(child.stderr.take().expect("piped"), log.clone(), None);
    pump(child.stdout.take().expect("piped"), log.clone(), None);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    wait_listening(&mut child, addr, &log)?;
    Ok(Running { kind: Kind::Mosquitto, child, addr, ready_after: t0.elapsed() })
}

/// rumqttd's configuration: one v4 listener with TLS (rustls) and client
/// certificates verified against the device CA; router settings of its sample
/// configuration except the commit log's segment size, 2 MiB instead of 100 MiB:
/// rumqttd keeps up to `max_segment_count` segments per topic in memory, and with
/// the sample's size it grew to 19 GB RSS over the suite (100 topics in the
/// fan-in runs), paying for fresh pages all along; 10 × 2 MiB per topic is far
/// more than the harness ever has in flight. Payloads up to 128 KiB like
/// ggcore's default; no v5, websocket, console or prometheus listeners.
pub fn rumqttd_conf(pki: &Pki, port: u16) -> String {
    format!(
        r#"# written by ggcore-benches
id = 0

[router]
id = 0
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = 2097152
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
    [v4.1.tls]
    capath = "{ca}"
    certpath = "{cert}"
    keypath = "{key}"
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 131072
    max_inflight_count = 100
    dynamic_filters = true
"#,
        ca = pki.device_ca.display(),
        cert = pki.server_cert.display(),
        key = pki.server_key.display(),
    )
}

pub fn start_rumqttd(bin: &Path, pki: &Pki, dir: &Path) -> Result<Running> {
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    let conf = dir.join("rumqttd.toml");
    std::fs::write(&conf, rumqttd_conf(pki, port))?;
    let log = dir.join("rumqttd.log");
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .arg("--quiet")
        .arg("--config")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    pump(child.stderr.take().expect("piped"), log.clone(), None);
    pump(child.stdout.take().expect("piped"), log.clone(), None);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    wait_listening(&mut child, addr, &log)?;
    Ok(Running { kind: Kind::Rumqttd, child, addr, ready_after: t0.elapsed() })
}
