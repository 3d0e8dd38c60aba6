//! Adapters between the plain Rust traits and the FFI-safe tables. Every call
//! that crosses the boundary runs under `catch_unwind` here, so a panic on
//! either side becomes an error value instead of unwinding through `extern "C"`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RBox, RResult, RSlice, RStr, RVec};

use crate::{
    ErrorKind, FunctionError, FunctionInstance, Host, HostApi, HostBox, HostError, HostErrorCode, Host_TO, Instance, InstanceBox,
    Instance_TO, InvocationContext, InvokeArgs, InvokeOutcome, InvokeReply, LogLevel, PluginError, PublishArgs, ShadowOp,
};

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// Runs `f`, turning a panic into a [`PluginError`] naming the entry point.
pub fn guard<T>(entry: &str, f: impl FnOnce() -> T) -> Result<T, PluginError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| PluginError::new(format!("plugin panicked in {entry}: {}", panic_message(&*p))))
}

struct GuardedInstance(Box<dyn FunctionInstance>);

impl Instance for GuardedInstance {
    fn invoke(&mut self, event: RVec<u8>, context: InvocationContext) -> InvokeOutcome {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| inner.invoke(event.into_vec(), &context))) {
            Ok(Ok(v)) => RResult::ROk(v.into()),
            Ok(Err(e)) => RResult::RErr(e),
            Err(p) => RResult::RErr(FunctionError::new(ErrorKind::Unhandled, &format!("runtime plugin panicked: {}", panic_message(&*p)))),
        }
    }

    fn shutdown(&mut self) {
        let inner = &mut self.0;
        let _ = catch_unwind(AssertUnwindSafe(|| inner.shutdown()));
    }
}

/// Wraps a plugin's instance for the FFI boundary.
pub fn instance_box(instance: Box<dyn FunctionInstance>) -> InstanceBox {
    Instance_TO::from_ptr(RBox::new(GuardedInstance(instance)), TD_Opaque)
}

struct GuardedHost<H>(H);

fn host_panic(p: Box<dyn std::any::Any + Send>) -> HostError {
    HostError::new(HostErrorCode::Internal, format!("host callback panicked: {}", panic_message(&*p)))
}

impl<H: HostApi> Host for GuardedHost<H> {
    fn publish(&self, args: PublishArgs<'_>) -> RResult<(), HostError> {
        catch_unwind(AssertUnwindSafe(|| self.0.publish(args))).unwrap_or_else(|p| Err(host_panic(p))).into()
    }

    fn invoke(&self, args: InvokeArgs<'_>) -> RResult<InvokeReply, HostError> {
        catch_unwind(AssertUnwindSafe(|| self.0.invoke(args))).unwrap_or_else(|p| Err(host_panic(p))).into()
    }

    fn shadow(&self, op: ShadowOp, thing_name: RStr<'_>, payload: RSlice<'_, u8>) -> RResult<RVec<u8>, HostError> {
        catch_unwind(AssertUnwindSafe(|| self.0.shadow(op, thing_name.as_str(), payload.as_slice())))
            .unwrap_or_else(|p| Err(host_panic(p)))
            .map(RVec::from)
            .into()
    }

    fn get_secret(&self, payload: RSlice<'_, u8>) -> RResult<RVec<u8>, HostError> {
        catch_unwind(AssertUnwindSafe(|| self.0.get_secret(payload.as_slice())))
            .unwrap_or_else(|p| Err(host_panic(p)))
            .map(RVec::from)
            .into()
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        let _ = catch_unwind(AssertUnwindSafe(|| self.0.log(level, message.as_str())));
    }
}

/// Wraps the host side's implementation for the FFI boundary.
pub fn host_box<H: HostApi>(host: H) -> HostBox {
    Host_TO::from_ptr(RArc::new(GuardedHost(host)), TD_Opaque)
}

/// The path of the shared library holding address `addr` (of a function of
/// the caller's library, as `f as usize`): a plugin finds files installed
/// beside it with this.
pub fn library_path_of(addr: usize) -> Option<std::path::PathBuf> {
    // SAFETY: a zeroed Dl_info is valid; dladdr only reads the address and
    // fills `info`, whose strings belong to the loader and live as long as
    // the library stays loaded.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::dladdr(addr as *const std::ffi::c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: checked non-null above; a NUL-terminated path from the loader.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    Some(std::path::PathBuf::from(name.to_string_lossy().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InvocationType;

    struct Panicky;
    impl FunctionInstance for Panicky {
        fn invoke(&mut self, _event: Vec<u8>, _context: &InvocationContext) -> Result<Vec<u8>, FunctionError> {
            panic!("boom")
        }
    }

    #[test]
    fn panics_become_errors() {
        let mut i = instance_box(Box::new(Panicky));
        let ctx = InvocationContext {
            invocation_id: "1".into(),
            client_context: "".into(),
            deadline_unix_ms: 0,
            invocation_type: InvocationType::Event,
        };
        let r = i.invoke(RVec::new(), ctx);
        let RResult::RErr(e) = r else { panic!("expected an error") };
        assert_eq!(e.kind, ErrorKind::Unhandled);
        assert!(String::from_utf8_lossy(&e.payload).contains("boom"));
        let g = guard("probe", || -> u32 { panic!("bad probe") }).unwrap_err();
        assert_eq!(g.message.as_str(), "plugin panicked in probe: bad probe");
    }
}
