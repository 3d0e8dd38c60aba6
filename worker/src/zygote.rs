//! The zygote: one process per (plugin, runtime) that prepares the language
//! runtime once (interpreter started, SDK imported) and forks a new instance on
//! each request from the core, so that a cold start costs a fork.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use abi_stable::std_types::{RResult, RString};
use ggcore_ipc::{Down, Role, Spec, Up};
use ggcore_plugin_abi::PluginModRef;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use crate::{child_main, hello};

fn send(stream: &mut UnixStream, msg: &Up) -> bool {
    ggcore_ipc::write_frame(stream, msg).is_ok()
}

/// Runs the zygote until the core stops it or goes away. In forked children
/// this returns the child's exit code after the instance ends.
pub fn run(socket: &Path, token: &str, module: PluginModRef, runtime: &str, sdk_dirs: &[String]) -> i32 {
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            crate::say(format_args!("cannot connect to {}: {e}", socket.display()));
            return 1;
        }
    };
    if !hello(&mut stream, token, Role::Zygote) {
        return 1;
    }
    let dirs: Vec<RString> = sdk_dirs.iter().map(|s| RString::from(s.as_str())).collect();
    match (module.prepare())(runtime.into(), dirs.as_slice().into()) {
        RResult::ROk(true) => {
            if !send(&mut stream, &Up::ZygoteReady { detail: format!("{runtime} prepared") }) {
                return 1;
            }
        }
        RResult::ROk(false) => {
            send(&mut stream, &Up::ZygoteFailed { message: "the plugin cannot fork prepared instances".into() });
            return 0;
        }
        RResult::RErr(e) => {
            send(&mut stream, &Up::ZygoteFailed { message: ggcore_ipc::limits::cut_text(&e.message).into_owned() });
            return 1;
        }
    }
    let mut frames = ggcore_ipc::FrameReader::new(ggcore_ipc::FrameLimits::down(0));
    let mut fds: VecDeque<OwnedFd> = VecDeque::new();
    loop {
        reap(&mut stream);
        let mut pfd = [nix::poll::PollFd::new(stream_fd(&stream), nix::poll::PollFlags::POLLIN)];
        match nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(200u16)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 1,
        }
        let body = match frames.read_with_fds(stream_fd(&stream), &mut fds) {
            Ok(Some(body)) => body,
            Ok(None) => return 0,
            Err(e) => {
                crate::say(format_args!("zygote: {e}"));
                return 1;
            }
        };
        let (token, becomes) = match ggcore_ipc::decode::<Down>(&body) {
            Ok(Down::Fork { token, spec }) => (token, Becomes::Instance(Box::new(spec))),
            Ok(Down::ForkSpare { token, cgroup_procs }) => (token, Becomes::Spare { cgroup_procs }),
            Ok(Down::Stop) => return 0,
            Ok(other) => {
                crate::say(format_args!("zygote ignores {other:?}"));
                continue;
            }
            Err(e) => {
                crate::say(format_args!("{e}"));
                return 1;
            }
        };
        let (Some(out), Some(err)) = (fds.pop_front(), fds.pop_front()) else {
            send(&mut stream, &Up::ForkFailed { token, message: "no stdout/stderr descriptors came with the request".into() });
            continue;
        };
        let pid = (module.fork())();
        if pid == 0 {
            return in_child(stream, out, err, fds, socket, &token, module, becomes);
        }
        drop((out, err));
        if pid < 0 {
            let message = format!("fork failed: {}", std::io::Error::last_os_error());
            if !send(&mut stream, &Up::ForkFailed { token, message }) {
                return 1;
            }
            continue;
        }
        // The child is ours and not reaped (only this loop reaps): its pidfd
        // names it for good. The core signals it only through that.
        let sent = match ggcore_ipc::pidfd::open(pid as u32) {
            Ok(pidfd) => {
                let frame = ggcore_ipc::encode(&Up::Forked { token, pid: pid as u32 });
                ggcore_ipc::frame::write_with_fds(&mut stream, &frame, &[pidfd.as_raw_fd()]).is_ok()
            }
            Err(e) => {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                send(&mut stream, &Up::ForkFailed { token, message: format!("cannot open a pidfd for the child: {e}") })
            }
        };
        if !sent {
            return 1;
        }
    }
}

fn stream_fd(s: &UnixStream) -> std::os::fd::BorrowedFd<'_> {
    use std::os::fd::AsFd;
    s.as_fd()
}

/// What a forked child becomes.
enum Becomes {
    /// The instance of this function.
    Instance(Box<Spec>),
    /// A spare: it joins the memory cgroup now (the slow part of a cold
    /// start), then connects and waits for the function to become.
    Spare { cgroup_procs: Option<String> },
}

/// In a forked child: take the request's stdout/stderr, then run as `becomes`.
#[allow(clippy::too_many_arguments)]
fn in_child(
    zygote: UnixStream,
    out: OwnedFd,
    err: OwnedFd,
    extra: VecDeque<OwnedFd>,
    socket: &Path,
    token: &str,
    module: PluginModRef,
    becomes: Becomes,
) -> i32 {
    drop(zygote);
    drop(extra);
    // This (single-threaded) child's stdout and stderr become the pipes the
    // core reads into the function's log.
    for (done, name) in [(nix::unistd::dup2_stdout(&out), "stdout"), (nix::unistd::dup2_stderr(&err), "stderr")] {
        if let Err(e) = done {
            let message = format!("the zygote could not give the new instance its {name} (dup2: {e})");
            crate::say(format_args!("{message}"));
            crate::report_early(socket, token, Role::Instance, Up::StartFailed { message });
            return 1;
        }
    }
    drop((out, err));
    match becomes {
        Becomes::Instance(spec) => child_main(socket, token, module, &spec),
        Becomes::Spare { cgroup_procs } => {
            if let Some(procs) = cgroup_procs {
                if let Err(e) = std::fs::write(&procs, std::process::id().to_string()) {
                    crate::say(format_args!("joining the memory cgroup {procs}: {e}"));
                    return 1;
                }
            }
            crate::spare_main(socket, token, module)
        }
    }
}

/// Reports children that ended.
fn reap(stream: &mut UnixStream) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                send(stream, &Up::ChildExited { pid: pid.as_raw() as u32, status: code });
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                send(stream, &Up::ChildExited { pid: pid.as_raw() as u32, status: -(sig as i32) });
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
