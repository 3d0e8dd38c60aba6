//! How large each kind of frame may be.
//!
//! A frame's body starts with its message's kind (postcard writes the enum
//! variant's index first), so a reader knows after five bytes what the frame
//! is and how long it says it is: a frame longer than its kind may be is
//! refused before any room is made for it. The limits follow from what each
//! kind carries: a payload (an event, a result, a publish) is bounded by
//! `maxPayloadBytes`, text (log lines, failure messages) by
//! [`MAX_TEXT_BYTES`], a function spec by [`MAX_SPEC_BYTES`], the rest is a
//! few fields. Workers check what they send against the same limits and turn
//! what would exceed them into an error for the function.

use crate::FrameError;

/// Room for everything in a payload-carrying frame besides the payload: a
/// topic (up to 65,535 bytes), ARNs, a client context, ids and postcard's
/// own framing.
pub const FRAMING_ALLOWANCE: usize = 128 * 1024;
/// Longest text a worker sends in one frame (a log line, a failure message);
/// workers cut longer text, saying how much was cut.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Largest function spec (`Start`, `Fork`): paths, handler, environment.
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;
/// Largest frame of the kinds that carry only a few small fields (`Hello`,
/// `Ready`, `Forked`, `Stop`, ...).
pub const MAX_SMALL_BYTES: usize = 4 * 1024;

/// Which way frames go: a reader reads one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Worker to core ([`crate::Up`]).
    Up,
    /// Core to worker ([`crate::Down`]).
    Down,
}

/// What a kind of frame carries, which sets its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carries {
    Small,
    Text,
    Payload,
    Spec,
}

/// Kinds of [`crate::Up`], in declaration order (a variant's index is its tag).
const UP_KINDS: &[(&str, Carries)] = &[
    ("Hello", Carries::Small),
    ("Ready", Carries::Small),
    ("StartFailed", Carries::Text),
    ("Result", Carries::Payload),
    ("Call", Carries::Payload),
    ("Log", Carries::Text),
    ("ZygoteReady", Carries::Text),
    ("ZygoteFailed", Carries::Text),
    ("Forked", Carries::Small),
    ("ForkFailed", Carries::Text),
    ("ChildExited", Carries::Small),
];

/// Kinds of [`crate::Down`], in declaration order.
const DOWN_KINDS: &[(&str, Carries)] = &[
    ("Start", Carries::Spec),
    ("Invoke", Carries::Payload),
    ("Reply", Carries::Payload),
    ("Fork", Carries::Spec),
    ("ForkSpare", Carries::Spec),
    ("Stop", Carries::Small),
];

/// The limits a reader (or a careful writer) applies to one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    pub direction: Direction,
    /// `maxPayloadBytes` (0 before the worker knows it: payload-carrying
    /// frames then get only [`FRAMING_ALLOWANCE`]).
    pub max_payload: usize,
}

impl FrameLimits {
    /// Frames from workers, with `maxPayloadBytes` = `max_payload`.
    pub const fn up(max_payload: usize) -> Self {
        Self { direction: Direction::Up, max_payload }
    }

    /// Frames to workers, with `maxPayloadBytes` = `max_payload`.
    pub const fn down(max_payload: usize) -> Self {
        Self { direction: Direction::Down, max_payload }
    }

    fn kinds(&self) -> &'static [(&'static str, Carries)] {
        match self.direction {
            Direction::Up => UP_KINDS,
            Direction::Down => DOWN_KINDS,
        }
    }

    /// The name of kind `tag`, if this direction has one.
    pub fn kind_name(&self, tag: u8) -> Option<&'static str> {
        self.kinds().get(usize::from(tag)).map(|(name, _)| *name)
    }

    /// The largest body a frame of kind `tag` may have.
    pub fn limit(&self, tag: u8) -> Result<usize, FrameError> {
        let (_, carries) = self.kinds().get(usize::from(tag)).ok_or(FrameError::UnknownKind(tag))?;
        Ok(match carries {
            Carries::Small => MAX_SMALL_BYTES,
            Carries::Text => MAX_TEXT_BYTES + MAX_SMALL_BYTES,
            Carries::Payload => self.max_payload.saturating_add(FRAMING_ALLOWANCE),
            Carries::Spec => MAX_SPEC_BYTES,
        })
    }

    /// Checks a body of `len` bytes whose first byte is `tag`.
    pub fn check(&self, tag: u8, len: usize) -> Result<(), FrameError> {
        let limit = self.limit(tag)?;
        if len > limit {
            let kind = self.kind_name(tag).unwrap_or("unknown");
            return Err(FrameError::TooLarge { kind, len, limit });
        }
        Ok(())
    }

    /// Checks a whole frame as [`crate::encode`] made it (before sending it).
    pub fn check_frame(&self, frame: &[u8]) -> Result<(), FrameError> {
        match frame.get(4) {
            Some(tag) => self.check(*tag, frame.len() - 4),
            None => Err(FrameError::Empty),
        }
    }
}

/// What a result over `maxPayloadBytes` becomes: an Unhandled error with this
/// message (results are bounded like payloads, so that passing one on to an
/// invoking function fits in its frame).
pub fn oversized_result(len: usize, max_payload: usize) -> String {
    format!("the function's result of {len} bytes is over maxPayloadBytes ({max_payload})")
}

