//! Devices: rumqttc clients over TLS presenting a device certificate, with the
//! event loop on its own task and helpers that wait for what must arrive and
//! check what must not.
//!
//! A [`Device`] never reconnects: once its connection ends, it stays closed, so
//! a message received after some event proves the original connection lived.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, Publish, QoS, SubscribeFilter,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::process::Creds;
use super::{DEADLINE, SETTLE};

/// The name the core's server certificate lists, and that devices dial.
pub const HOST: &str = "localhost";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn load_roots(ca: &Path) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("read CA file") {
        roots.add(c.expect("CA certificate")).expect("add CA");
    }
    roots
}

/// TLS client config: trusts `ca`, presents `cert`/`key`.
pub fn tls_config(ca: &Path, cert: &Path, key: &Path) -> Arc<ClientConfig> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert).expect("read certificate").map(|c| c.expect("certificate")).collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("read private key");
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(load_roots(ca))
            .with_client_auth_cert(chain, key)
            .expect("client certificate"),
    )
}

/// TLS client config that trusts `ca` and presents no certificate.
pub fn tls_config_without_cert(ca: &Path) -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(load_roots(ca))
            .with_no_client_auth(),
    )
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct Opts {
    /// MQTT client id; the thing name when `None`.
    pub client_id: Option<String>,
    pub clean_session: bool,
    pub will: Option<LastWill>,
    /// Leave PUBACKs to the test ([`Device::ack`]).
    pub manual_acks: bool,
    pub keep_alive: Duration,
}

impl Default for Opts {
    fn default() -> Self {
        Self { client_id: None, clean_session: true, will: None, manual_acks: false, keep_alive: Duration::from_secs(60) }
    }
}

impl Opts {
    pub fn persistent() -> Self {
        Self { clean_session: false, ..Self::default() }
    }
}

/// Why a connection attempt failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The core answered CONNACK with this refusal code.
    Refused(ConnectReturnCode),
    /// No CONNACK: TLS or I/O failure (with its description).
    Failed(String),
}

/// What the event loop task reports (publishes are kept apart).
#[derive(Debug)]
enum Ev {
    Publish(Publish),
    SubAck(Vec<SubscribeReasonCode>),
    PubAck,
    PubRec,
    PubComp,
    UnsubAck,
    PubAckSent,
    DisconnectSent,
    Closed(String),
}

/// A connected device.
pub struct Device {
    pub thing: String,
    pub client: AsyncClient,
    pub session_present: bool,
    rx: mpsc::UnboundedReceiver<Ev>,
    task: JoinHandle<()>,
    publishes: VecDeque<Publish>,
    subacks: VecDeque<Vec<SubscribeReasonCode>>,
    /// QoS 1 publishes sent / acknowledged; QoS 2 sent / PUBREC / PUBCOMP.
    qos1_sent: usize,
    pubacks: usize,
    qos2_sent: usize,
    pubrecs: usize,
    pubcomps: usize,
    unsubacks: usize,
    pubacks_sent: usize,
    disconnect_sent: bool,
    closed: Option<String>,
}

/// Connects `creds` with default options; panics when refused.
pub async fn connect(port: u16, creds: &Creds) -> Device {
    connect_with(port, creds, Opts::default()).await
}

/// Connects with `opts`; panics when refused.
pub async fn connect_with(port: u16, creds: &Creds, opts: Opts) -> Device {
    match try_connect(port, creds, opts).await {
        Ok(d) => d,
        Err(e) => panic!("{} could not connect: {e:?}", creds.thing),
    }
}

/// Connects `creds` (TLS with its certificate) and waits for the CONNACK.
pub async fn try_connect(port: u16, creds: &Creds, opts: Opts) -> Result<Device, ConnectError> {
    let tls = tls_config(&creds.ca, &creds.cert, &creds.key);
    try_connect_tls(port, &creds.thing, tls, opts).await
}

