//! The clients of a run: connecting (TLS + CONNECT), subscribing, publishers,
//! the readers of their PUBACKs, and subscribers. MQTT 3.1.1 through rumqttc's
//! `mqttbytes::v4` codec; how packets reach TLS is [`Writes`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet, PubAck, Publish, Subscribe, SubscribeReasonCode};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::seqset::{pkid_of, seq_of_pkid, SeqSet};
use super::{now_ns, pub_name, sub_name, topic, Rd, Shared, Target, Wr, Writes, HEADER, KEEP_ALIVE_S, MAX_PACKET};

/// `Batched`: bytes of PUBLISH packets per write at most.
const BATCH_BYTES: usize = 64 * 1024;
/// `PerPacket`: packets a publisher writes (one write each) before it looks at
/// its window and the stop signal again.
const BURST: u64 = 64;

/// TCP + TLS (client certificate of `thing`) + CONNECT/CONNACK with client id
/// `thing`.
pub(super) async fn connect(target: &Target, roots: Arc<rustls::RootCertStore>, thing: &str) -> Result<TlsStream<TcpStream>> {
    let config = crate::tls::client_config(
        roots,
        &target.certs_dir.join(format!("{thing}.cert.pem")),
        &target.certs_dir.join(format!("{thing}.private.key")),
    )?;
    let tcp = TcpStream::connect(target.addr).await.with_context(|| format!("{thing}: connecting to {}", target.addr))?;
    // As paho does; every broker measured sets it on its side too.
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from(target.server_name.clone())?;
    let mut tls = TlsConnector::from(config).connect(name, tcp).await.with_context(|| format!("{thing}: TLS handshake"))?;
    let mut c = Connect::new(thing);
    c.keep_alive = KEEP_ALIVE_S;
    c.clean_session = true;
    let mut buf = BytesMut::new();
    Packet::Connect(c).write(&mut buf, MAX_PACKET)?;
    tls.write_all(&buf).await?;
    tls.flush().await?;
    let mut rbuf = BytesMut::with_capacity(1024);
    match read_packet(&mut tls, &mut rbuf).await.with_context(|| format!("{thing}: waiting for CONNACK"))? {
        Packet::ConnAck(a) if a.code == ConnectReturnCode::Success => Ok(tls),
        Packet::ConnAck(a) => bail!("{thing}: connection refused: {:?}", a.code),
        p => bail!("{thing}: expected CONNACK, got {p:?}"),
    }
}

pub(super) async fn subscribe<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, filters: &[String], qos: QoS) -> Result<()> {
    let mut sub = Subscribe::new(filters[0].clone(), qos);
    for f in &filters[1..] {
        sub.add(f.clone(), qos);
    }
    sub.pkid = 1;
    let mut buf = BytesMut::new();
    Packet::Subscribe(sub).write(&mut buf, MAX_PACKET)?;
    s.write_all(&buf).await?;
    s.flush().await?;
    let mut rbuf = BytesMut::with_capacity(1024);
    match read_packet(s, &mut rbuf).await? {
        Packet::SubAck(a) => {
            for (f, c) in filters.iter().zip(&a.return_codes) {
                if matches!(c, SubscribeReasonCode::Failure) {
                    bail!("SUBSCRIBE to '{f}' refused");
                }
            }
            Ok(())
        }
        p => bail!("expected SUBACK, got {p:?}"),
    }
}

async fn read_packet<S: AsyncRead + Unpin>(s: &mut S, buf: &mut BytesMut) -> Result<Packet> {
    loop {
        match Packet::read(buf, MAX_PACKET) {
            Ok(p) => return Ok(p),
            Err(CodecError::InsufficientBytes(_)) => {
                buf.reserve(4096);
                if s.read_buf(buf).await? == 0 {
                    bail!("connection closed by the broker");
                }
            }
            Err(e) => bail!("malformed packet from the broker: {e}"),
        }
    }
}

pub(super) struct PubParams {
    pub index: usize,
    pub subs: Vec<usize>,
    pub qos: QoS,
    pub payload: usize,
    /// Most messages in flight end to end (`None`: flat out).
    pub end_to_end: Option<u64>,
    /// QoS 1: most messages unacknowledged by the broker.
    pub unacked: u64,
    pub writes: Writes,
    /// `Batched`: most packets per write (0: as many as fit in 64 KiB).
    pub batch: usize,
    /// Pacing: one message per interval (rate runs).
    pub interval: Option<Duration>,
}

