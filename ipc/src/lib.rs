//! The frames between the ggcore core and its worker processes, over a Unix
//! socket (`ROOT/ggc/socket/ipc.sock`).
//!
//! A frame is a little-endian `u32` length followed by a postcard-encoded
//! message. Every connection starts with [`Up::Hello`], which carries the
//! protocol version and the per-instance token the core handed out: the core
//! knows from the token which function (or zygote) is on the connection, so a
//! function can only ever speak as itself.
//!
//! The crate also owns the framing ([`frame`]): the core (with tokio, feature
//! `tokio`), the worker and the zygote (blocking, descriptors passed with
//! SCM_RIGHTS) all read frames with [`FrameReader`] and write them with
//! [`encode`], [`write_frame`] or [`frame::write_with_fds`].

pub mod frame;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
pub mod pidfd;
pub mod topic;

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change to the messages below.
pub const PROTOCOL_VERSION: u32 = 1;

pub use frame::FrameReader;
pub use limits::{Direction, FrameLimits};

/// What a connecting worker process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Hosts one function instance.
    Instance,
    /// Holds a prepared language runtime and forks instances on request.
    Zygote,
}

/// Frames from a worker to the core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Up {
    Hello {
        protocol: u32,
        token: String,
        role: Role,
        pid: u32,
    },
    /// The instance is started (module loaded) and takes invocations.
    Ready,
    /// The instance could not start.
    StartFailed {
        message: String,
    },
    /// The outcome of [`Down::Invoke`] `id`.
    Result {
        id: u64,
        outcome: Outcome,
    },
    /// A host callback; answered by [`Down::Reply`] with the same `corr`.
    Call {
        corr: u64,
        call: Call,
    },
    /// A line for the function's log (level as `ggcore_plugin_abi::LogLevel`).
    Log {
        level: u8,
        message: String,
    },
    /// Zygote: the runtime is prepared.
    ZygoteReady {
        detail: String,
    },
    /// Zygote: the runtime cannot be prepared; instances must be started directly.
    ZygoteFailed {
        message: String,
    },
    /// Zygote: forked the instance whose token is `token`.
    Forked {
        token: String,
        pid: u32,
    },
    ForkFailed {
        token: String,
        message: String,
    },
    /// Zygote: a forked child ended (exit code, or minus the signal number).
    ChildExited {
        pid: u32,
        status: i32,
    },
}

/// The outcome of an invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Ok(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A function error: `unhandled` or handled, with its error document.
    Err {
        unhandled: bool,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
}

/// Host callbacks, as the worker forwards them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Call {
    Publish {
        topic: String,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        queue_full_policy: String,
        claimed_source: String,
    },
    Invoke {
        function_arn: String,
        qualifier: String,
        event: bool,
        client_context: String,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    Shadow {
        op: u8,
        thing: String,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    GetSecret {
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
}

/// Answers to [`Call`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Done,
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    Invoked {
        invocation_id: String,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        function_error: String,
    },
    /// `code` as `ggcore_plugin_abi::HostErrorCode`.
    Error {
        code: u8,
        message: String,
    },
}

/// Frames from the core to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Down {
    /// Instance: start this function (after the worker dropped privileges).
    Start {
        spec: Spec,
    },
    Invoke {
        id: u64,
        #[serde(with = "serde_bytes")]
        event: Vec<u8>,
        context: Context,
    },
    Reply {
        corr: u64,
        reply: Reply,
    },
    /// Zygote: fork an instance for `spec`; the child says Hello with `token`.
    /// Its stdout and stderr descriptors travel with this frame (SCM_RIGHTS).
    Fork {
        token: String,
        spec: Spec,
    },
    /// Zygote: fork a spare child ahead of need: it joins `cgroup_procs`, says
    /// Hello with `token`, and waits for [`Down::Start`] (a cold start then
    /// costs neither a fork nor a cgroup move). Descriptors as for `Fork`.
    ForkSpare {
        token: String,
        cgroup_procs: Option<String>,
    },
    /// End the instance (or zygote) cleanly.
    Stop,
}

