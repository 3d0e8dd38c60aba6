//! A "cloud" for the core's cloud link (docs/queue.md): a certificate
//! authority made with `openssl`, Mosquitto listening with TLS and client
//! certificates on a free port of 127.0.0.1 (persistence on, so that a
//! restart on the same port keeps what it accepted for persistent sessions),
//! an observer that records every message the cloud sees, and publishers
//! that know exactly which of their QoS 1 messages the core acknowledged.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::group::{thing_arn, CORE_THING};
use super::mqtt::{tls_config, HOST};
use super::process::{Creds, Lines, Root};
use super::DEADLINE;

/// The client id (and certificate CN) of the observer.
pub const OBSERVER: &str = "cloud-observer";
/// The client id of what publishes "from the cloud" ([`Cloud::publish`]).
pub const CLOUD_APP: &str = "cloud-app";

fn run_openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// A certificate authority in a directory: `NAME.pem`, `NAME.key`, and the
/// certificates it issues beside them (EC P-256 keys).
pub struct Pki {
    pub dir: PathBuf,
    pub name: String,
    pub ca: PathBuf,
    ca_key: PathBuf,
}

/// A certificate and its key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// Makes CA `name` in `dir` (created).
    pub fn new(dir: &Path, name: &str) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let (ca, ca_key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        run_openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "30",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                ca_key.to_str().unwrap(),
                "-out",
                ca.to_str().unwrap(),
            ],
        );
        Pki { dir: dir.to_path_buf(), name: name.to_string(), ca, ca_key }
    }

    fn issue(&self, file: &str, cn: &str, ext: &str) -> Issued {
        let (cert, key, csr, extfile) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
            self.dir.join(format!("{file}.csr")),
            self.dir.join(format!("{file}.ext")),
        );
        std::fs::write(&extfile, ext).unwrap();
        run_openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                csr.to_str().unwrap(),
            ],
        );
        run_openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                csr.to_str().unwrap(),
                "-CA",
                self.ca.to_str().unwrap(),
                "-CAkey",
                self.ca_key.to_str().unwrap(),
                "-CAcreateserial",
                "-days",
                "30",
                "-sha256",
                "-extfile",
                extfile.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
            ],
        );
        Issued { cert, key }
    }

    /// A server certificate for `localhost` (DNS:localhost, IP:127.0.0.1).
    pub fn server(&self, file: &str) -> Issued {
        self.issue(
            file,
            "localhost",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
    }

    /// A client certificate whose CN is `cn`.
    pub fn client(&self, file: &str, cn: &str) -> Issued {
        self.issue(file, cn, "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    }
}

/// A free TCP port of 127.0.0.1 (free when asked; the broker binds it next).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Mosquitto as the cloud: TLS on 127.0.0.1:`port`, client certificates
/// required (chaining to `client_ca`), persistence in its own directory.
/// It can be stopped and started again on the same port.
pub struct Broker {
    pub port: u16,
    dir: PathBuf,
    server: Issued,
    /// The CA file client certificates must chain to.
    client_ca: PathBuf,
    process: Option<Mosquitto>,
    /// Every start's log, kept for failure messages.
    past_logs: Vec<String>,
}

impl Broker {
    /// Configures a broker in `dir` (not started).
    pub fn new(dir: &Path, server: Issued, client_ca: &Path) -> Broker {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        Broker { port: 0, dir: dir.to_path_buf(), server, client_ca: client_ca.to_path_buf(), process: None, past_logs: Vec::new() }
    }

    /// The CA that client certificates must chain to from the next start on.
    pub fn set_client_ca(&mut self, ca: &Path) {
        self.client_ca = ca.to_path_buf();
    }

    fn write_config(&self) -> PathBuf {
        let conf = self.dir.join("mosquitto.conf");
        let text = format!(
            "# Written by the ggcore end-to-end tests.\n\
             user root\n\
             per_listener_settings false\n\
             allow_anonymous true\n\
             persistence true\n\
             persistence_location {data}/\n\
             max_queued_messages 1000000\n\
             max_inflight_messages 100\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n\
             log_type notice\n\
             log_type information\n\
             connection_messages true\n\
             listener {port} 127.0.0.1\n\
             cafile {ca}\n\
             certfile {cert}\n\
             keyfile {key}\n\
             require_certificate true\n\
             use_identity_as_username true\n",
            data = self.dir.join("data").display(),
            port = self.port,
            ca = self.client_ca.display(),
            cert = self.server.cert.display(),
            key = self.server.key.display(),
        );
        std::fs::write(&conf, text).unwrap();
        conf
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Starts Mosquitto (on a new free port the first time, on the same port
    /// after) and waits until it listens.
    pub async fn start(&mut self) {
        assert!(self.process.is_none(), "the broker is already running");
        let first = self.port == 0;
        let mut attempt = 0;
        loop {
            if first {
                self.port = free_port();
            }
            let conf = self.write_config();
            let mut cmd = Command::new("/usr/sbin/mosquitto");
            cmd.arg("-c").arg(&conf).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start /usr/sbin/mosquitto: {e}"));
            let logs = Arc::new(Lines::default());
            logs.collect(child.stderr.take().unwrap());
            let deadline = tokio::time::Instant::now() + DEADLINE;
            let failed = loop {
                if logs.all().iter().any(|l| l.contains(" running")) {
                    self.process = Some(Mosquitto { child, logs });
                    return;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    logs.wait_end(Duration::from_secs(2));
                    break format!("exited with {status}");
                }
                if tokio::time::Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break format!("not running after {DEADLINE:?}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let log = logs.all().join("\n");
            self.past_logs.extend(logs.all());
            // A port taken between free_port() and the bind (first start), or
            // still held right after a stop: try again.
            attempt += 1;
            if attempt < 5 && (first || log.contains("Address already in use")) {
                eprintln!("mosquitto did not start on port {} ({failed}); trying again:\n{log}", self.port);
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            panic!("mosquitto did not start on port {} ({failed}):\n{log}", self.port);
        }
    }

    /// Stops Mosquitto with SIGTERM (it saves its persistent sessions) and
    /// waits for it to exit.
    pub async fn stop(&mut self) {
        let mut m = self.process.take().expect("the broker is not running");
        let ok = Command::new("kill").args(["-TERM", &m.child.id().to_string()]).status().expect("kill");
        assert!(ok.success(), "kill -TERM mosquitto");
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(_)) = m.child.try_wait() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = m.child.kill();
                let _ = m.child.wait();
                panic!("mosquitto did not exit within {DEADLINE:?} of SIGTERM:\n{}", m.logs.all().join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        m.logs.wait_end(Duration::from_secs(2));
        self.past_logs.extend(m.logs.all());
    }

    /// Mosquitto's log (every start so far).
    pub fn log(&self) -> String {
        let mut all = self.past_logs.clone();
        if let Some(m) = &self.process {
            all.extend(m.logs.all());
        }
        all.join("\n")
    }
}

/// A running Mosquitto and its log.
struct Mosquitto {
    child: Child,
    logs: Arc<Lines>,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the observer saw.
#[derive(Default)]
struct Seen {
    messages: Vec<(String, Bytes)>,
    connacks: usize,
    /// CONNACKs without session-present after the first (the broker lost
    /// the observer's session: what it held is gone).
    sessions_lost: usize,
    /// Connected with the subscription in place (granted now, or kept in
    /// the session the broker had).
    ready: bool,
    last_error: Option<String>,
}

/// A persistent (cleanSession=0) QoS 1 subscriber to `#` on the cloud broker
/// that reconnects whenever the connection ends: with the broker's
/// persistence it receives everything the broker accepted, across restarts.
pub struct Observer {
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl Observer {
    /// Connects to `port` with `id` (a certificate of the cloud's CA) and
    /// waits until its subscription to `#` is granted.
    pub async fn connect(port: u16, ca: &Path, id: &Issued) -> Observer {
        let tls = tls_config(ca, &id.cert, &id.key);
        let mut mo = MqttOptions::new(OBSERVER, HOST, port);
        mo.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)))
            .set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(mo, 64);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        let mut g = s.lock().unwrap();
                        g.connacks += 1;
                        if ack.session_present {
                            g.ready = true;
                        } else {
                            if g.connacks > 1 {
                                g.sessions_lost += 1;
                            }
                            let _ = client.try_subscribe("#", QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => s.lock().unwrap().ready = true,
                    Ok(Event::Incoming(Packet::Publish(p))) => s.lock().unwrap().messages.push((p.topic.clone(), p.payload.clone())),
                    Ok(_) => {}
                    Err(e) => {
                        s.lock().unwrap().last_error = Some(e.to_string());
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        let me = Observer { seen, task };
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !me.seen.lock().unwrap().ready {
            if tokio::time::Instant::now() >= deadline {
                panic!("the observer did not subscribe within {DEADLINE:?}: {:?}", me.seen.lock().unwrap().last_error);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        me
    }

    /// Every message so far, in arrival order (duplicates included).
    pub fn messages(&self) -> Vec<(String, Bytes)> {
        self.seen.lock().unwrap().messages.clone()
    }

    /// The payloads that arrived on `topic`, in arrival order.
    pub fn payloads(&self, topic: &str) -> Vec<Bytes> {
        self.seen.lock().unwrap().messages.iter().filter(|(t, _)| t == topic).map(|(_, p)| p.clone()).collect()
    }

    /// How many times the broker had forgotten the observer's session.
    pub fn sessions_lost(&self) -> usize {
        self.seen.lock().unwrap().sessions_lost
    }

    /// Waits until every one of `source-0` .. `source-(total-1)` arrived on
    /// `topic`, then checks them with [`check_source`] (all there, first
    /// arrivals in order); returns its (distinct, duplicates).
    pub async fn expect_all(&self, topic: &str, source: &str, total: u64, timeout: Duration) -> (usize, usize) {
        let what = format!("{source}-0..{source}-{} on {topic}", total.saturating_sub(1));
        self.wait_until(&what, timeout, |m| {
            m.iter().filter(|(t, _)| t == topic).filter_map(|(_, p)| number(source, p)).collect::<std::collections::BTreeSet<_>>().len()
                == total as usize
        })
        .await;
        check_source(source, &numbers(source, &self.payloads(topic)), &(0..total).collect::<Vec<_>>())
    }

    /// Waits until `done` holds for the messages so far; panics with `what`
    /// and the messages' count after `timeout`.
    pub async fn wait_until(&self, what: &str, timeout: Duration, mut done: impl FnMut(&[(String, Bytes)]) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let g = self.seen.lock().unwrap();
                if done(&g.messages) {
                    return;
                }
                if tokio::time::Instant::now() >= deadline {
                    panic!(
                        "the cloud did not see {what} within {timeout:?} ({} messages so far; last error {:?})",
                        g.messages.len(),
                        g.last_error
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a message with `payload` on `topic`.
    pub async fn wait_for(&self, topic: &str, payload: &[u8]) {
        self.wait_until(&format!("{payload:?} on {topic}"), DEADLINE, |m| m.iter().any(|(t, p)| t == topic && p.as_ref() == payload)).await;
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The cloud of a test: its CA, Mosquitto and the observer, in a temporary
/// directory of their own.
pub struct Cloud {
    _dir: tempfile::TempDir,
    pub dir: PathBuf,
    pub pki: Pki,
    /// The core's client certificate (CN = the core's thing name).
    pub core_id: Issued,
    pub broker: Broker,
    pub observer: Observer,
    observer_id: Issued,
    app: Issued,
}

impl Cloud {
    /// Makes the CA and certificates, starts Mosquitto and the observer.
    pub async fn start() -> Cloud {
        let tmp = tempfile::Builder::new().prefix("ggcore-cloud-").tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let pki = Pki::new(&dir.join("pki"), "cloud-ca");
        let server = pki.server("broker");
        let core_id = pki.client("core", CORE_THING);
        let observer_id = pki.client("observer", OBSERVER);
        let app = pki.client("app", CLOUD_APP);
        let mut broker = Broker::new(&dir.join("broker"), server, &pki.ca);
        broker.start().await;
        let observer = Observer::connect(broker.port, &pki.ca, &observer_id).await;
        Cloud { _dir: tmp, dir, pki, core_id, broker, observer, observer_id, app }
    }

    /// Drops the observer's connection (its session stays with the broker).
    pub fn disconnect_observer(&mut self) {
        self.observer.task.abort();
    }

    /// Connects the observer again (same client id, same session): what
    /// the broker kept for it arrives; what it received before is forgotten.
    pub async fn reconnect_observer(&mut self) {
        self.observer.task.abort();
        self.observer = Observer::connect(self.broker.port, &self.pki.ca, &self.observer_id).await;
    }

    /// Stops the broker (an outage).
    pub async fn down(&mut self) {
        self.broker.stop().await;
    }

    /// Starts the broker again on the same port (the outage ends).
    pub async fn up(&mut self) {
        self.broker.start().await;
    }

    /// `coreThing` of a core that uses this cloud with its certificate
    /// `id`, retrying at most every `retry_s` seconds.
    pub fn core_thing_with(&self, id: &Issued, retry_s: u64) -> Value {
        json!({
            "caPath": self.pki.ca.display().to_string(),
            "certPath": id.cert.display().to_string(),
            "keyPath": id.key.display().to_string(),
            "thingArn": thing_arn(CORE_THING),
            "iotHost": "localhost",
            "iotMqttPort": self.broker.port,
            "keepAlive": 30,
            "mqttMaxConnectionRetryInterval": retry_s,
        })
    }

    /// A config.json for a core of this cloud (functions may run as root):
    /// `ggcore.spooler` = `spooler`, retry cap 1 s.
    pub fn core_config(&self, spooler: Value) -> Value {
        let mut c = super::functions::root_functions_config();
        c["coreThing"] = self.core_thing_with(&self.core_id, 1);
        c["ggcore"]["spooler"] = spooler;
        c
    }

    /// A root with [`Cloud::core_config`].
    pub fn root(&self, spooler: Value) -> Root {
        Root::with_config(self.core_config(spooler))
    }

    /// Publishes `payload` on `topic` from the cloud side (QoS 1, mosquitto_pub
    /// with its own certificate): returns once the broker acknowledged it.
    pub fn publish(&self, topic: &str, payload: &str) {
        let out = Command::new("mosquitto_pub")
            .args(["--cafile", self.pki.ca.to_str().unwrap(), "--cert", self.app.cert.to_str().unwrap()])
            .args(["--key", self.app.key.to_str().unwrap(), "-h", HOST, "-p", &self.broker.port.to_string(), "-i", CLOUD_APP])
            .args(["-q", "1", "-t", topic, "-m", payload])
            .output()
            .expect("run mosquitto_pub");
        assert!(out.status.success(), "mosquitto_pub to the cloud failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// `ggcore status --json`'s `cloud` part.
pub fn link_status(root: &Root) -> Value {
    root.status()["cloud"].clone()
}

/// `ggcore status --json`'s `queue` part.
pub fn queue_status(root: &Root) -> Value {
    root.status()["queue"].clone()
}

/// A number of a status part (0 when absent).
pub fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// What a [`Publisher`] knows about its messages.
#[derive(Default)]
struct PubState {
    /// Handed to rumqttc, packet id not known yet (in order).
    handed: VecDeque<Bytes>,
    /// Packet id → payload of what is on the wire.
    in_flight: HashMap<u16, Bytes>,
    /// Payloads the core acknowledged (PUBACK), in order.
    acked: Vec<Bytes>,
    /// How many publishes were handed over.
    sent: usize,
    closed: Option<String>,
}

/// A device that publishes QoS 1 and records exactly which messages the
/// core acknowledged: each PUBACK is matched to its publish by packet id.
/// It never reconnects (a reconnect would resend with the same ids): once its
/// connection ends, connect a new one.
pub struct Publisher {
    pub thing: String,
    client: AsyncClient,
    state: Arc<Mutex<PubState>>,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Connects `creds` to the core on `port`, with at most `inflight`
    /// unacknowledged publishes.
    pub async fn connect(port: u16, creds: &Creds, inflight: u16) -> Publisher {
        let tls = tls_config(&creds.ca, &creds.cert, &creds.key);
        let mut mo = MqttOptions::new(creds.thing.clone(), HOST, port);
        mo.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)))
            .set_clean_session(true)
            .set_keep_alive(Duration::from_secs(60))
            .set_inflight(inflight.max(1))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(mo, 16);
        match tokio::time::timeout(DEADLINE, eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(a)))) if a.code == rumqttc::ConnectReturnCode::Success => {}
            other => panic!("{}: could not connect to the core: {other:?}", creds.thing),
        }
        let state = Arc::new(Mutex::new(PubState::default()));
        let s = state.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        let mut g = s.lock().unwrap();
                        if let Some(p) = g.handed.pop_front() {
                            g.in_flight.insert(pkid, p);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        let mut g = s.lock().unwrap();
                        if let Some(p) = g.in_flight.remove(&ack.pkid) {
                            g.acked.push(p);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        s.lock().unwrap().closed = Some(e.to_string());
                        return;
                    }
                }
            }
        });
        Publisher { thing: creds.thing.clone(), client, state, task }
    }

    /// Hands a QoS 1 publish over (waits while the client's window is full);
    /// false when the connection has ended.
    pub async fn publish(&self, topic: &str, payload: impl Into<Bytes>) -> bool {
        let payload: Bytes = payload.into();
        {
            let mut g = self.state.lock().unwrap();
            if g.closed.is_some() {
                return false;
            }
            g.handed.push_back(payload.clone());
            g.sent += 1;
        }
        if self.client.publish_bytes(topic, QoS::AtLeastOnce, false, payload).await.is_err() {
            let mut g = self.state.lock().unwrap();
            g.handed.pop_back();
            g.sent -= 1;
            return false;
        }
        true
    }

    /// The payloads the core acknowledged so far, in order.
    pub fn acked(&self) -> Vec<Bytes> {
        self.state.lock().unwrap().acked.clone()
    }

    pub fn acked_count(&self) -> usize {
        self.state.lock().unwrap().acked.len()
    }

    pub fn sent(&self) -> usize {
        self.state.lock().unwrap().sent
    }

    pub fn closed(&self) -> Option<String> {
        self.state.lock().unwrap().closed.clone()
    }

    /// Waits until every publish handed over is acknowledged (panics after
    /// `timeout` or when the connection ends first).
    pub async fn wait_all_acked(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let g = self.state.lock().unwrap();
                if g.acked.len() == g.sent {
                    return;
                }
                if let Some(why) = &g.closed {
                    panic!("{}: connection closed ({why}) with {} of {} publishes acknowledged", self.thing, g.acked.len(), g.sent);
                }
                if tokio::time::Instant::now() >= deadline {
                    panic!("{}: only {} of {} publishes acknowledged within {timeout:?}", self.thing, g.acked.len(), g.sent);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Disconnects cleanly.
    pub async fn disconnect(mut self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A small deterministic random generator (xorshift64*), seeded per run and
/// printed, so that a failing run can be repeated (`GGCORE_CLOUD_SEED`).
pub struct Rng(u64);

impl Rng {
    /// Seeded from `GGCORE_CLOUD_SEED` when set, else from the clock; the
    /// seed is printed with `what`.
    pub fn seeded(what: &str) -> Rng {
        let seed = std::env::var("GGCORE_CLOUD_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        });
        println!("{what}: seed {seed} (repeat with GGCORE_CLOUD_SEED={seed})");
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The numbers of payloads `PREFIX-N` (anything not a digit may follow N:
/// padding), in the order given.
pub fn numbers(prefix: &str, payloads: &[Bytes]) -> Vec<u64> {
    payloads.iter().filter_map(|p| number(prefix, p)).collect()
}

/// N of a payload `PREFIX-N...`.
pub fn number(prefix: &str, payload: &[u8]) -> Option<u64> {
    let rest = payload.strip_prefix(prefix.as_bytes())?.strip_prefix(b"-")?;
    let digits: Vec<u8> = rest.iter().copied().take_while(u8::is_ascii_digit).collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// `PREFIX-N` padded with `.` to `size` bytes.
pub fn numbered(prefix: &str, n: u64, size: usize) -> Bytes {
    let mut p = format!("{prefix}-{n} ").into_bytes();
    if p.len() < size {
        p.resize(size, b'.');
    }
    Bytes::from(p)
}

/// Checks what the cloud saw of one source against what the source was told
/// was accepted: every accepted message arrived at least once, and the first
/// arrivals are in the order sent (numbers increasing). Returns (distinct
/// messages, duplicates).
pub fn check_source(source: &str, arrived: &[u64], accepted: &[u64]) -> (usize, usize) {
    let mut firsts = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for &n in arrived {
        if seen.insert(n) {
            firsts.push(n);
        }
    }
    let missing: Vec<u64> = accepted.iter().copied().filter(|n| !seen.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "{source}: {} accepted message(s) never reached the cloud: {:?}{} ({} accepted, {} arrived)",
        missing.len(),
        &missing[..missing.len().min(20)],
        if missing.len() > 20 { " ..." } else { "" },
        accepted.len(),
        seen.len()
    );
    if let Some(w) = firsts.windows(2).find(|w| w[0] >= w[1]) {
        panic!("{source}: out of order at the cloud: {} arrived (first) after {}", w[1], w[0]);
    }
    (seen.len(), arrived.len() - seen.len())
}