/// Appends PUBLISH `seq` of publisher `i` to `buf`, stamped `ts`.
fn encode(publish: &mut Publish, buf: &mut BytesMut, i: usize, seq: u64, ts: u64) -> Result<()> {
    if publish.qos != QoS::AtMostOnce {
        publish.pkid = pkid_of(seq);
    }
    publish.write(buf)?;
    let start = buf.len() - publish.payload.len();
    let h = &mut buf[start..start + HEADER];
    h[0..4].copy_from_slice(&(i as u32).to_le_bytes());
    h[4..12].copy_from_slice(&seq.to_le_bytes());
    h[12..20].copy_from_slice(&ts.to_le_bytes());
    Ok(())
}

/// What a publisher did.
pub(super) struct PubStats {
    /// Messages written.
    pub sent: u64,
    /// Why the connection ended before the run did (the broker closed it).
    pub cut: Option<String>,
    /// The connection, still open (without `cut`): DISCONNECT is sent once
    /// the broker has acknowledged and delivered what it was sent
    /// ([`disconnect`]).
    pub wr: Option<Wr>,
}

/// Publishes until `stop`, or until the broker closes the connection.
pub(super) async fn publisher(p: PubParams, mut wr: Wr, shared: Arc<Shared>) -> Result<PubStats> {
    let i = p.index;
    let mut publish = Publish::from_bytes(topic(i), p.qos, Bytes::from(vec![0x5au8; p.payload]));
    if p.qos != QoS::AtMostOnce {
        publish.pkid = 1;
    }
    let per_msg = Packet::Publish(publish.clone()).size();
    let max_burst = match p.writes {
        Writes::PerPacket => BURST,
        Writes::Batched if p.batch > 0 => ((BATCH_BYTES / per_msg).max(1) as u64).min(p.batch as u64),
        Writes::Batched => (BATCH_BYTES / per_msg).max(1) as u64,
    };
    let mut buf = BytesMut::with_capacity(BATCH_BYTES + per_msg);
    let mut seq = 0u64;
    let started = tokio::time::Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let mut allowed = u64::MAX;
        if let Some(window) = p.end_to_end {
            let floor = p.subs.iter().map(|&j| shared.last[j][i].load(Ordering::Acquire)).min().unwrap_or(seq);
            allowed = (floor + window).saturating_sub(seq);
        }
        if p.qos != QoS::AtMostOnce {
            let acked = shared.acked[i].load(Ordering::Acquire);
            allowed = allowed.min((acked + p.unacked).saturating_sub(seq));
        }
        if let Some(iv) = p.interval {
            let due = (started.elapsed().as_nanos() / iv.as_nanos()) as u64 + 1;
            if due <= seq {
                tokio::time::sleep_until(started + iv * (seq as u32)).await;
                continue;
            }
            allowed = allowed.min(due - seq);
        }
        if allowed == 0 {
            tokio::select! {
                _ = shared.wake[i].notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            continue;
        }
        let n = allowed.min(max_burst);
        let (packets, written) = match p.writes {
            Writes::PerPacket => {
                let mut r = Ok(());
                for _ in 0..n {
                    buf.clear();
                    encode(&mut publish, &mut buf, i, seq, now_ns())?;
                    r = write(&mut wr, &buf, &shared.sent[i], &mut seq, 1).await;
                    if r.is_err() {
                        break;
                    }
                }
                (1, r)
            }
            Writes::Batched => {
                buf.clear();
                let ts = now_ns();
                for k in 0..n {
                    encode(&mut publish, &mut buf, i, seq + k, ts)?;
                }
                (n, write(&mut wr, &buf, &shared.sent[i], &mut seq, n).await)
            }
        };
        if let Err(e) = written {
            seq -= packets;
            shared.sent[i].store(seq, Ordering::Release);
            shared.pubs_cut.fetch_add(1, Ordering::AcqRel);
            return Ok(PubStats { sent: seq, cut: Some(format!("{}: writing: {e}", pub_name(i))), wr: None });
        }
    }
    Ok(PubStats { sent: seq, cut: None, wr: Some(wr) })
}

