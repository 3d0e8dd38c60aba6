//! What a run is: who talks to whom ([`Topology`]), payload, QoS, how fast
//! publishers go ([`Pace`]) and how clients write ([`Writes`]).

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Who talks to whom. Publishers are the things `pub-I`, subscribers `sub-J`;
/// publisher I publishes on `bench/pub-I`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Topology {
    /// N publishers, N subscribers, publisher I → subscriber I.
    Pairs(usize),
    /// N publishers → subscriber 0 (which subscribes to `bench/+`).
    FanIn(usize),
    /// Publisher 0 → N subscribers.
    FanOut(usize),
}

impl Topology {
    pub fn publishers(&self) -> usize {
        match *self {
            Topology::Pairs(n) | Topology::FanIn(n) => n,
            Topology::FanOut(_) => 1,
        }
    }

    pub fn subscribers(&self) -> usize {
        match *self {
            Topology::Pairs(n) | Topology::FanOut(n) => n,
            Topology::FanIn(_) => 1,
        }
    }

    /// Every (publisher, subscriber) pair that must be routed, and nothing else.
    pub fn routes(&self) -> Vec<(usize, usize)> {
        match *self {
            Topology::Pairs(n) => (0..n).map(|i| (i, i)).collect(),
            Topology::FanIn(n) => (0..n).map(|i| (i, 0)).collect(),
            Topology::FanOut(n) => (0..n).map(|j| (0, j)).collect(),
        }
    }

    /// The topic filters subscriber `j` subscribes to.
    pub fn filters(&self, j: usize) -> Vec<String> {
        match *self {
            Topology::Pairs(_) => vec![topic(j)],
            Topology::FanIn(_) => vec!["bench/+".to_string()],
            Topology::FanOut(_) => vec![topic(0)],
        }
    }

    pub fn label(&self) -> String {
        match *self {
            Topology::Pairs(n) => format!("{n}→{n}"),
            Topology::FanIn(n) => format!("{n}→1 fan-in"),
            Topology::FanOut(n) => format!("1→{n} fan-out"),
        }
    }

    /// Parses `pairs:N`, `fanin:N`, `fanout:N` (also `1:1`-style `N:N`).
    pub fn parse(s: &str) -> Result<Self> {
        let (kind, n) = s.split_once(':').ok_or_else(|| anyhow!("topology '{s}': expected pairs:N, fanin:N or fanout:N"))?;
        let n: usize = n.parse().with_context(|| format!("topology '{s}'"))?;
        if n == 0 {
            bail!("topology '{s}': N must be at least 1");
        }
        Ok(match kind {
            "pairs" => Topology::Pairs(n),
            "fanin" => Topology::FanIn(n),
            "fanout" => Topology::FanOut(n),
            _ => bail!("topology '{s}': expected pairs:N, fanin:N or fanout:N"),
        })
    }
}

pub fn pub_name(i: usize) -> String {
    format!("pub-{i}")
}

pub fn sub_name(j: usize) -> String {
    format!("sub-{j}")
}

pub fn topic(i: usize) -> String {
    format!("bench/pub-{i}")
}

/// Every thing name the largest scenario needs: `pub-0..N`, `sub-0..N`.
pub fn all_things(n: usize) -> Vec<String> {
    (0..n).map(pub_name).chain((0..n).map(sub_name)).collect()
}

/// How clients hand packets to TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Writes {
    /// Each packet (PUBLISH, PUBACK) its own write as it is produced: one TLS
    /// record and one system call per packet, as paho and the AWS device SDKs.
    #[default]
    PerPacket,
    /// Up to 64 KiB of PUBLISH packets per write, all PUBACKs of one read in one
    /// write. No device does this; kept for comparison, labelled in every row.
    Batched,
}

/// How fast publishers publish.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pace {
    /// As fast as the end-to-end window allows (a throughput run).
    #[default]
    Window,
    /// This many messages/s in total, shared by the publishers (a latency run;
    /// the window still applies).
    Rate(u64),
    /// As fast as the broker reads; no end-to-end window (QoS 1: at most
    /// `inflight` unacknowledged per publisher).
    FlatOut,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    pub topology: Topology,
    /// Payload bytes (at least [`HEADER`]).
    pub payload: usize,
    /// 0 or 1.
    pub qos: u8,
    #[serde(default)]
    pub pace: Pace,
    #[serde(default)]
    pub writes: Writes,
}

impl Scenario {
    /// E.g. `1→1 128 B QoS 0`, `1→1 128 B QoS 0 @ 1000/s`,
    /// `1→1 128 B QoS 1, flat out`, `10→10 128 B QoS 0, batched writes`.
    pub fn label(&self) -> String {
        let size = if self.payload >= 1024 && self.payload.is_multiple_of(1024) {
            format!("{} KiB", self.payload / 1024)
        } else {
            format!("{} B", self.payload)
        };
        let pace = match self.pace {
            Pace::Window => String::new(),
            Pace::Rate(r) => format!(" @ {r}/s"),
            Pace::FlatOut => ", flat out".to_string(),
        };
        let writes = match self.writes {
            Writes::PerPacket => "",
            Writes::Batched => ", batched writes",
        };
        format!("{} {size} QoS {}{pace}{writes}", self.topology.label(), self.qos)
    }

    /// What one unit of the throughput figure is: a message delivered to its
    /// one subscriber, or (fan-out) one of the N copies of a published message.
    pub fn counted(&self) -> String {
        match self.topology {
            Topology::FanOut(n) if n > 1 => format!("deliveries/s ({n} per message published)"),
            _ => "messages/s (one delivery each)".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_pace_and_writes() {
        let s = |pace, writes| Scenario { topology: Topology::Pairs(1), payload: 128, qos: 1, pace, writes };
        assert_eq!(s(Pace::Window, Writes::PerPacket).label(), "1→1 128 B QoS 1");
        assert_eq!(s(Pace::Rate(1000), Writes::PerPacket).label(), "1→1 128 B QoS 1 @ 1000/s");
        assert_eq!(s(Pace::FlatOut, Writes::PerPacket).label(), "1→1 128 B QoS 1, flat out");
        assert_eq!(s(Pace::Window, Writes::Batched).label(), "1→1 128 B QoS 1, batched writes");
        let f = Scenario { topology: Topology::FanOut(100), payload: 16 * 1024, qos: 0, pace: Pace::Window, writes: Writes::PerPacket };
        assert_eq!(f.label(), "1→100 fan-out 16 KiB QoS 0");
        assert!(f.counted().starts_with("deliveries/s (100 per message published)"));
        assert!(s(Pace::Window, Writes::PerPacket).counted().starts_with("messages/s"));
    }

    #[test]
    fn topology_parses() {
        assert_eq!(Topology::parse("pairs:10").unwrap(), Topology::Pairs(10));
        assert_eq!(Topology::parse("fanout:3").unwrap().routes(), vec![(0, 0), (0, 1), (0, 2)]);
        assert!(Topology::parse("fanout:0").is_err());
        assert!(Topology::parse("ring:2").is_err());
        assert!(Topology::parse("pairs").is_err());
    }
}
