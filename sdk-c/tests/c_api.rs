//! The C API end to end: C programs (tests/c/) built against
//! `include/greengrasssdk.h` and linked with the built
//! `libaws-greengrass-core-sdk-c.so`, run with this test playing the native
//! runtime plugin on fds 3/4.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ggcore_frame::{read_frame, Frame};
use serde_json::{json, Value};

const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:native:3";
const WAIT: Duration = Duration::from_secs(20);

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The built library, under its AWS name in a directory of its own, and the
/// test function linked with it; `None` (with the reason printed) when there
/// is no C compiler.
struct Built {
    lib_dir: PathBuf,
    lib: PathBuf,
    function: PathBuf,
}

fn built() -> Option<&'static Built> {
    static BUILT: OnceLock<Option<Built>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if Command::new("cc").arg("--version").output().is_err() {
                println!("skipping: no C compiler (cc) to build the test functions");
                return None;
            }
            // The test executable is in <target>/debug/deps; the cdylib in <target>/debug.
            let exe = std::env::current_exe().expect("test executable");
            let profile_dir = exe.parent().and_then(Path::parent).expect("target profile dir");
            let lib = profile_dir.join("libaws_greengrass_core_sdk_c.so");
            assert!(lib.exists(), "{} was not built", lib.display());
            let lib_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-c");
            std::fs::create_dir_all(&lib_dir).unwrap();
            let link = lib_dir.join("libaws-greengrass-core-sdk-c.so");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&lib, &link).unwrap();
            let function = lib_dir.join("function");
            let out = Command::new("cc")
                .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pthread", "-I"])
                .arg(manifest().join("include"))
                .arg(manifest().join("tests/c/function.c"))
                .arg("-o")
                .arg(&function)
                .arg("-L")
                .arg(&lib_dir)
                .arg("-laws-greengrass-core-sdk-c")
                .output()
                .unwrap();
            assert!(out.status.success(), "cc failed: {}", String::from_utf8_lossy(&out.stderr));
            Some(Built { lib_dir, lib, function })
        })
        .as_ref()
}

