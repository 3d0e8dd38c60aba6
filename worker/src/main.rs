//! `ggcore-worker`: the process that hosts one function instance through a
//! runtime plugin, or a zygote that forks instances, or a probe of one plugin.
//! Started only by the core.
//!
//! ```text
//! ggcore-worker probe PLUGIN
//! ggcore-worker instance SOCKET TOKEN PLUGIN
//! ggcore-worker zygote SOCKET TOKEN PLUGIN RUNTIME [SDK_DIR...]
//! ```

mod conn;
mod identity;
mod instance;
mod plugin;
mod zygote;

use std::os::unix::net::UnixStream;
use std::path::Path;

use abi_stable::std_types::{RResult, RString};
use ggcore_ipc::limits::cut_text;
use ggcore_ipc::{Down, FrameLimits, Role, Spec, Up, PROTOCOL_VERSION};
use ggcore_plugin_abi::PluginModRef;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        Some("probe") if args.len() == 3 => {
            // On a line of its own: the plugin may have printed while it
            // loaded, without a final newline. The core reads the last line.
            println!("\n{}", plugin::probe(Path::new(&args[2])));
            0
        }
        Some("instance") if args.len() == 5 => direct_instance(Path::new(&args[2]), &args[3], Path::new(&args[4])),
        Some("zygote") if args.len() >= 6 => match plugin::load(Path::new(&args[4])) {
            Ok(module) => zygote::run(Path::new(&args[2]), &args[3], module, &args[5], &args[6..]),
            Err(reason) => {
                report_early(Path::new(&args[2]), &args[3], Role::Zygote, Up::ZygoteFailed { message: cut_text(&reason).into_owned() });
                1
            }
        },
        _ => {
            eprintln!("ggcore-worker is started by the ggcore core; it is not meant to be run by hand");
            2
        }
    };
    std::process::exit(code);
}

/// Writes a line to stderr (which the core puts in the function's log),
/// ignoring failures: once the core is gone its end of the pipe is too, and
/// `eprintln!` would panic (ending only the thread that wrote).
pub(crate) fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "ggcore-worker: {line}");
}

/// Sends Hello on a fresh connection.
pub(crate) fn hello(stream: &mut UnixStream, token: &str, role: Role) -> bool {
    ggcore_ipc::write_frame(stream, &Up::Hello { protocol: PROTOCOL_VERSION, token: token.to_string(), role, pid: std::process::id() })
        .is_ok()
}

/// Connects only to report a failure that happened before the real work.
pub(crate) fn report_early(socket: &Path, token: &str, role: Role, msg: Up) {
    if let Ok(mut s) = UnixStream::connect(socket) {
        if hello(&mut s, token, role) {
            let _ = ggcore_ipc::write_frame(&mut s, &msg);
        }
    }
}

/// An instance started directly by the core (no zygote): connect, receive the
/// spec, prepare the runtime, become the function, serve.
fn direct_instance(socket: &Path, token: &str, plugin_path: &Path) -> i32 {
    let Some(mut stream) = connect_instance(socket, token) else { return 1 };
    let spec =
        match ggcore_ipc::FrameReader::new(FrameLimits::down(0)).read(&mut stream).ok().flatten().map(|b| ggcore_ipc::decode::<Down>(&b)) {
            Some(Ok(Down::Start { spec })) => spec,
            _ => {
                crate::say(format_args!("the core did not send the function to start"));
                return 1;
            }
        };
    let module = match plugin::load(plugin_path) {
        Ok(m) => m,
        Err(reason) => {
            let _ = ggcore_ipc::write_frame(&mut stream, &Up::StartFailed { message: cut_text(&reason).into_owned() });
            return 1;
        }
    };
    let dirs: Vec<RString> = spec.sdk_dirs.iter().map(|s| RString::from(s.as_str())).collect();
    if let RResult::RErr(e) = (module.prepare())(spec.runtime.as_str().into(), dirs.as_slice().into()) {
        let _ = ggcore_ipc::write_frame(&mut stream, &Up::StartFailed { message: cut_text(&e.message).into_owned() });
        return 1;
    }
    run_instance(stream, module, &spec)
}

/// In a child forked by the zygote: connect as the instance, become the
/// function, serve.
pub(crate) fn child_main(socket: &Path, token: &str, module: PluginModRef, spec: &Spec) -> i32 {
    let Some(stream) = connect_instance(socket, token) else { return 1 };
    run_instance(stream, module, spec)
}

/// In a spare child of the zygote: connect, wait for the function to start.
pub(crate) fn spare_main(socket: &Path, token: &str, module: PluginModRef) -> i32 {
    // ABI 1.3: the plugin may start work ahead of need (Node starts node).
    if let Some(warm) = module.warm() {
        if let RResult::RErr(e) = warm() {
            crate::say(format_args!("warming a spare instance failed (it starts cold): {}", cut_text(&e.message)));
        }
    }
    let Some(mut stream) = connect_instance(socket, token) else { return 1 };
    let spec =
        match ggcore_ipc::FrameReader::new(FrameLimits::down(0)).read(&mut stream).ok().flatten().map(|b| ggcore_ipc::decode::<Down>(&b)) {
            Some(Ok(Down::Start { spec })) => spec,
            // Stopped before use, or the core went away.
            _ => return 0,
        };
    run_instance(stream, module, &spec)
}

/// Connects to the core and says Hello as the instance holding `token`.
fn connect_instance(socket: &Path, token: &str) -> Option<UnixStream> {
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            crate::say(format_args!("cannot connect to {}: {e}", socket.display()));
            return None;
        }
    };
    hello(&mut stream, token, Role::Instance).then_some(stream)
}

fn run_instance(mut stream: UnixStream, module: PluginModRef, spec: &Spec) -> i32 {
    if let Err(message) = identity::become_function(spec) {
        let _ = ggcore_ipc::write_frame(&mut stream, &Up::StartFailed { message: cut_text(&message).into_owned() });
        return 1;
    }
    let (conn, work) = match conn::Conn::start(stream, spec.max_payload as usize) {
        Ok(c) => c,
        Err(e) => {
            crate::say(format_args!("{e}"));
            return 1;
        }
    };
    instance::serve(module, conn, work, spec)
}
