//! `ggcore` processes: the CLI (certs, deploy, status) and `ggcore run` with its
//! stderr kept line by line for assertions.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::group::Group;
use super::DEADLINE;

/// The `ggcore` executable under test: `$GGCORE_BIN`, else `ggcore` next to the
/// test executable's `deps/` directory (`target/debug/ggcore`).
pub fn ggcore_bin() -> PathBuf {
    let bin = match std::env::var_os("GGCORE_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            exe.parent().and_then(Path::parent).expect("test executable is in target/<profile>/deps").join("ggcore")
        }
    };
    assert!(bin.is_file(), "{} does not exist: build it first with `cargo build -p ggcore` (or set GGCORE_BIN)", bin.display());
    bin
}

/// Removes ANSI escape sequences (the core colours its human log format).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters and intermediates, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// What a finished CLI command printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    fn from(o: std::process::Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: strip_ansi(&String::from_utf8_lossy(&o.stderr)),
        }
    }

    /// Panics with both streams unless the exit code is `code`.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code {} (expected {code})\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout, self.stderr);
        self
    }

    /// The deployment id and status of a `deployment <id>: <status>` line.
    pub fn deployment(&self) -> Option<(String, String)> {
        self.stdout.lines().rev().find_map(|l| {
            let rest = l.trim().strip_prefix("deployment ")?;
            let (id, status) = rest.split_once(": ")?;
            Some((id.to_string(), status.trim().to_string()))
        })
    }
}

/// A `ggcore` command with the test environment (info-level logs).
pub fn ggcore_command() -> Command {
    let mut c = Command::new(ggcore_bin());
    c.env_remove("RUST_LOG").env_remove("GGCORE_ROOT").env_remove("GGCORE_MQTT_PORT").env_remove("GGCORE_THREADS").stdin(Stdio::null());
    // The SDKs of this checkout (a shared target directory's links may name
    // another checkout), reachable by the unprivileged users functions run as.
    c.env("GGCORE_SDK_ROOT", sdk_root());
    c
}

/// The SDK root the tests' cores use: this checkout, whose `sdk-c/lib` and
/// `sdk-java` get copies of what cargo built of the SDKs (the C library, the
/// Java jar) from the target directory, once per test process (git ignores
/// them) — the build tree's own SDK root lives under the target directory,
/// which the users functions run as may not reach (docs/install.md).
pub fn sdk_root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let repo = tests_dir().parent().expect("the tests are in a checkout").to_path_buf();
        let built = ggcore_bin().parent().expect("ggcore is in a directory").to_path_buf();
        copy_built(&built.join("libaws_greengrass_core_sdk_c.so"), &repo.join("sdk-c/lib/libaws-greengrass-core-sdk-c.so"), 0o755, true);
        let jar = "aws-greengrass-core-sdk-java.jar";
        copy_built(&built.join("sdk-java").join(jar), &repo.join("sdk-java").join(jar), 0o644, false);
        repo
    })
    .clone()
}

