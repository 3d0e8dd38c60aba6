//! The parts that need no connection: the C types, requests and their reads,
//! publish options, and what a `reply` frame means for the caller.

use std::ffi::{c_char, c_int, CStr};

use ggcore_frame::Frame;
use serde_json::json;

// gg_error
pub const GGE_SUCCESS: c_int = 0;
pub const GGE_OUT_OF_MEMORY: c_int = 1;
pub const GGE_INVALID_PARAMETER: c_int = 2;
pub const GGE_INVALID_STATE: c_int = 3;
pub const GGE_INTERNAL_FAILURE: c_int = 4;
pub const GGE_TERMINATE: c_int = 5;

// gg_request_status
pub const GG_REQUEST_SUCCESS: c_int = 0;
pub const GG_REQUEST_HANDLED: c_int = 1;
pub const GG_REQUEST_UNHANDLED: c_int = 2;
pub const GG_REQUEST_UNKNOWN: c_int = 3;
pub const GG_REQUEST_AGAIN: c_int = 4;

// gg_invoke_type
pub const GG_INVOKE_EVENT: c_int = 0;
pub const GG_INVOKE_REQUEST_RESPONSE: c_int = 1;

// gg_runtime_opt
pub const GG_RT_OPT_ASYNC: u32 = 1;

// gg_queue_full_policy_options
pub const GG_QUEUE_FULL_POLICY_BEST_EFFORT: c_int = 0;
pub const GG_QUEUE_FULL_POLICY_ALL_OR_ERROR: c_int = 1;

// gg_log_level
pub const GG_LOG_DEBUG: c_int = 1;
pub const GG_LOG_FATAL: c_int = 5;

/// A gg_error other than success, as the error side of the library's results.
pub type GgResult<T> = Result<T, c_int>;

/// `gg_request_result`.
#[repr(C)]
pub struct GgRequestResult {
    pub request_status: c_int,
}

/// `gg_lambda_context`.
#[repr(C)]
pub struct GgLambdaContext {
    pub function_arn: *const c_char,
    pub client_context: *const c_char,
}

/// `gg_invoke_options`.
#[repr(C)]
pub struct GgInvokeOptions {
    pub function_arn: *const c_char,
    pub customer_context: *const c_char,
    pub qualifier: *const c_char,
    pub kind: c_int,
    pub payload: *const std::ffi::c_void,
    pub payload_size: usize,
}

/// What `struct _gg_request *` points to: the answer to the last call and how
/// much of it was read.
#[derive(Debug, Default)]
pub struct GgRequest {
    pub data: Vec<u8>,
    pub pos: usize,
}

impl GgRequest {
    /// Holds a new answer (unread).
    pub fn set(&mut self, data: Vec<u8>) {
        self.data = data;
        self.pos = 0;
    }
}

/// What `struct _gg_publish_options *` points to.
#[derive(Debug)]
pub struct GgPublishOptions {
    /// The `queueFullPolicy` sent with a publish.
    pub policy: &'static str,
}

impl Default for GgPublishOptions {
    fn default() -> Self {
        GgPublishOptions { policy: "BestEffort" }
    }
}

/// The wire name of a `gg_queue_full_policy_options` value.
pub fn policy_name(policy: c_int) -> GgResult<&'static str> {
    match policy {
        GG_QUEUE_FULL_POLICY_BEST_EFFORT => Ok("BestEffort"),
        GG_QUEUE_FULL_POLICY_ALL_OR_ERROR => Ok("AllOrError"),
        _ => Err(GGE_INVALID_PARAMETER),
    }
}

/// The wire name of a `gg_invoke_type` value.
pub fn invoke_type_name(kind: c_int) -> GgResult<&'static str> {
    match kind {
        GG_INVOKE_EVENT => Ok("Event"),
        GG_INVOKE_REQUEST_RESPONSE => Ok("RequestResponse"),
        _ => Err(GGE_INVALID_PARAMETER),
    }
}

/// The frame level (0 DEBUG .. 4 FATAL) of a `gg_log_level` value.
pub fn frame_level(level: c_int) -> GgResult<u64> {
    if (GG_LOG_DEBUG..=GG_LOG_FATAL).contains(&level) {
        Ok((level - GG_LOG_DEBUG) as u64)
    } else {
        Err(GGE_INVALID_PARAMETER)
    }
}

