//! Becoming the function: cgroup, working directory, environment, user.

use ggcore_ipc::Spec;

/// Applies `spec`'s cgroup, environment, working directory and identity to
/// this process. Must run while the process is single-threaded.
pub fn become_function(spec: &Spec) -> Result<(), String> {
    if let Some(procs) = &spec.cgroup_procs {
        std::fs::write(procs, std::process::id().to_string()).map_err(|e| format!("joining the memory cgroup {procs}: {e}"))?;
    }
    for (k, _) in std::env::vars_os() {
        std::env::remove_var(k);
    }
    for (k, v) in &spec.environment {
        std::env::set_var(k, v);
    }
    // The core runs with umask 077; a function gets the usual 022.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    std::env::set_current_dir(&spec.code_dir).map_err(|e| format!("entering the code directory {}: {e}", spec.code_dir))?;
    if let (Some(uid), Some(gid)) = (spec.uid, spec.gid) {
        let gid = nix::unistd::Gid::from_raw(gid);
        let uid = nix::unistd::Uid::from_raw(uid);
        nix::unistd::setgroups(&[gid]).map_err(|e| format!("setgroups({gid}): {e}"))?;
        nix::unistd::setgid(gid).map_err(|e| format!("setgid({gid}): {e}"))?;
        nix::unistd::setuid(uid).map_err(|e| format!("setuid({uid}): {e}"))?;
    }
    Ok(())
}