/// Cuts `text` to at most [`MAX_TEXT_BYTES`] (at a character boundary),
/// saying how much was cut.
pub fn cut_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_TEXT_BYTES {
        return std::borrow::Cow::Borrowed(text);
    }
    let note_room = 64;
    let mut end = MAX_TEXT_BYTES - note_room;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{} [cut: {} more bytes]", &text[..end], text.len() - end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode, Call, Context, Down, Outcome, Reply, Role, Spec, Up};

    fn spec() -> Spec {
        Spec {
            function_arn: "arn".into(),
            runtime: "python3.11".into(),
            handler: "main.handler".into(),
            exec_args: String::new(),
            code_dir: "/code".into(),
            environment: vec![("K".into(), "V".into())],
            binary: false,
            memory_limit_kb: 1024,
            timeout_ms: 1000,
            pinned: true,
            sdk_dirs: vec![],
            uid: None,
            gid: None,
            cgroup_procs: None,
            max_payload: 128 * 1024,
            wait_for: Vec::new(),
        }
    }

    /// One message of every kind, each named as in the tables.
    fn every_up() -> Vec<(&'static str, Up)> {
        vec![
            ("Hello", Up::Hello { protocol: 1, token: "t".into(), role: Role::Instance, pid: 1 }),
            ("Ready", Up::Ready),
            ("StartFailed", Up::StartFailed { message: "m".into() }),
            ("Result", Up::Result { id: 1, outcome: Outcome::Ok(vec![1]) }),
            ("Call", Up::Call { corr: 1, call: Call::GetSecret { payload: vec![] } }),
            ("Log", Up::Log { level: 1, message: "m".into() }),
            ("ZygoteReady", Up::ZygoteReady { detail: "d".into() }),
            ("ZygoteFailed", Up::ZygoteFailed { message: "m".into() }),
            ("Forked", Up::Forked { token: "t".into(), pid: 2 }),
            ("ForkFailed", Up::ForkFailed { token: "t".into(), message: "m".into() }),
            ("ChildExited", Up::ChildExited { pid: 2, status: 0 }),
        ]
    }

    fn every_down() -> Vec<(&'static str, Down)> {
        let context = Context { invocation_id: "i".into(), client_context: String::new(), deadline_unix_ms: 0, event: true };
        vec![
            ("Start", Down::Start { spec: spec() }),
            ("Invoke", Down::Invoke { id: 1, event: vec![], context }),
            ("Reply", Down::Reply { corr: 1, reply: Reply::Done }),
            ("Fork", Down::Fork { token: "t".into(), spec: spec() }),
            ("ForkSpare", Down::ForkSpare { token: "t".into(), cgroup_procs: None }),
            ("Stop", Down::Stop),
        ]
    }

    /// The tables follow the enums: a variant added or moved fails here.
    #[test]
    fn kind_tables_follow_the_message_enums() {
        let up = FrameLimits::up(0);
        for (name, msg) in every_up() {
            let frame = encode(&msg);
            assert_eq!(up.kind_name(frame[4]), Some(name), "{msg:?}");
            assert!(up.check_frame(&frame).is_ok(), "{msg:?}");
        }
        assert_eq!(UP_KINDS.len(), every_up().len());
        let down = FrameLimits::down(0);
        for (name, msg) in every_down() {
            let frame = encode(&msg);
            assert_eq!(down.kind_name(frame[4]), Some(name), "{msg:?}");
            assert!(down.check_frame(&frame).is_ok(), "{msg:?}");
        }
        assert_eq!(DOWN_KINDS.len(), every_down().len());
    }

    #[test]
    fn limits_follow_what_a_kind_carries() {
        let up = FrameLimits::up(1000);
        assert_eq!(up.limit(0).unwrap(), MAX_SMALL_BYTES);
        assert_eq!(up.limit(3).unwrap(), 1000 + FRAMING_ALLOWANCE);
        assert_eq!(up.limit(5).unwrap(), MAX_TEXT_BYTES + MAX_SMALL_BYTES);
        assert!(matches!(up.limit(11), Err(FrameError::UnknownKind(11))));
        let down = FrameLimits::down(1000);
        assert_eq!(down.limit(0).unwrap(), MAX_SPEC_BYTES);
        assert_eq!(down.limit(1).unwrap(), 1000 + FRAMING_ALLOWANCE);
        assert!(matches!(down.limit(6), Err(FrameError::UnknownKind(6))));
        let e = down.check(5, MAX_SMALL_BYTES + 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("a Stop frame of {} bytes is over the {MAX_SMALL_BYTES}-byte limit for that kind", MAX_SMALL_BYTES + 1)
        );
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        assert_eq!(cut_text("short"), "short");
        let long = "é".repeat(MAX_TEXT_BYTES);
        let cut = cut_text(&long);
        assert!(cut.len() <= MAX_TEXT_BYTES, "{}", cut.len());
        assert!(cut.ends_with(" more bytes]"), "{}", &cut[cut.len() - 40..]);
    }
}