/// A function instance to start: the plugin's `FunctionSpec` plus what the
/// worker must do before handing over (identity, limits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub function_arn: String,
    pub runtime: String,
    pub handler: String,
    pub exec_args: String,
    pub code_dir: String,
    pub environment: Vec<(String, String)>,
    pub binary: bool,
    pub memory_limit_kb: u64,
    pub timeout_ms: u64,
    pub pinned: bool,
    pub sdk_dirs: Vec<String>,
    /// Switch to this user and group before starting (when the core may).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Write the worker's pid into this file first (a cgroup's `cgroup.procs`).
    pub cgroup_procs: Option<String>,
    /// `maxPayloadBytes`: publishes the worker checks against it need no answer.
    pub max_payload: u64,
    /// Topic filters whose publishes wait for the core's answer even so: the
    /// group routes them from this function to a target that acknowledges
    /// only once the message is durable (the cloud queue).
    #[serde(default)]
    pub wait_for: Vec<String>,
}

/// Per-invocation context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub invocation_id: String,
    pub client_context: String,
    pub deadline_unix_ms: u64,
    pub event: bool,
}

#[derive(Debug)]
pub enum FrameError {
    Io(io::Error),
    /// A frame longer than its kind may be ([`FrameLimits`]).
    TooLarge {
        kind: &'static str,
        len: usize,
        limit: usize,
    },
    /// A frame whose body starts with no kind known in its direction.
    UnknownKind(u8),
    /// A frame with an empty body.
    Empty,
    Decode(postcard::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::TooLarge { kind, len, limit } => {
                write!(f, "a {kind} frame of {len} bytes is over the {limit}-byte limit for that kind")
            }
            FrameError::UnknownKind(tag) => write!(f, "a frame of unknown kind {tag}"),
            FrameError::Empty => write!(f, "an empty frame"),
            FrameError::Decode(e) => write!(f, "undecodable frame: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// Encodes `msg` as one frame (length prefix included).
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serialising these plain enums into a Vec cannot fail.
    let mut out = postcard::to_extend(msg, vec![0u8; 4]).unwrap_or_else(|_| vec![0u8; 4]);
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// Decodes a frame body (without its length prefix).
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, FrameError> {
    postcard::from_bytes(body).map_err(FrameError::Decode)
}

/// Writes one message as a frame.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T) -> io::Result<()> {
    w.write_all(&encode(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T: Serialize + for<'a> Deserialize<'a> + PartialEq + std::fmt::Debug>(limits: FrameLimits, m: T) {
        let f = encode(&m);
        let mut r = &f[..];
        let mut reader = FrameReader::new(limits);
        let body = reader.read(&mut r).unwrap().unwrap();
        assert_eq!(decode::<T>(&body).unwrap(), m);
        assert!(reader.read(&mut r).unwrap().is_none());
    }

    #[test]
    fn frames_roundtrip() {
        roundtrip(FrameLimits::up(1 << 20), Up::Hello { protocol: PROTOCOL_VERSION, token: "t".into(), role: Role::Instance, pid: 7 });
        roundtrip(FrameLimits::up(1 << 20), Up::Result { id: 3, outcome: Outcome::Err { unhandled: true, payload: b"{}".to_vec() } });
        roundtrip(
            FrameLimits::down(1 << 20),
            Down::Invoke {
                id: 9,
                event: vec![0, 1, 2, 255],
                context: Context { invocation_id: "i".into(), client_context: "{}".into(), deadline_unix_ms: 5, event: false },
            },
        );
        roundtrip(
            FrameLimits::up(1 << 20),
            Up::Call {
                corr: 1,
                call: Call::Publish {
                    topic: "a/b".into(),
                    payload: vec![1; 1000],
                    queue_full_policy: String::new(),
                    claimed_source: String::new(),
                },
            },
        );
    }

    /// The wire form of a fixed frame: a change here needs a PROTOCOL_VERSION bump.
    #[test]
    fn golden_hello_frame() {
        let f = encode(&Up::Hello { protocol: 1, token: "ab".into(), role: Role::Zygote, pid: 300 });
        assert_eq!(f, vec![8, 0, 0, 0, 0, 1, 2, b'a', b'b', 1, 0xac, 0x02]);
    }

    #[test]
    fn bad_frames_are_errors() {
        assert!(decode::<Up>(&[200, 1, 2]).is_err());
        let mut short: &[u8] = &[5, 0, 0, 0, 1];
        assert!(FrameReader::new(FrameLimits::up(0)).read(&mut short).is_err());
    }
}
