//! Hosting one function instance: start it, then run invocations one at a time,
//! in the order the core sent them (it may send the next before the last ends).

use abi_stable::std_types::{RResult, RString, RVec, Tuple2};
use ggcore_ipc::{Outcome, Spec, Up};
use ggcore_plugin_abi::{host_box, Encoding, ErrorKind, FunctionError, FunctionSpec, InvocationContext, InvocationType, PluginModRef};

use crate::conn::{Conn, IpcHost, Work};

pub fn function_spec(spec: &Spec) -> FunctionSpec {
    FunctionSpec {
        function_arn: spec.function_arn.as_str().into(),
        runtime: spec.runtime.as_str().into(),
        handler: spec.handler.as_str().into(),
        exec_args: spec.exec_args.as_str().into(),
        code_dir: spec.code_dir.as_str().into(),
        environment: spec.environment.iter().map(|(k, v)| Tuple2(RString::from(k.as_str()), RString::from(v.as_str()))).collect(),
        encoding: if spec.binary { Encoding::Binary } else { Encoding::Json },
        memory_limit_kb: spec.memory_limit_kb,
        timeout_ms: spec.timeout_ms,
        pinned: spec.pinned,
        sdk_dirs: spec.sdk_dirs.iter().map(|s| RString::from(s.as_str())).collect(),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A result over `maxPayloadBytes` becomes an Unhandled error saying so.
fn bounded(outcome: Outcome, max_payload: usize) -> Outcome {
    let len = match &outcome {
        Outcome::Ok(p) | Outcome::Err { payload: p, .. } => p.len(),
    };
    if len <= max_payload {
        return outcome;
    }
    let message = ggcore_ipc::limits::oversized_result(len, max_payload);
    crate::say(format_args!("{message}"));
    Outcome::Err { unhandled: true, payload: FunctionError::new(ErrorKind::Unhandled, &message).payload.into_vec() }
}

/// Starts the instance and serves invocations until Stop or the core goes away.
/// Returns the process exit code.
pub fn serve(module: PluginModRef, conn: Conn, work: std::sync::mpsc::Receiver<Work>, spec: &Spec) -> i32 {
    let host = host_box(IpcHost { conn: conn.clone(), max_payload: spec.max_payload as usize, wait_for: spec.wait_for.clone() });
    let mut instance = match (module.start_instance())(function_spec(spec), host) {
        RResult::ROk(i) => i,
        RResult::RErr(e) => {
            let _ = conn.send(&Up::StartFailed { message: ggcore_ipc::limits::cut_text(&e.message).into_owned() });
            return 1;
        }
    };
    if conn.send(&Up::Ready).is_err() {
        return 1;
    }
    while let Ok(w) = work.recv() {
        match w {
            Work::Invoke { id, event, context } => {
                let ctx = InvocationContext {
                    invocation_id: context.invocation_id.into(),
                    client_context: context.client_context.into(),
                    // The invocation starts now (it may have waited behind
                    // the previous one): its time runs from here.
                    deadline_unix_ms: context.deadline_unix_ms.max(now_ms() + spec.timeout_ms),
                    invocation_type: if context.event { InvocationType::Event } else { InvocationType::RequestResponse },
                };
                let outcome = match instance.invoke(RVec::from(event), ctx) {
                    RResult::ROk(v) => Outcome::Ok(v.into_vec()),
                    RResult::RErr(e) => Outcome::Err { unhandled: e.kind == ErrorKind::Unhandled, payload: e.payload.into_vec() },
                };
                let outcome = bounded(outcome, spec.max_payload as usize);
                if conn.send(&Up::Result { id, outcome }).is_err() {
                    break;
                }
            }
            Work::Stop => break,
        }
    }
    instance.shutdown();
    0
}