/// Copies up to `n` unread bytes of `data` (from `*pos`) to `buf`; how many.
///
/// # Safety
/// `buf` is valid for `n` bytes of writes when `n > 0`.
pub unsafe fn read_into(data: &[u8], pos: &mut usize, buf: *mut u8, n: usize) -> usize {
    let start = (*pos).min(data.len());
    let count = n.min(data.len() - start);
    if count > 0 {
        // SAFETY: the caller vouches for buf; the source range is in data.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr().add(start), buf, count) };
    }
    *pos = start + count;
    count
}

/// Checks `(buf, n, amount)` for a read: `buf` may be NULL only when `n` is 0.
pub fn check_read_args(buf: *const u8, n: usize, amount: *const usize) -> GgResult<()> {
    if amount.is_null() || (buf.is_null() && n > 0) {
        return Err(GGE_INVALID_PARAMETER);
    }
    Ok(())
}

/// A NUL-terminated string argument as UTF-8 text; NULL or not UTF-8 is an
/// invalid parameter.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string.
pub unsafe fn text<'a>(p: *const c_char) -> GgResult<&'a str> {
    if p.is_null() {
        return Err(GGE_INVALID_PARAMETER);
    }
    // SAFETY: per the caller, a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| GGE_INVALID_PARAMETER)
}

/// Like [`text`], but NULL is `None`.
///
/// # Safety
/// As for [`text`].
pub unsafe fn optional_text<'a>(p: *const c_char) -> GgResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: as the caller vouches.
        unsafe { text(p) }.map(Some)
    }
}

/// Copies `(p, len)` into a vector (failing cleanly when memory is short);
/// NULL is allowed only with `len == 0`, and `len` must fit in a frame.
///
/// # Safety
/// `p` is valid for `len` bytes of reads when not NULL.
pub unsafe fn bytes(p: *const std::ffi::c_void, len: usize) -> GgResult<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() || len > ggcore_frame::MAX_PAYLOAD {
        return Err(GGE_INVALID_PARAMETER);
    }
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| GGE_OUT_OF_MEMORY)?;
    // SAFETY: per the caller, p has len readable bytes.
    v.extend_from_slice(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) });
    Ok(v)
}

/// What a `reply` frame means for the caller of the SDK function.
#[derive(Debug, PartialEq)]
pub struct Answer {
    /// What the function returns.
    pub error: c_int,
    /// `result->request_status`.
    pub status: c_int,
    /// What `gg_request_read` reads.
    pub data: Vec<u8>,
    /// For an `ok: false` reply: `CODE: message`, logged as a warning.
    pub failure: Option<String>,
}

