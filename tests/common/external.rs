//! Clients that are not ours: Python paho-mqtt and Mosquitto's command-line
//! tools, run as child processes whose output the test reads line by line.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::process::{Creds, Lines};
use super::DEADLINE;

/// The Python with paho-mqtt 2.1: `$GGCORE_TEST_PYTHON` (set by scripts/test),
/// else the venv that scripts/test makes.
pub fn python() -> PathBuf {
    let p = match std::env::var_os("GGCORE_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").expect("HOME");
            PathBuf::from(home).join(".cache/ggcore/venv/bin/python")
        }
    };
    assert!(
        p.exists(),
        "{} does not exist: run scripts/test, or `python3 -m venv ~/.cache/ggcore/venv && \
         ~/.cache/ggcore/venv/bin/pip install paho-mqtt==2.1.0`",
        p.display()
    );
    p
}

/// A paho-mqtt client driven by one JSON argument:
/// `{host, port, ca, cert, key, client_id, subscribe: [[filter, qos]],
///   publish: [[topic, qos, payload]], expect: N}`.
/// Prints `CONNACK ...`, `SUBACK code...`, `PUBLISHED topic`, `MSG topic qos
/// payload` and `DONE`; exits 0 once `expect` messages arrived, 1 on timeout,
/// 2 when the connection is refused.
pub const PAHO_CLIENT: &str = r#"
import json, sys, threading
import paho.mqtt.client as mqtt

cfg = json.loads(sys.argv[1])
expect = cfg.get("expect", 0)
connected = threading.Event()
subscribed = threading.Event()
enough = threading.Event()
state = {"rc": None, "n": 0}

def out(*a):
    print(*a, flush=True)

def on_connect(client, userdata, flags, reason_code, properties):
    state["rc"] = reason_code
    out("CONNACK", "failure" if reason_code.is_failure else "success", str(reason_code),
        "session_present=%s" % flags.session_present)
    connected.set()

def on_subscribe(client, userdata, mid, reason_codes, properties):
    out("SUBACK", *[str(rc.value) for rc in reason_codes])
    subscribed.set()

def on_message(client, userdata, msg):
    out("MSG", msg.topic, msg.qos, msg.payload.decode())
    state["n"] += 1
    if state["n"] >= expect:
        enough.set()

c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg["client_id"],
                protocol=mqtt.MQTTv311, clean_session=True)
c.tls_set(ca_certs=cfg["ca"], certfile=cfg["cert"], keyfile=cfg["key"])
c.on_connect = on_connect
c.on_subscribe = on_subscribe
c.on_message = on_message
c.connect(cfg["host"], cfg["port"], keepalive=60)
c.loop_start()
if not connected.wait(30):
    out("TIMEOUT connect")
    sys.exit(1)
if state["rc"].is_failure:
    c.loop_stop()
    sys.exit(2)
if cfg.get("subscribe"):
    c.subscribe([(f, q) for f, q in cfg["subscribe"]])
    if not subscribed.wait(30):
        out("TIMEOUT subscribe")
        sys.exit(1)
for topic, qos, payload in cfg.get("publish", []):
    info = c.publish(topic, payload, qos=qos)
    info.wait_for_publish(30)
    out("PUBLISHED", topic, "rc=%d" % info.rc, "published=%s" % info.is_published())
if expect and not enough.wait(60):
    out("TIMEOUT messages")
    sys.exit(1)
c.disconnect()
c.loop_stop()
out("DONE")
"#;

/// Runs the paho client with `cfg` (see [`PAHO_CLIENT`]) in the background.
pub fn paho(creds: &Creds, port: u16, mut cfg: Value) -> Background {
    let o = cfg.as_object_mut().unwrap();
    o.insert("host".into(), "localhost".into());
    o.insert("port".into(), port.into());
    o.insert("ca".into(), creds.ca.display().to_string().into());
    o.insert("cert".into(), creds.cert.display().to_string().into());
    o.insert("key".into(), creds.key.display().to_string().into());
    o.entry("client_id").or_insert_with(|| creds.thing.clone().into());
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg(PAHO_CLIENT).arg(cfg.to_string());
    Background::spawn(cmd)
}

/// `--cafile --cert --key -h localhost -p PORT -i THING` for mosquitto_pub/sub.
pub fn mosquitto_args(creds: &Creds, port: u16) -> Vec<String> {
    vec![
        "--cafile".into(),
        creds.ca.display().to_string(),
        "--cert".into(),
        creds.cert.display().to_string(),
        "--key".into(),
        creds.key.display().to_string(),
        "-h".into(),
        "localhost".into(),
        "-p".into(),
        port.to_string(),
        "-i".into(),
        creds.thing.clone(),
    ]
}

/// A child process whose stdout and stderr are kept line by line.
pub struct Background {
    child: Option<Child>,
    pub stdout: Arc<Lines>,
    pub stderr: Arc<Lines>,
}

/// How a background process ended.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Background {
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = Arc::new(Lines::default());
        let stderr = Arc::new(Lines::default());
        stdout.collect(child.stdout.take().unwrap());
        stderr.collect(child.stderr.take().unwrap());
        Self { child: Some(child), stdout, stderr }
    }

    /// Runs a shell command line (`sh -c LINE`).
    pub fn shell(line: &str) -> Self {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(line);
        Self::spawn(cmd)
    }

    /// Sends `signal` (as `kill` spells it: `-TERM`, `-INT`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill").args([signal, &pid]).status().expect("kill");
        assert!(ok.success(), "kill {signal} {pid}");
    }

    /// Waits for a stdout line starting with `prefix`; panics with the output
    /// if none comes within the deadline.
    pub async fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(l) = self.stdout.all().into_iter().find(|l| l.starts_with(prefix)) {
                return l;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "no line starting with {prefix:?} within {DEADLINE:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout.all().join("\n"),
                    self.stderr.all().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to exit (60 s at most, then kills it and panics).
    pub async fn finish(&mut self) -> Finished {
        let mut child = self.child.take().expect("already finished");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "process did not exit within 60 s\nstdout:\n{}\nstderr:\n{}",
                    self.stdout.all().join("\n"),
                    self.stderr.all().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.stdout.wait_end(Duration::from_secs(5));
        self.stderr.wait_end(Duration::from_secs(5));
        Finished { code: status.code(), stdout: self.stdout.all(), stderr: self.stderr.all() }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Splits a shell command line into words as `sh` would for the simple lines
/// the core prints (single and double quotes, backslash escapes).
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => cur.extend(chars.next()),
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// The value after `flag` in `words` (e.g. `-t` → the topic).
pub fn option<'a>(words: &'a [String], flag: &str) -> Option<&'a str> {
    words.iter().position(|w| w == flag).and_then(|i| words.get(i + 1)).map(String::as_str)
}
