//! Starting the child process: two pipes become its fds 3 (from the plugin)
//! and 4 (to the plugin), stdout and stderr are the worker's (the core reads
//! them into the function's log), and it dies with the worker.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A started the child and the plugin's ends of its pipes.
pub struct Spawned {
    pub child: Child,
    /// Frames to the child (its fd 3).
    pub to_child: File,
    /// Frames from the child (its fd 4).
    pub from_child: File,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Starts `PROGRAM ARGS...` in `cwd` with exactly `env`.
pub fn spawn(program: &Path, args: &[String], env: &[(String, String)], cwd: &Path) -> io::Result<Spawned> {
    let (down_read, down_write) = pipe()?;
    let (up_read, up_write) = pipe()?;
    let (down_fd, up_fd) = (down_read.as_raw_fd(), up_write.as_raw_fd());
    let parent = std::process::id() as libc::pid_t;
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().envs(env.iter().map(|(k, v)| (k, v))).current_dir(cwd);
    cmd.stdin(Stdio::null()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (fcntl, dup2, prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            // Move both ends out of the way first (either may already be 3
            // or 4), then onto 3 and 4; dup2 to another number clears
            // close-on-exec on the copy.
            let high_down = libc::fcntl(down_fd, libc::F_DUPFD_CLOEXEC, 10);
            let high_up = libc::fcntl(up_fd, libc::F_DUPFD_CLOEXEC, 10);
            if high_down < 0 || high_up < 0 || libc::dup2(high_down, 3) < 0 || libc::dup2(high_up, 4) < 0 {
                return Err(io::Error::last_os_error());
            }
            // The child dies with the worker (the core ends an instance by killing
            // its worker: timeout, memory, stop).
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop((down_read, up_write));
    Ok(Spawned { child, to_child: File::from(down_write), from_child: File::from(up_read) })
}

impl Spawned {
    /// Whether the child is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Ends a child that was never used: closing its input ends it; it is
    /// killed if it has not ended within 100 ms. Never waits longer: a child
    /// of another user cannot be killed from here, and dies with the worker.
    pub fn end(self) {
        let Spawned { mut child, to_child, from_child } = self;
        drop((to_child, from_child));
        for _ in 0..20 {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.try_wait();
    }
}