/// Replaces `to` with a copy of `from` (mode `mode`) when they differ; a
/// missing `from` fails only when `required`.
fn copy_built(from: &Path, to: &Path, mode: u32, required: bool) {
    use std::os::unix::fs::PermissionsExt;
    let bytes = match std::fs::read(from) {
        Ok(b) => b,
        Err(e) if required => panic!("{}: {e} (build it with `cargo build`)", from.display()),
        Err(_) => return,
    };
    if std::fs::read(to).ok().as_deref() == Some(bytes.as_slice()) {
        return;
    }
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let tmp = to.with_extension(format!("new.{}", std::process::id()));
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

/// This package's directory in the checkout being tested: cargo says so at
/// run time; the compile-time path is only a fallback, since artifacts in a
/// shared target directory may have been compiled in another checkout.
pub fn tests_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A device's credentials, as `ggcore certs device --out DIR` writes them.
#[derive(Debug, Clone)]
pub struct Creds {
    pub thing: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The group CA (what devices trust to verify the core).
    pub ca: PathBuf,
    /// `arn:aws:iot:...:cert/<sha256>` printed by `certs device`.
    pub cert_arn: String,
}

impl Creds {
    /// The same certificate and key, trusting another CA to verify the core
    /// (for a device of another root connecting to this one).
    pub fn with_ca(&self, ca: &Path) -> Creds {
        Creds { ca: ca.to_path_buf(), ..self.clone() }
    }
}

/// A temporary root directory and the CLI commands that act on it.
pub struct Root {
    dir: tempfile::TempDir,
    pub path: PathBuf,
    counter: Mutex<u32>,
}

/// The config of a test root: loopback, a free port.
pub fn test_config() -> Value {
    json!({ "ggcore": { "mqtt": { "host": "127.0.0.1", "port": 0 } } })
}

impl Root {
    /// A root with the test config and its local CAs (no demo).
    pub fn new() -> Self {
        Self::with_config(test_config())
    }

    /// A root with `config` as `config/config.json` and its local CAs.
    pub fn with_config(config: Value) -> Self {
        let root = Self::with_config_only(config);
        root.run(&["certs", "init"]).assert_code(0);
        root
    }

    /// A root with only `config/config.json` (which may be invalid).
    pub fn with_config_only(config: Value) -> Self {
        let root = Self::empty();
        let file = root.path.join("config/config.json");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        root
    }

    /// An empty root: `ggcore run` makes the embedded demo in it.
    pub fn empty() -> Self {
        let dir = tempfile::Builder::new().prefix("ggcore-e2e-").tempdir().expect("tempdir");
        let path = dir.path().join("root");
        std::fs::create_dir(&path).unwrap();
        Self { dir, path, counter: Mutex::new(0) }
    }

    /// A scratch directory beside the root (group files, other tools' files).
    pub fn scratch(&self) -> PathBuf {
        let p = self.dir.path().join("scratch");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn next(&self) -> u32 {
        let mut n = self.counter.lock().unwrap();
        *n += 1;
        *n
    }

    /// Runs `ggcore ARGS --root ROOT` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = ggcore_command().args(args).arg("--root").arg(&self.path).output().expect("run ggcore");
        Output::from(out)
    }

    /// Issues a device certificate for `thing` (signed by this root's device CA).
    pub fn device(&self, thing: &str) -> Creds {
        let out_dir = self.dir.path().join("devices");
        let out = self.run(&["certs", "device", thing, "--out", out_dir.to_str().unwrap()]);
        out.assert_code(0);
        let cert_arn = out.stdout.lines().last().expect("certs device prints the CertificateArn last").trim().to_string();
        assert!(
            cert_arn.starts_with("arn:aws:iot:us-east-1:000000000000:cert/") && cert_arn.rsplit('/').next().unwrap().len() == 64,
            "not a CertificateArn: {cert_arn}"
        );
        // Each issue writes new files: keep a copy per issue so that a second
        // certificate for the same thing does not replace the first one.
        let n = self.next();
        let keep = self.dir.path().join(format!("creds-{n}"));
        std::fs::create_dir_all(&keep).unwrap();
        let copy = |name: String| {
            let to = keep.join(&name);
            std::fs::copy(out_dir.join(&name), &to).unwrap();
            to
        };
        Creds {
            thing: thing.to_string(),
            cert: copy(format!("{thing}.cert.pem")),
            key: copy(format!("{thing}.private.key")),
            ca: copy("group-ca.pem".to_string()),
            cert_arn,
        }
    }

    /// Issues certificates for many things, a few processes at a time.
    pub fn devices(&self, things: &[String]) -> Vec<Creds> {
        let out_dir = self.dir.path().join("bulk");
        let next = Mutex::new(0usize);
        let results: Mutex<Vec<Option<Creds>>> = Mutex::new(vec![None; things.len()]);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(thing) = things.get(i) else { break };
                    let out = self.run(&["certs", "device", thing, "--out", out_dir.to_str().unwrap()]);
                    out.assert_code(0);
                    let cert_arn = out.stdout.lines().last().unwrap().trim().to_string();
                    results.lock().unwrap()[i] = Some(Creds {
                        thing: thing.clone(),
                        cert: out_dir.join(format!("{thing}.cert.pem")),
                        key: out_dir.join(format!("{thing}.private.key")),
                        ca: out_dir.join("group-ca.pem"),
                        cert_arn,
                    });
                });
            }
        });
        results.into_inner().unwrap().into_iter().map(|c| c.expect("issued")).collect()
    }

    /// Writes `group` to a new file in the scratch directory, and the code of
    /// its functions to `functions/<name>` beside it (replacing what an
    /// earlier group put there).
    pub fn write_group(&self, group: &Group) -> PathBuf {
        for f in &group.functions {
            f.write_code(&self.scratch().join("functions").join(&f.name));
        }
        self.write_group_json(&group.to_json())
    }

    /// The log file of function `name` (`ggc/var/log/user/<region>/<account>/<name>.log`).
    pub fn function_log_path(&self, name: &str) -> PathBuf {
        self.path.join("ggc/var/log/user").join(super::group::REGION).join(super::group::ACCOUNT).join(format!("{name}.log"))
    }

    /// The text of function `name`'s log ("" before it exists).
    pub fn function_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.function_log_path(name)).unwrap_or_default()
    }

    /// Waits until a line of function `name`'s log contains every one of
    /// `needles`; returns it.
    pub async fn wait_function_log(&self, name: &str, needles: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let text = self.function_log(name);
            if let Some(l) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return l.to_string();
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("no line with {needles:?} in the log of function {name} within {DEADLINE:?}; log:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The entry of function `name` in `ggcore status --json` (`functions[]`).
    pub fn function_status(&self, name: &str) -> Option<Value> {
        let needle = format!(":function:{name}:");
        let status = self.status();
        status["functions"].as_array().into_iter().flatten().find(|f| f["arn"].as_str().is_some_and(|a| a.contains(&needle))).cloned()
    }

    /// `ROOT/plugins`, the first directory of the default plugin path (made).
    pub fn plugins_dir(&self) -> PathBuf {
        let p = self.path.join("plugins");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// The directory holding the temporary root (mode 0700 as made): tests that
    /// run functions as an unprivileged user open it up.
    pub fn base_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_group_json(&self, value: &Value) -> PathBuf {
        let file = self.scratch().join(format!("group-{}.json", self.next()));
        std::fs::write(&file, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        file
    }

    /// `ggcore deploy FILE`.
    pub fn deploy(&self, group: &Group) -> Output {
        let file = self.write_group(group);
        self.run(&["deploy", file.to_str().unwrap()])
    }

    /// Deploys to the running core; asserts `Success` and returns the deployment id.
    pub fn deploy_ok(&self, group: &Group) -> String {
        let out = self.deploy(group);
        out.assert_code(0);
        let (id, status) = out.deployment().unwrap_or_else(|| panic!("no deployment line in:\n{}", out.stdout));
        assert_eq!(status, "Success", "{out:?}");
        id
    }

    /// `ggcore status --json` of the running core.
    pub fn status(&self) -> Value {
        let out = self.run(&["status", "--json"]);
        out.assert_code(0);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", out.stdout))
    }

    /// The things `status` lists as connected.
    pub fn connected(&self) -> Vec<String> {
        self.status()["devices"]["list"]
            .as_array()
            .expect("devices.list")
            .iter()
            .map(|d| d["thing"].as_str().unwrap().to_string())
            .collect()
    }

    /// Whether `thing` is connected with `filter` among its subscriptions.
    pub fn has_subscription(&self, thing: &str, filter: &str) -> bool {
        let status = self.status();
        let prefix = format!("{filter} (QoS");
        status["devices"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["thing"] == thing)
            .flat_map(|d| d["subscriptions"].as_array().cloned().unwrap_or_default())
            .any(|s| s.as_str().is_some_and(|s| s.starts_with(&prefix)))
    }

    /// Starts `ggcore run` on this root and waits for `ggcore ready`.
    pub fn start(&self) -> Core {
        Core::start(&self.path, &[])
    }

    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Core {
        Core::start(&self.path, env)
    }
}

/// The lines a process wrote, shared with the threads that read them.
#[derive(Default)]
pub struct Lines {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
    /// The stream reached its end (the writer closed it).
    ended: std::sync::atomic::AtomicBool,
}

impl Lines {
    /// Reads `stream` line by line (ANSI escapes removed) on a thread.
    pub fn collect(self: &Arc<Self>, stream: impl Read + Send + 'static) {
        let me = self.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = strip_ansi(String::from_utf8_lossy(&line).trim_end());
                        me.lines.lock().unwrap().push(text);
                        me.changed.notify_all();
                    }
                }
            }
            me.ended.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }

    /// Waits (blocking, `timeout` at most) until the stream has ended, so that
    /// every line its writer wrote is here.
    pub fn wait_end(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.ended.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits (blocking) for a line for which `pred` holds.
    pub fn wait_blocking(&self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        let mut seen = 0;
        loop {
            if let Some(l) = lines[seen..].iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            seen = lines.len();
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = self.changed.wait_timeout(lines, (deadline - now).min(Duration::from_millis(200))).unwrap().0;
        }
    }
}

/// A running `ggcore run`. Dropping it kills the process (SIGKILL); use
/// [`Core::stop`] to stop it as a user would.
pub struct Core {
    child: Option<Child>,
    pub root: PathBuf,
    /// `mqtt=HOST:PORT` of the ready line.
    pub host: String,
    pub port: u16,
    logs: Arc<Lines>,
}

impl Core {
    /// Spawns `ggcore run --root ROOT` and waits for its `ggcore ready` line.
    pub fn start(root: &Path, env: &[(&str, &str)]) -> Core {
        let mut cmd = ggcore_command();
        for (k, v) in env {
            cmd.env(k, v);
        }
        Core::start_command(root, cmd)
    }

    /// Runs `cmd run --root ROOT` (`cmd` a `ggcore` with its environment)
    /// and waits for its `ggcore ready` line.
    pub fn start_command(root: &Path, mut cmd: Command) -> Core {
        cmd.args(["run", "--root"]).arg(root).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ggcore run");
        let logs = Arc::new(Lines::default());
        logs.collect(child.stderr.take().unwrap());
        logs.collect(child.stdout.take().unwrap());
        let mut core = Core { child: Some(child), root: root.to_path_buf(), host: String::new(), port: 0, logs };
        let deadline = Instant::now() + Duration::from_secs(60);
        let ready = loop {
            if let Some(l) = core.logs.wait_blocking(Duration::from_millis(200), |l| l.contains("ggcore ready")) {
                break l;
            }
            if let Some(status) = core.child.as_mut().unwrap().try_wait().unwrap() {
                core.logs.wait_end(Duration::from_secs(5));
                panic!("ggcore run exited with {status} before it was ready:\n{}", core.log_text());
            }
            assert!(Instant::now() < deadline, "no `ggcore ready` line within 60 s:\n{}", core.log_text());
        };
        let addr =
            ready.split_whitespace().find_map(|w| w.strip_prefix("mqtt=")).unwrap_or_else(|| panic!("no mqtt=HOST:PORT in: {ready}"));
        let (host, port) = addr.rsplit_once(':').unwrap();
        core.host = host.to_string();
        core.port = port.parse().unwrap();
        assert_ne!(core.port, 0, "{ready}");
        // The admin socket answers once the core is ready. (This also gives the
        // core time to install its signal handlers, which it does only after
        // logging `ggcore ready`: see lifecycle::sigterm_right_after_ready_exits_0.)
        let out = ggcore_command().args(["status", "--json", "--root"]).arg(root).output().expect("ggcore status");
        assert!(
            out.status.success(),
            "`ggcore status` right after `ggcore ready` failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            core.log_text()
        );
        core
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Every log line so far (ANSI escapes removed).
    pub fn logs(&self) -> Vec<String> {
        self.logs.all()
    }

    pub fn log_text(&self) -> String {
        self.logs().join("\n")
    }

    /// Log lines containing every one of `needles`.
    pub fn log_lines(&self, needles: &[&str]) -> Vec<String> {
        self.logs().into_iter().filter(|l| needles.iter().all(|n| l.contains(n))).collect()
    }

    pub fn count_log(&self, needles: &[&str]) -> usize {
        self.log_lines(needles).len()
    }

    /// Waits for a log line containing every one of `needles`; returns it.
    pub async fn wait_log(&self, needles: &[&str]) -> String {
        self.wait_log_count(needles, 1).await
    }

    /// Waits until at least `n` log lines contain every one of `needles`;
    /// returns the last of them.
    pub async fn wait_log_count(&self, needles: &[&str], n: usize) -> String {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let found = self.log_lines(needles);
            if found.len() >= n {
                return found.last().unwrap().clone();
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("no {n} log line(s) with {needles:?} within {DEADLINE:?}; log:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the process to exit (60 s at most).
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with("-TERM")
    }

    /// Sends `signal` (as `kill` spells it: `-TERM`, `-INT`) and waits for the
    /// process to exit (60 s at most).
    pub fn stop_with(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("core already stopped");
        let kill = Command::new("kill").args([signal, &child.id().to_string()]).status().expect("kill");
        assert!(kill.success(), "kill {signal} failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.logs.wait_end(Duration::from_secs(5));
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ggcore did not exit within 60 s of kill {signal}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops with SIGTERM and asserts a clean exit (status 0, `ggcore stopped`).
    pub fn stop_ok(&mut self) {
        let status = self.stop();
        assert_eq!(status.code(), Some(0), "ggcore exited with {status} after SIGTERM:\n{}", self.log_text());
        assert!(
            self.logs.wait_blocking(Duration::from_secs(5), |l| l.contains("ggcore stopped")).is_some(),
            "no `ggcore stopped` line:\n{}",
            self.log_text()
        );
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("----- ggcore log ({}) -----\n{}\n----- end of ggcore log -----", self.root.display(), self.log_text());
        }
    }
}