/// Maps the core's reply to the SDK's error, status and readable answer.
pub fn interpret(reply: Frame) -> Answer {
    if reply.flag("ok") {
        let status = match reply.str("functionError") {
            "Handled" => GG_REQUEST_HANDLED,
            "Unhandled" => GG_REQUEST_UNHANDLED,
            _ => GG_REQUEST_SUCCESS,
        };
        return Answer { error: GGE_SUCCESS, status, data: reply.payload, failure: None };
    }
    let code = reply.str("code");
    let message = reply.str("message");
    let (error, status) = match code {
        "Full" => (GGE_SUCCESS, GG_REQUEST_AGAIN),
        "BadRequest" | "TooLarge" => (GGE_INVALID_PARAMETER, GG_REQUEST_UNKNOWN),
        _ => (GGE_SUCCESS, GG_REQUEST_UNKNOWN),
    };
    let data = json!({"code": code, "message": message}).to_string().into_bytes();
    Answer { error, status, data, failure: Some(format!("{code}: {message}")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(fields: serde_json::Value, payload: &[u8]) -> Frame {
        Frame::new("reply", fields, payload.to_vec())
    }

    #[test]
    fn replies_map_to_errors_and_statuses() {
        let ok = interpret(reply(json!({"corr": 1, "ok": true}), b"doc\0x"));
        assert_eq!(ok, Answer { error: GGE_SUCCESS, status: GG_REQUEST_SUCCESS, data: b"doc\0x".to_vec(), failure: None });
        for (fe, status) in [("", GG_REQUEST_SUCCESS), ("Handled", GG_REQUEST_HANDLED), ("Unhandled", GG_REQUEST_UNHANDLED)] {
            let a = interpret(reply(json!({"corr": 1, "ok": true, "invocationId": "i", "functionError": fe}), b"{}"));
            assert_eq!((a.error, a.status, a.data.as_slice()), (GGE_SUCCESS, status, &b"{}"[..]), "{fe}");
        }
        let cases = [
            ("Full", GGE_SUCCESS, GG_REQUEST_AGAIN),
            ("BadRequest", GGE_INVALID_PARAMETER, GG_REQUEST_UNKNOWN),
            ("TooLarge", GGE_INVALID_PARAMETER, GG_REQUEST_UNKNOWN),
            ("NotFound", GGE_SUCCESS, GG_REQUEST_UNKNOWN),
            ("Refused", GGE_SUCCESS, GG_REQUEST_UNKNOWN),
            ("Unavailable", GGE_SUCCESS, GG_REQUEST_UNKNOWN),
            ("Internal", GGE_SUCCESS, GG_REQUEST_UNKNOWN),
            ("SomethingNew", GGE_SUCCESS, GG_REQUEST_UNKNOWN),
        ];
        for (code, error, status) in cases {
            let a = interpret(reply(json!({"corr": 2, "ok": false, "code": code, "message": "why \"quoted\""}), b""));
            assert_eq!((a.error, a.status), (error, status), "{code}");
            let doc: serde_json::Value = serde_json::from_slice(&a.data).unwrap();
            assert_eq!(doc, json!({"code": code, "message": "why \"quoted\""}));
            assert_eq!(a.failure.as_deref(), Some(format!("{code}: why \"quoted\"").as_str()));
        }
    }

    #[test]
    fn reads_copy_in_pieces_and_end_with_zero() {
        let data = b"0123456789".to_vec();
        let mut pos = 0;
        let mut buf = [0u8; 4];
        let mut got = Vec::new();
        loop {
            let n = unsafe { read_into(&data, &mut pos, buf.as_mut_ptr(), buf.len()) };
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data);
        assert_eq!(unsafe { read_into(&data, &mut pos, buf.as_mut_ptr(), 4) }, 0, "still 0 at the end");
        let mut pos = 3;
        assert_eq!(unsafe { read_into(&data, &mut pos, std::ptr::null_mut(), 0) }, 0, "n = 0 reads nothing");
        assert_eq!(pos, 3);
        assert_eq!(check_read_args(std::ptr::null(), 0, &0), Ok(()));
        assert_eq!(check_read_args(std::ptr::null(), 1, &0), Err(GGE_INVALID_PARAMETER));
        assert_eq!(check_read_args(buf.as_ptr(), 1, std::ptr::null()), Err(GGE_INVALID_PARAMETER));
    }

    #[test]
    fn enum_values_map_to_wire_names() {
        assert_eq!(policy_name(0), Ok("BestEffort"));
        assert_eq!(policy_name(1), Ok("AllOrError"));
        assert_eq!(policy_name(2), Err(GGE_INVALID_PARAMETER));
        assert_eq!(policy_name(-1), Err(GGE_INVALID_PARAMETER));
        assert_eq!(invoke_type_name(0), Ok("Event"));
        assert_eq!(invoke_type_name(1), Ok("RequestResponse"));
        assert_eq!(invoke_type_name(2), Err(GGE_INVALID_PARAMETER));
        assert_eq!((frame_level(1), frame_level(5)), (Ok(0), Ok(4)));
        assert_eq!((frame_level(0), frame_level(6)), (Err(GGE_INVALID_PARAMETER), Err(GGE_INVALID_PARAMETER)));
        assert_eq!(GgPublishOptions::default().policy, "BestEffort");
    }

    #[test]
    fn argument_helpers_refuse_what_they_cannot_use() {
        assert_eq!(unsafe { text(std::ptr::null()) }, Err(GGE_INVALID_PARAMETER));
        assert_eq!(unsafe { text(c"t/1".as_ptr()) }, Ok("t/1"));
        assert_eq!(unsafe { text(c"\xff".as_ptr()) }, Err(GGE_INVALID_PARAMETER));
        assert_eq!(unsafe { optional_text(std::ptr::null()) }, Ok(None));
        assert_eq!(unsafe { bytes(std::ptr::null(), 0) }, Ok(Vec::new()));
        assert_eq!(unsafe { bytes(std::ptr::null(), 1) }, Err(GGE_INVALID_PARAMETER));
        assert_eq!(unsafe { bytes(b"a\0b".as_ptr().cast(), 3) }, Ok(b"a\0b".to_vec()));
    }
}
