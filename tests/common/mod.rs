//! The harness shared by every end-to-end test: real `ggcore` processes on
//! temporary roots ([`process`]), group files ([`group`]), rumqttc devices over
//! TLS ([`mqtt`]), a raw TLS client for bytes no well-behaved client sends
//! ([`raw`]), and the external clients Python paho-mqtt and Mosquitto
//! ([`external`]).
//!
//! Rules the tests follow so that they are not flaky on a loaded machine: wait
//! for conditions with generous deadlines, never assert timings, and assert the
//! absence of a message with a barrier (a later message on the same path, which
//! the core keeps in order) plus a settle wait.

#![allow(dead_code)]

pub mod cloud;
pub mod external;
pub mod functions;
pub mod group;
pub mod java;
pub mod mqtt;
pub mod native;
pub mod process;
pub mod raw;
pub mod slow;

use std::time::Duration;

pub use group::{thing_arn, Group};
pub use mqtt::{connect, connect_with, try_connect, ConnectError, Device, Opts};
pub use process::{Core, Creds, Output, Root};
pub use rumqttc::QoS;

/// Deadline for something that must happen (a message, a log line, a close).
pub const DEADLINE: Duration = Duration::from_secs(30);
/// How long to keep listening when asserting that nothing (more) arrives.
pub const SETTLE: Duration = Duration::from_millis(1500);

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what`
/// after `timeout`.
pub async fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running core with a deployed group and the credentials of its devices:
/// the usual start of a test.
pub struct Env {
    pub root: Root,
    pub core: Core,
    pub group: Group,
    creds: std::collections::BTreeMap<String, Creds>,
}

impl Env {
    /// Issues a certificate for each of `things`, starts a core and deploys a
    /// group of those devices with `routes` (source, subject, target).
    pub fn start(things: &[&str], routes: &[(&str, &str, &str)]) -> Env {
        Self::start_on(Root::new(), things, routes)
    }

    /// The same on a root made beforehand (for a custom config).
    pub fn start_on(root: Root, things: &[&str], routes: &[(&str, &str, &str)]) -> Env {
        let creds: std::collections::BTreeMap<String, Creds> = things.iter().map(|t| (t.to_string(), root.device(t))).collect();
        let mut group = Group::new("e2e");
        for t in things {
            group = group.device(&creds[*t]);
        }
        for (s, f, t) in routes {
            group = group.route(s, f, t);
        }
        let core = root.start();
        root.deploy_ok(&group);
        Env { root, core, group, creds }
    }

    /// Issues a certificate for each of `things`, starts a core on `root` and
    /// deploys the group of those devices that `build` completes (functions,
    /// routes).
    pub fn start_group(root: Root, things: &[&str], build: impl FnOnce(Group) -> Group) -> Env {
        Self::start_group_with(root, things, build, Root::start)
    }

    /// The same with the core started by `start` (another binary, another
    /// environment).
    pub fn start_group_with(root: Root, things: &[&str], build: impl FnOnce(Group) -> Group, start: impl FnOnce(&Root) -> Core) -> Env {
        let creds: std::collections::BTreeMap<String, Creds> = things.iter().map(|t| (t.to_string(), root.device(t))).collect();
        let mut group = Group::new("e2e");
        for t in things {
            group = group.device(&creds[*t]);
        }
        let group = build(group);
        let core = start(&root);
        root.deploy_ok(&group);
        Env { root, core, group, creds }
    }

    /// Deploys `group` to the running core (a redeploy); it becomes `self.group`.
    pub fn redeploy(&mut self, group: Group) -> String {
        let id = self.root.deploy_ok(&group);
        self.group = group;
        id
    }

    pub fn creds(&self, thing: &str) -> &Creds {
        self.creds.get(thing).unwrap_or_else(|| panic!("no credentials for {thing}"))
    }

    pub async fn connect(&self, thing: &str) -> Device {
        connect(self.core.port, self.creds(thing)).await
    }

    pub async fn connect_with(&self, thing: &str, opts: Opts) -> Device {
        connect_with(self.core.port, self.creds(thing), opts).await
    }

    pub async fn try_connect(&self, thing: &str, opts: Opts) -> Result<Device, ConnectError> {
        try_connect(self.core.port, self.creds(thing), opts).await
    }

    /// Stops the core with SIGTERM and asserts a clean exit.
    pub fn stop(mut self) {
        self.core.stop_ok();
    }
}