/// Ends a connection politely (DISCONNECT); errors do not matter any more.
pub(super) async fn disconnect(wr: &mut Wr) {
    let mut b = BytesMut::new();
    if Packet::Disconnect.write(&mut b, MAX_PACKET).is_ok() {
        let _ = wr.write_all(&b).await;
        let _ = wr.flush().await;
    }
}

/// Writes `packets` encoded messages, counting them as sent first (a PUBACK
/// can come back while the write is still being flushed).
async fn write(wr: &mut Wr, buf: &[u8], sent: &std::sync::atomic::AtomicU64, seq: &mut u64, packets: u64) -> std::io::Result<()> {
    *seq += packets;
    sent.store(*seq, Ordering::Release);
    wr.write_all(buf).await?;
    wr.flush().await
}

/// The messages of one publisher the broker acknowledged.
#[derive(Debug, Default)]
pub(super) struct AckStats {
    pub acked: SeqSet,
    /// PUBACKs naming no message sent, or one already acknowledged.
    pub stray: u64,
}

/// Reads what the broker sends a publisher (PUBACKs) until the run ends.
pub(super) async fn publisher_reader(i: usize, mut rd: Rd, shared: Arc<Shared>, mut done: watch::Receiver<bool>) -> Result<AckStats> {
    let mut stats = AckStats::default();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        loop {
            match Packet::read(&mut buf, MAX_PACKET) {
                Ok(Packet::PubAck(a)) => {
                    let sent = shared.sent[i].load(Ordering::Acquire);
                    match seq_of_pkid(a.pkid, sent) {
                        Some(seq) if stats.acked.insert(seq) => {
                            shared.acked[i].fetch_add(1, Ordering::AcqRel);
                        }
                        _ => stats.stray += 1,
                    }
                }
                Ok(_) => {}
                Err(CodecError::InsufficientBytes(_)) => break,
                Err(e) => bail!("{}: malformed packet from the broker: {e}", pub_name(i)),
            }
        }
        shared.wake[i].notify_one();
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        let n = tokio::select! {
            r = rd.read_buf(&mut buf) => r,
            _ = done.changed() => return Ok(stats),
        };
        match n {
            Ok(0) | Err(_) => return Ok(stats),
            Ok(_) => {}
        }
    }
}

/// What one subscriber received.
#[derive(Debug)]
pub(super) struct SubStats {
    pub hist: Histogram<u64>,
    pub in_window: u64,
    /// `received[i]`: the sequence numbers of publisher i's messages received.
    pub received: Vec<SeqSet>,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Why the connection ended before the run did (the broker closed it).
    pub cut: Option<String>,
}