/// Connects with an explicit TLS config (for certificates from elsewhere).
pub async fn try_connect_tls(port: u16, thing: &str, tls: Arc<ClientConfig>, opts: Opts) -> Result<Device, ConnectError> {
    let client_id = opts.client_id.clone().unwrap_or_else(|| thing.to_string());
    let mut mo = MqttOptions::new(client_id, HOST, port);
    mo.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)))
        .set_clean_session(opts.clean_session)
        .set_keep_alive(opts.keep_alive)
        .set_manual_acks(opts.manual_acks)
        .set_max_packet_size(1 << 20, 1 << 20);
    if let Some(w) = opts.will.clone() {
        mo.set_last_will(w);
    }
    let (client, mut eventloop) = AsyncClient::new(mo, 256);
    eventloop.network_options.set_connection_timeout(DEADLINE.as_secs());
    let first = tokio::time::timeout(DEADLINE + Duration::from_secs(5), eventloop.poll())
        .await
        .map_err(|_| ConnectError::Failed("no CONNACK in time".into()))?;
    let session_present = match first {
        Ok(Event::Incoming(Packet::ConnAck(ack))) => {
            if ack.code != ConnectReturnCode::Success {
                return Err(ConnectError::Refused(ack.code));
            }
            ack.session_present
        }
        Ok(other) => return Err(ConnectError::Failed(format!("first event {other:?}"))),
        Err(ConnectionError::ConnectionRefused(code)) => return Err(ConnectError::Refused(code)),
        Err(e) => return Err(ConnectError::Failed(e.to_string())),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let ev = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => Ev::Publish(p),
                Ok(Event::Incoming(Packet::SubAck(s))) => Ev::SubAck(s.return_codes),
                Ok(Event::Incoming(Packet::PubAck(_))) => Ev::PubAck,
                Ok(Event::Incoming(Packet::PubRec(_))) => Ev::PubRec,
                Ok(Event::Incoming(Packet::PubComp(_))) => Ev::PubComp,
                Ok(Event::Incoming(Packet::UnsubAck(_))) => Ev::UnsubAck,
                Ok(Event::Outgoing(Outgoing::Disconnect)) => Ev::DisconnectSent,
                Ok(Event::Outgoing(Outgoing::PubAck(_))) => Ev::PubAckSent,
                Ok(_) => continue,
                Err(e) => {
                    let _ = tx.send(Ev::Closed(e.to_string()));
                    return;
                }
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    Ok(Device {
        thing: thing.to_string(),
        client,
        session_present,
        rx,
        task,
        publishes: VecDeque::new(),
        subacks: VecDeque::new(),
        qos1_sent: 0,
        pubacks: 0,
        qos2_sent: 0,
        pubrecs: 0,
        pubcomps: 0,
        unsubacks: 0,
        pubacks_sent: 0,
        disconnect_sent: false,
        closed: None,
    })
}

impl Device {
    fn take(&mut self, ev: Ev) {
        match ev {
            Ev::Publish(p) => self.publishes.push_back(p),
            Ev::SubAck(c) => self.subacks.push_back(c),
            Ev::PubAck => self.pubacks += 1,
            Ev::PubRec => self.pubrecs += 1,
            Ev::PubComp => self.pubcomps += 1,
            Ev::UnsubAck => self.unsubacks += 1,
            Ev::PubAckSent => self.pubacks_sent += 1,
            Ev::DisconnectSent => self.disconnect_sent = true,
            Ev::Closed(why) => self.closed = Some(why),
        }
    }

    /// Takes every event already reported, without waiting.
    fn drain(&mut self) {
        while let Ok(ev) = self.rx.try_recv() {
            self.take(ev);
        }
    }

