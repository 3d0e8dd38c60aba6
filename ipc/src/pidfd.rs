//! Process descriptors (Linux 5.3+): a pidfd names one process, not a
//! number, so a signal sent through it can never reach another process that
//! was given the same pid after the first one was reaped. The zygote opens
//! one for each child it forks (before it could ever reap it) and sends it
//! to the core with `Forked`; the core signals forked workers only through
//! these.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Opens a pidfd for `pid`. Only sound for a child of the caller that has not
/// been waited for (its pid cannot have been reused yet).
pub fn open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sends `signal` to the process `pidfd` names. A process that has ended
/// (reaped or not) is `ESRCH`.
pub fn send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: pidfd_send_signal takes a descriptor, a signal, a null siginfo and flags.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal, std::ptr::null::<libc::siginfo_t>(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this kernel has pidfds.
pub fn supported() -> bool {
    open(std::process::id()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_pidfd_signals_its_own_process_only() {
        assert!(supported(), "this kernel has no pidfd_open (Linux 5.3+)");
        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        let fd = open(child.id()).unwrap();
        send_signal(fd.as_fd(), libc::SIGKILL).unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        // Reaped: the pidfd still names that process, which is gone.
        assert_eq!(send_signal(fd.as_fd(), libc::SIGKILL).unwrap_err().raw_os_error(), Some(libc::ESRCH));
    }
}