/// Receives (and, at QoS 1, acknowledges) until the run ends or the broker
/// closes the connection.
pub(super) async fn subscriber(
    j: usize,
    mut rd: Rd,
    mut wr: Wr,
    writes: Writes,
    shared: Arc<Shared>,
    mut done: watch::Receiver<bool>,
) -> Result<SubStats> {
    let np = shared.last[j].len();
    let mut stats = SubStats {
        hist: Histogram::new_with_bounds(1, 600_000_000_000, 3)?,
        in_window: 0,
        received: (0..np).map(|_| SeqSet::new()).collect(),
        duplicates: 0,
        out_of_order: 0,
        cut: None,
    };
    let mut last: Vec<u64> = vec![0; np];
    let mut advanced: Vec<usize> = Vec::with_capacity(np);
    let mut marked: Vec<bool> = vec![false; np];
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut acks = BytesMut::with_capacity(4096);
    loop {
        if buf.capacity() - buf.len() < 32 * 1024 {
            buf.reserve(256 * 1024);
        }
        let n = tokio::select! {
            biased;
            r = rd.read_buf(&mut buf) => r,
            _ = done.changed() => break,
        };
        match n {
            Ok(0) if *done.borrow() => break,
            Ok(0) => stats.cut = Some(format!("{}: connection closed by the broker", sub_name(j))),
            Ok(_) => {}
            Err(e) => stats.cut = Some(format!("{}: read failed: {e}", sub_name(j))),
        }
        if stats.cut.is_some() {
            break;
        }
        let now = now_ns();
        let in_window = now >= shared.window_start.load(Ordering::Relaxed) && now < shared.window_end.load(Ordering::Relaxed);
        let mut count = 0u64;
        loop {
            let publish = match Packet::read(&mut buf, MAX_PACKET) {
                Ok(Packet::Publish(p)) => p,
                Ok(_) => continue,
                Err(CodecError::InsufficientBytes(_)) => break,
                Err(e) => bail!("{}: malformed packet from the broker: {e}", sub_name(j)),
            };
            count += 1;
            if publish.qos == QoS::AtLeastOnce {
                PubAck::new(publish.pkid).write(&mut acks)?;
                if writes == Writes::PerPacket && stats.cut.is_none() {
                    // Acknowledged as it is handled, one write per PUBACK.
                    if let Err(e) = write_acks(&mut wr, &mut acks).await {
                        stats.cut = Some(format!("{}: writing a PUBACK: {e}", sub_name(j)));
                    }
                }
            }
            let h = &publish.payload;
            if h.len() < HEADER {
                bail!("{}: payload of {} bytes has no header", sub_name(j), h.len());
            }
            let field = |r: std::ops::Range<usize>| h[r].iter().rev().fold(0u64, |a, b| (a << 8) | u64::from(*b));
            let pi = field(0..4) as usize;
            let seq = field(4..12);
            let ts = field(12..20);
            if pi >= np {
                bail!("{}: message from unknown publisher {pi}", sub_name(j));
            }
            if !stats.received[pi].insert(seq) {
                stats.duplicates += 1;
                continue;
            }
            if seq < last[pi] {
                stats.out_of_order += 1;
            } else {
                last[pi] = seq + 1;
                if !marked[pi] {
                    marked[pi] = true;
                    advanced.push(pi);
                }
            }
            if in_window {
                stats.in_window += 1;
                let _ = stats.hist.record(now.saturating_sub(ts).max(1));
            }
        }
        if !acks.is_empty() && stats.cut.is_none() {
            if let Err(e) = write_acks(&mut wr, &mut acks).await {
                stats.cut = Some(format!("{}: writing PUBACKs: {e}", sub_name(j)));
            }
        }
        for &pi in &advanced {
            shared.last[j][pi].store(last[pi], Ordering::Release);
            shared.wake[pi].notify_one();
            marked[pi] = false;
        }
        advanced.clear();
        shared.received.fetch_add(count, Ordering::Relaxed);
        if stats.cut.is_some() {
            break;
        }
    }
    if stats.cut.is_some() {
        shared.subs_cut.fetch_add(1, Ordering::AcqRel);
        return Ok(stats);
    }
    disconnect(&mut wr).await;
    Ok(stats)
}

async fn write_acks(wr: &mut Wr, acks: &mut BytesMut) -> std::io::Result<()> {
    wr.write_all(acks).await?;
    acks.clear();
    wr.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_publish_carries_publisher_sequence_and_time() {
        let mut p = Publish::from_bytes(topic(3), QoS::AtLeastOnce, Bytes::from(vec![0u8; 64]));
        let mut buf = BytesMut::new();
        encode(&mut p, &mut buf, 3, 65_535, 42).unwrap();
        encode(&mut p, &mut buf, 3, 65_536, 43).unwrap();
        for (seq, ts) in [(65_535u64, 42u64), (65_536, 43)] {
            let Packet::Publish(got) = Packet::read(&mut buf, MAX_PACKET).unwrap() else { panic!("not a PUBLISH") };
            assert_eq!(got.pkid, pkid_of(seq));
            assert_eq!(seq_of_pkid(got.pkid, seq + 1), Some(seq));
            assert_eq!(u32::from_le_bytes(got.payload[0..4].try_into().unwrap()), 3);
            assert_eq!(u64::from_le_bytes(got.payload[4..12].try_into().unwrap()), seq);
            assert_eq!(u64::from_le_bytes(got.payload[12..20].try_into().unwrap()), ts);
            assert_eq!(got.payload.len(), 64);
        }
        assert!(buf.is_empty());
    }
}