    /// Waits for one more event until `deadline`; false when none came (or the
    /// event loop is gone).
    async fn pump(&mut self, deadline: tokio::time::Instant) -> bool {
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Ok(Some(ev)) => {
                self.take(ev);
                true
            }
            Ok(None) | Err(_) => false,
        }
    }

    /// Waits until `done` holds, pumping events; panics with `what` on timeout,
    /// or when the connection closes first (unless `done` holds then).
    async fn wait_until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        self.drain();
        loop {
            if done(self) {
                return;
            }
            if let Some(why) = &self.closed {
                panic!("{}: connection closed ({why}) while waiting for {what}", self.thing);
            }
            if !self.pump(deadline).await {
                self.drain();
                if done(self) {
                    return;
                }
                panic!("{}: timed out after {DEADLINE:?} waiting for {what}", self.thing);
            }
        }
    }

    /// Subscribes to `filters` in one SUBSCRIBE; returns the SUBACK codes.
    pub async fn subscribe(&mut self, filters: &[(&str, QoS)]) -> Vec<SubscribeReasonCode> {
        self.client.subscribe_many(filters.iter().map(|(f, q)| SubscribeFilter::new(f.to_string(), *q))).await.expect("subscribe request");
        self.wait_until("SUBACK", |d| !d.subacks.is_empty()).await;
        self.subacks.pop_front().unwrap()
    }

    /// Subscribes to one filter and asserts it is granted at `granted`.
    pub async fn sub(&mut self, filter: &str, qos: QoS) {
        let codes = self.subscribe(&[(filter, qos)]).await;
        let want = if qos == QoS::AtMostOnce { QoS::AtMostOnce } else { QoS::AtLeastOnce };
        assert_eq!(codes, vec![SubscribeReasonCode::Success(want)], "{}: SUBSCRIBE {filter} not granted", self.thing);
    }

    pub async fn unsubscribe(&mut self, filter: &str) {
        let before = self.unsubacks;
        self.client.unsubscribe(filter).await.expect("unsubscribe request");
        self.wait_until("UNSUBACK", |d| d.unsubacks > before).await;
    }

    /// Hands a PUBLISH to the event loop without waiting for acknowledgements.
    pub async fn publish_nowait(&mut self, topic: &str, qos: QoS, retain: bool, payload: impl Into<Bytes>) {
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.qos1_sent += 1,
            QoS::ExactlyOnce => self.qos2_sent += 1,
        }
        self.client.publish_bytes(topic, qos, retain, payload.into()).await.expect("publish request");
    }

    /// Publishes and, for QoS 1 and 2, waits until every publish so far is
    /// acknowledged (PUBACK, or PUBREC then PUBCOMP).
    pub async fn publish(&mut self, topic: &str, qos: QoS, payload: impl Into<Bytes>) {
        self.publish_nowait(topic, qos, false, payload).await;
        self.wait_acked().await;
    }

    /// Waits until every QoS 1 and 2 publish sent so far is acknowledged.
    pub async fn wait_acked(&mut self) {
        let (q1, q2) = (self.qos1_sent, self.qos2_sent);
        self.wait_until("acknowledgements of our publishes", |d| d.pubacks >= q1 && d.pubrecs >= q2 && d.pubcomps >= q2).await;
    }

    /// Counts of PUBREC and PUBCOMP received (the QoS 2 handshake).
    pub fn qos2_acks(&mut self) -> (usize, usize) {
        self.drain();
        (self.pubrecs, self.pubcomps)
    }

    /// The next message, waiting up to `timeout`.
    pub async fn recv_within(&mut self, timeout: Duration) -> Option<Publish> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.drain();
        loop {
            if let Some(p) = self.publishes.pop_front() {
                return Some(p);
            }
            if self.closed.is_some() || !self.pump(deadline).await {
                self.drain();
                return self.publishes.pop_front();
            }
        }
    }

    /// The next message; panics when none arrives in time.
    pub async fn recv(&mut self) -> Publish {
        match self.recv_within(DEADLINE).await {
            Some(p) => p,
            None => panic!(
                "{}: no message within {DEADLINE:?}{}",
                self.thing,
                self.closed.as_ref().map(|w| format!(" (connection closed: {w})")).unwrap_or_default()
            ),
        }
    }

    /// Asserts that the next message is `payload` on `topic`; returns it.
    pub async fn expect(&mut self, topic: &str, payload: &str) -> Publish {
        let p = self.recv().await;
        assert_eq!(
            (p.topic.as_str(), String::from_utf8_lossy(&p.payload).as_ref()),
            (topic, payload),
            "{}: unexpected message",
            self.thing
        );
        p
    }

    /// Asserts that no message arrives within [`SETTLE`].
    pub async fn expect_silence(&mut self) {
        if let Some(p) = self.recv_within(SETTLE).await {
            panic!("{}: unexpected message on {} ({:?})", self.thing, p.topic, String::from_utf8_lossy(&p.payload));
        }
    }

    /// Acknowledges a QoS 1 message (with [`Opts::manual_acks`]) and waits
    /// until the PUBACK is written to the socket.
    pub async fn ack(&mut self, p: &Publish) {
        self.drain();
        let before = self.pubacks_sent;
        self.client.ack(p).await.expect("ack request");
        self.wait_until("our PUBACK to be sent", |d| d.pubacks_sent > before).await;
    }

    /// Whether the connection is still up, as far as reported so far.
    pub fn is_connected(&mut self) -> bool {
        self.drain();
        self.closed.is_none() && !self.task.is_finished()
    }

    /// Waits until the core closes the connection; returns the client's reason.
    pub async fn wait_closed(&mut self) -> String {
        self.wait_until("the connection to close", |d| d.closed.is_some()).await;
        self.closed.clone().unwrap()
    }

    /// Sends DISCONNECT and waits for the core to close the connection.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.expect("disconnect request");
        self.wait_until("DISCONNECT to be sent", |d| d.disconnect_sent || d.closed.is_some()).await;
        self.wait_until("the core to close after DISCONNECT", |d| d.closed.is_some()).await;
    }

    /// Drops the connection without DISCONNECT (as a device losing power does).
    pub async fn drop_connection(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A payload as text.
pub fn text(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}