/// A running test function and this side of its pipes.
struct Function {
    child: Child,
    to: Option<File>,
    frames: Receiver<Frame>,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

fn pipe() -> (RawFd, RawFd) {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 fills the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    (fds[0], fds[1])
}

impl Function {
    fn spawn(built: &Built, mode: &str) -> Function {
        let (down_r, down_w) = pipe();
        let (up_r, up_w) = pipe();
        let mut cmd = Command::new(&built.function);
        cmd.arg(mode)
            .env("GGCORE_SDK_FDS", "3,4")
            .env("LD_LIBRARY_PATH", &built.lib_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec. The
        // ends go to high numbers first (they may be 3 or 4), then onto 3
        // and 4 (dup2 clears close-on-exec).
        unsafe {
            cmd.pre_exec(move || {
                let down = libc::fcntl(down_r, libc::F_DUPFD_CLOEXEC, 10);
                let up = libc::fcntl(up_w, libc::F_DUPFD_CLOEXEC, 10);
                if down < 0 || up < 0 || libc::dup2(down, 3) < 0 || libc::dup2(up, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        let mut child = cmd.spawn().unwrap();
        // SAFETY: our own pipe ends, each owned once from here on.
        let (to, mut from) = unsafe {
            libc::close(down_r);
            libc::close(up_w);
            (File::from_raw_fd(down_w), File::from_raw_fd(up_r))
        };
        let (tx, frames) = mpsc::channel();
        std::thread::spawn(move || {
            while let Ok(Some(f)) = read_frame(&mut from) {
                if tx.send(f).is_err() {
                    break;
                }
            }
        });
        let (line_tx, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = line_tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (mut err, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Function { child, to: Some(to), frames, stdout, stderr }
    }

    fn send(&mut self, frame: Frame) {
        self.to.as_mut().expect("fd 3 open").write_all(&frame.encode()).unwrap();
    }

    fn start(&mut self) {
        self.send(Frame::new(
            "start",
            json!({"functionArn": ARN, "handler": "function", "codeDir": "/tmp", "encoding": "binary",
                   "memoryLimitMb": 16, "timeoutMs": 3000, "pinned": true, "runtime": "executable"}),
            Vec::new(),
        ));
    }

    fn next(&self) -> Frame {
        self.frames.recv_timeout(WAIT).unwrap_or_else(|_| panic!("no frame from the function; stderr: {}", self.stderr.lock().unwrap()))
    }

    /// The next frame that is not a log (it must be of type `kind`) and the
    /// log frames before it as `(level, text)`.
    fn until(&self, kind: &str) -> (Frame, Vec<(u64, String)>) {
        let mut logs = Vec::new();
        loop {
            let f = self.next();
            if f.kind() == "log" {
                logs.push((f.u64("level").unwrap(), String::from_utf8(f.payload).unwrap()));
                continue;
            }
            assert_eq!(f.kind(), kind, "{f:?} (logs before it: {logs:?})");
            return (f, logs);
        }
    }

    fn invoke(&mut self, id: u64, event: &[u8], client_context: &str) {
        self.send(Frame::new(
            "invoke",
            json!({"id": id, "invocationId": format!("inv-{id}"), "clientContext": client_context,
                   "deadlineUnixMs": 0, "event": false}),
            event.to_vec(),
        ));
    }

    /// Invokes and returns the result's payload (and the logs before it).
    fn result_of(&mut self, id: u64, event: &[u8]) -> (Vec<u8>, Vec<(u64, String)>) {
        self.invoke(id, event, "");
        let (f, logs) = self.until("result");
        assert_eq!(f.u64("id"), Some(id));
        (f.payload, logs)
    }

    fn reply(&mut self, corr: u64, mut fields: Value, payload: &[u8]) {
        fields["corr"] = corr.into();
        self.send(Frame::new("reply", fields, payload.to_vec()));
    }

    fn wait(&mut self) -> ExitStatus {
        let until = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < until, "the function did not end; stderr: {}", self.stderr.lock().unwrap());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_function_is_exported_at_its_version_with_the_aws_soname() {
    let Some(built) = built() else { return };
    let syms = Command::new("readelf").args(["--dyn-syms", "-W"]).arg(&built.lib).output().unwrap();
    let syms = text(&syms.stdout);
    let v10 = [
        "gg_global_init",
        "gg_log",
        "gg_request_init",
        "gg_request_reuse",
        "gg_request_close",
        "gg_request_read",
        "gg_runtime_start",
        "gg_lambda_handler_read",
        "gg_lambda_handler_write_response",
        "gg_lambda_handler_write_error",
        "gg_invoke",
        "gg_publish",
        "gg_get_thing_shadow",
        "gg_update_thing_shadow",
        "gg_delete_thing_shadow",
    ];
    let v12 = ["gg_publish_options_init", "gg_publish_options_free", "gg_publish_options_set_queue_full_policy", "gg_publish_with_options"];
    let expected = v10.iter().map(|n| (*n, "1.0")).chain([("gg_get_secret_value", "1.1")]).chain(v12.iter().map(|n| (*n, "1.2")));
    for (name, version) in expected {
        let want = format!(" {name}@@aws_greengrass_core_sdk_c_{version}");
        assert!(syms.lines().any(|l| l.contains("FUNC") && l.ends_with(&want)), "{want} is not exported:\n{syms}");
    }
    let dynamic = Command::new("readelf").arg("-d").arg(&built.lib).output().unwrap();
    assert!(text(&dynamic.stdout).contains("Library soname: [libaws-greengrass-core-sdk-c.so]"));
    // The test function, linked against it, needs the three versions from
    // that name (what a binary linked against AWS's library needs too).
    let needs = Command::new("readelf").arg("-V").arg(&built.function).output().unwrap();
    let needs = text(&needs.stdout);
    assert!(needs.contains("File: libaws-greengrass-core-sdk-c.so"), "{needs}");
    for version in ["1.0", "1.1", "1.2"] {
        assert!(needs.contains(&format!("Name: aws_greengrass_core_sdk_c_{version}")), "{version} not needed:\n{needs}");
    }
}

#[test]
fn the_header_is_c89_and_cxx_with_aws_values_and_layouts() {
    if built().is_none() {
        return;
    }
    let check = manifest().join("tests/c/header_check.c");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let c = Command::new("cc")
        .args(["-std=c89", "-pedantic-errors", "-Wall", "-Wextra", "-Werror", "-c", "-I"])
        .arg(manifest().join("include"))
        .arg(&check)
        .arg("-o")
        .arg(out_dir.join("header_check_c.o"))
        .output()
        .unwrap();
    assert!(c.status.success(), "C89: {}", text(&c.stderr));
    if Command::new("c++").arg("--version").output().is_err() {
        println!("no C++ compiler: the header is not compiled as C++");
        return;
    }
    let cxx = Command::new("c++")
        .args(["-x", "c++", "-std=c++11", "-pedantic-errors", "-Wall", "-Wextra", "-Werror", "-c", "-I"])
        .arg(manifest().join("include"))
        .arg(&check)
        .arg("-o")
        .arg(out_dir.join("header_check_cxx.o"))
        .output()
        .unwrap();
    assert!(cxx.status.success(), "C++: {}", text(&cxx.stderr));
}

#[test]
fn calls_before_init_are_invalid_state_and_init_outside_ggcore_says_so() {
    let Some(built) = built() else { return };
    let out =
        Command::new(&built.function).arg("before").env_remove("GGCORE_SDK_FDS").env("LD_LIBRARY_PATH", &built.lib_dir).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "publish=3 shadow=3 start=3 read=3 write=3 log=0 init1=2 init=3\n");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("[WARN] logged early\n"), "{stderr}");
    assert!(stderr.contains("GGCORE_SDK_FDS") && stderr.contains("not started by ggcore"), "{stderr}");
}

/// One blocking-mode function through every call and answer.
#[test]
fn a_blocking_runtime_serves_invocations_and_host_calls() {
    let Some(built) = built() else { return };
    let mut f = Function::spawn(built, "block");
    f.start();
    let (_, logs) = f.until("ready");
    assert_eq!(logs, [(1, "init again=0 write=3".to_string()), (1, "unknown option=2".to_string())]);

    // The event with a zero byte, the ARN and the client context.
    f.invoke(1, b"echo a\0b", "{\"custom\":{\"k\":1}}");
    let (r, _) = f.until("result");
    assert_eq!(r.u64("id"), Some(1));
    assert_eq!(r.payload, format!("echo a\0b|{ARN}|{{\"custom\":{{\"k\":1}}}}").into_bytes());
    let (echo, _) = f.result_of(2, b"echo");
    assert_eq!(text(&echo), format!("echo|{ARN}|"), "no client context is \"\"");

    // write_error wins over a written response.
    f.invoke(3, b"fail went \"wrong\"", "");
    let (e, _) = f.until("error");
    assert_eq!((e.u64("id"), e.flag("unhandled")), (Some(3), false));
    assert_eq!(serde_json::from_slice::<Value>(&e.payload).unwrap(), json!({"errorMessage": "went \"wrong\""}));

    // Publish: the call, then each answer the core can give.
    let cases: [(Value, &str); 8] = [
        (json!({"ok": true}), "err=0 status=0 data=;"),
        (json!({"ok": false, "code": "Full", "message": "m"}), "err=0 status=4 data={\"code\":\"Full\",\"message\":\"m\"};"),
        (json!({"ok": false, "code": "BadRequest", "message": "m"}), "err=2 status=3 data={\"code\":\"BadRequest\",\"message\":\"m\"};"),
        (json!({"ok": false, "code": "TooLarge", "message": "m"}), "err=2 status=3 data={\"code\":\"TooLarge\",\"message\":\"m\"};"),
        (json!({"ok": false, "code": "NotFound", "message": "m"}), "err=0 status=3 data={\"code\":\"NotFound\",\"message\":\"m\"};"),
        (json!({"ok": false, "code": "Refused", "message": "m"}), "err=0 status=3 data={\"code\":\"Refused\",\"message\":\"m\"};"),
        (json!({"ok": false, "code": "Unavailable", "message": "m"}), "err=0 status=3 data={\"code\":\"Unavailable\",\"message\":\"m\"};"),
        (json!({"ok": false, "code": "Internal", "message": "m"}), "err=0 status=3 data={\"code\":\"Internal\",\"message\":\"m\"};"),
    ];
    let mut id = 10;
    for (answer, want) in cases {
        id += 1;
        f.invoke(id, b"publish t/1", "");
        let (call, _) = f.until("call");
        assert_eq!((call.str("op"), call.str("topic"), call.str("queueFullPolicy"), call.str("claimedSource")), ("publish", "t/1", "", ""));
        assert_eq!(call.payload, b"a\0b");
        f.reply(call.u64("corr").unwrap(), answer.clone(), b"");
        let (r, logs) = f.until("result");
        assert_eq!(text(&r.payload), want);
        if answer["ok"] == false {
            let code = answer["code"].as_str().unwrap();
            assert_eq!(logs, [(2, format!("gg_publish failed: {code}: m"))]);
        } else {
            assert!(logs.is_empty(), "{logs:?}");
        }
    }
    for (event, policy, payload) in [(&b"publish_all t/2"[..], "AllOrError", &b"p\0q"[..]), (b"publish_best t/3", "BestEffort", b"")] {
        id += 1;
        f.invoke(id, event, "");
        let (call, _) = f.until("call");
        assert_eq!((call.str("queueFullPolicy"), call.payload.as_slice()), (policy, payload));
        f.reply(call.u64("corr").unwrap(), json!({"ok": true}), b"");
        assert_eq!(text(&f.until("result").0.payload), "err=0 status=0 data=;");
    }

    // Invoke: the call's fields, and the invoked function's error kinds.
    for (function_error, status) in [("", 0), ("Handled", 1), ("Unhandled", 2)] {
        id += 1;
        f.invoke(id, b"invoke arn:aws:lambda:us-east-1:1:function:other", "");
        let (call, _) = f.until("call");
        assert_eq!(
            (call.str("op"), call.str("functionArn"), call.str("qualifier"), call.str("invocationType"), call.str("clientContext")),
            ("invoke", "arn:aws:lambda:us-east-1:1:function:other", "", "RequestResponse", "eyJjdXN0b20iOnt9fQ==")
        );
        assert_eq!(call.payload, b"x\0y");
        f.reply(call.u64("corr").unwrap(), json!({"ok": true, "invocationId": "i", "functionError": function_error}), b"r\0");
        assert_eq!(f.until("result").0.payload, format!("err=0 status={status} data=r\0;").into_bytes());
    }
    id += 1;
    f.invoke(id, b"event_invoke arn:aws:lambda:us-east-1:1:function:other", "");
    let (call, _) = f.until("call");
    assert_eq!((call.str("qualifier"), call.str("invocationType"), call.str("clientContext")), ("7", "Event", ""));
    assert!(call.payload.is_empty());
    f.reply(call.u64("corr").unwrap(), json!({"ok": false, "code": "NotFound", "message": "no such function"}), b"");
    let (r, logs) = f.until("result");
    assert_eq!(text(&r.payload), "err=0 status=3 data={\"code\":\"NotFound\",\"message\":\"no such function\"};");
    assert_eq!(logs, [(2, "gg_invoke failed: NotFound: no such function".to_string())]);

    // Shadows: get, update, delete in one invocation.
    id += 1;
    f.invoke(id, b"shadow lamp", "");
    for (operation, payload) in [("get", &b""[..]), ("update", b"{\"state\":{}}"), ("delete", b"")] {
        let (call, _) = f.until("call");
        assert_eq!((call.str("op"), call.str("operation"), call.str("thing")), ("shadow", operation, "lamp"));
        assert_eq!(call.payload, payload);
        f.reply(call.u64("corr").unwrap(), json!({"ok": true}), operation.as_bytes());
    }
    assert_eq!(text(&f.until("result").0.payload), "err=0 status=0 data=get;err=0 status=0 data=update;err=0 status=0 data=delete;");

    // Secrets: absent arguments are left out of the request.
    id += 1;
    f.invoke(id, b"secret s1", "");
    let (call, _) = f.until("call");
    assert_eq!(call.str("op"), "secret");
    assert_eq!(serde_json::from_slice::<Value>(&call.payload).unwrap(), json!({"SecretId": "s1", "VersionStage": "AWSCURRENT"}));
    f.reply(call.u64("corr").unwrap(), json!({"ok": true}), b"{\"SecretString\":\"x\"}");
    assert_eq!(text(&f.until("result").0.payload), "err=0 status=0 data={\"SecretString\":\"x\"};");

    // gg_log at each level, and a line longer than log.c's first buffer.
    id += 1;
    let (r, logs) = f.result_of(id, b"log");
    assert_eq!(r, b"logged");
    let long = format!("{}!", "L".repeat(2999));
    let want: Vec<(u64, String)> =
        vec![(0, "debug 1".into()), (1, "info two".into()), (2, "warn 3".into()), (3, "error 4".into()), (4, "fatal 5f".into()), (1, long)];
    assert_eq!(logs, want);

    // printf output is flushed when the handler returns.
    id += 1;
    assert_eq!(f.result_of(id, b"printf").0, b"printed");
    assert_eq!(f.stdout.recv_timeout(WAIT).unwrap(), "printed by the handler");

    // NULL and bad arguments.
    id += 1;
    assert_eq!(text(&f.result_of(id, b"badargs").0), "checked");

    // stop: gg_runtime_start returns GGE_TERMINATE (5), which main returns.
    f.send(Frame::new("stop", json!({}), Vec::new()));
    assert_eq!(f.wait().code(), Some(5));
    assert_eq!(f.stdout.recv_timeout(WAIT).unwrap(), "runtime ended 5");
}

#[test]
fn sigterm_and_the_end_of_fd3_stop_after_the_current_handler() {
    let Some(built) = built() else { return };
    let mut f = Function::spawn(built, "block");
    f.start();
    f.until("ready");
    f.invoke(1, b"sleep", "");
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(f.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(f.until("result").0.payload, b"slept");
    assert_eq!(f.wait().code(), Some(5));

    let mut f = Function::spawn(built, "block");
    f.start();
    f.until("ready");
    f.to = None;
    assert_eq!(f.wait().code(), Some(5));
}

#[test]
fn a_frame_that_cannot_be_parsed_ends_the_function_with_code_2() {
    let Some(built) = built() else { return };
    let mut f = Function::spawn(built, "block");
    f.start();
    f.until("ready");
    let mut bad = Vec::new();
    bad.extend(2u32.to_le_bytes());
    bad.extend(0u32.to_le_bytes());
    bad.extend(b"[]");
    f.to.as_mut().unwrap().write_all(&bad).unwrap();
    let status = f.wait();
    assert_eq!((status.code(), status.signal()), (Some(2), None));
    assert!(f.stderr.lock().unwrap().contains("protocol error"), "{}", f.stderr.lock().unwrap());
}

/// ASYNC mode: a thread publishes while a handler calls invoke; replies come
/// in the other order; the end of fd 3 ends the process with 0.
#[test]
fn an_async_runtime_serves_invocations_beside_a_publishing_thread() {
    let Some(built) = built() else { return };
    let mut f = Function::spawn(built, "async");
    f.start();
    let (_, logs) = f.until("ready");
    assert_eq!(logs, [(1, "init again=0 write=3".to_string())]);
    // The publisher's first call, held unanswered.
    let (first, mut logs) = f.until("call");
    assert_eq!((first.str("op"), first.str("topic"), first.payload.as_slice()), ("publish", "t/async", &b"tick 0"[..]));
    f.invoke(1, b"invoke arn:aws:lambda:us-east-1:1:function:other", "");
    let (invoke, more) = f.until("call");
    logs.extend(more);
    assert_eq!(invoke.str("op"), "invoke");
    f.reply(invoke.u64("corr").unwrap(), json!({"ok": true, "functionError": ""}), b"late");
    f.reply(first.u64("corr").unwrap(), json!({"ok": true}), b"");
    let mut result = None;
    let mut publishes = 1;
    while result.is_none() || publishes < 3 || !logs.iter().any(|(_, l)| l.starts_with("tick 2")) {
        let frame = f.next();
        match frame.kind() {
            "log" => logs.push((frame.u64("level").unwrap(), text(&frame.payload))),
            "result" => result = Some(frame.payload),
            "call" => {
                assert_eq!(frame.payload, format!("tick {publishes}").into_bytes());
                publishes += 1;
                f.reply(frame.u64("corr").unwrap(), json!({"ok": true}), b"");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(result.unwrap(), b"err=0 status=0 data=late;");
    for line in ["async start=0 again=3", "tick 0 err=0 status=0", "tick 1 err=0 status=0", "tick 2 err=0 status=0"] {
        assert!(logs.iter().any(|(level, l)| *level == 1 && l == line), "{line} not in {logs:?}");
    }
    assert_eq!(text(&f.result_of(2, b"echo").0), format!("echo|{ARN}|"));
    f.to = None;
    assert_eq!(f.wait().code(), Some(0));
}
