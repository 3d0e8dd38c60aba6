//! Checks of what a publish carries, shared by the core and its workers (a
//! worker checks an SDK publish before sending it without waiting for an
//! answer; the core checks everything it receives).

use std::fmt;

/// Longest topic or filter accepted, in bytes (MQTT's own limit is 65535).
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// Why a topic name or topic filter is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    Empty,
    TooLong,
    Nul,
    WildcardInTopic,
    MisplacedHash,
    MisplacedPlus,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Empty => f.write_str("is empty"),
            TopicError::TooLong => write!(f, "is longer than {MAX_TOPIC_BYTES} bytes"),
            TopicError::Nul => f.write_str("contains the NUL character"),
            TopicError::WildcardInTopic => f.write_str("contains a wildcard ('+' or '#'), which a topic name may not"),
            TopicError::MisplacedHash => f.write_str("'#' must be the last level and stand alone (as in 'a/#')"),
            TopicError::MisplacedPlus => f.write_str("'+' must stand alone in its level (as in 'a/+/b')"),
        }
    }
}

impl std::error::Error for TopicError {}

/// Checks a concrete topic name, as carried by PUBLISH.
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    check_common(topic)?;
    if topic.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::WildcardInTopic);
    }
    Ok(())
}

/// Checks a topic filter, as carried by SUBSCRIBE or a subscription's Subject.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MisplacedHash);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::MisplacedPlus);
        }
    }
    Ok(())
}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong);
    }
    if s.contains('\0') {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// Why a function's publish is refused before it is routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    BadTopic(String),
    TooLarge(String),
}

/// The checks every function publish passes: a valid topic name and a payload
/// within `max_payload` bytes.
pub fn check_publish(topic: &str, payload_len: usize, max_payload: usize) -> Result<(), PublishError> {
    validate_topic(topic).map_err(|e| PublishError::BadTopic(format!("topic '{topic}' {e}")))?;
    if payload_len > max_payload {
        return Err(PublishError::TooLarge(format!("payload of {payload_len} bytes is over maxPayloadBytes ({max_payload})")));
    }
    Ok(())
}

/// Whether a topic level starts with `$` (not matched by a leading wildcard).
pub fn starts_with_dollar(level: &str) -> bool {
    level.starts_with('$')
}

/// Whether `filter` (assumed valid) matches `topic` (assumed valid). Does not allocate.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    let mut first = true;
    loop {
        match (f.next(), t.next()) {
            (Some("#"), tl) => {
                // '#' matches the parent level and any number of children, but a
                // leading wildcard never matches a '$' topic.
                return !(first && tl.is_some_and(starts_with_dollar));
            }
            (Some("+"), Some(tl)) => {
                if first && starts_with_dollar(tl) {
                    return false;
                }
            }
            (Some(fl), Some(tl)) => {
                if fl != tl {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
        first = false;
    }
}
