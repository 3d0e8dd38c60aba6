//! The calls a function makes back into the core: publish (routed with the
//! function as source), invoke (another function's work queue), and requests
//! to the core's services (shadows, secrets), which go through the registry.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use bytes::Bytes;
use ggcore_ipc::{Call, Reply};
use ggcore_plugin_abi::{HostErrorCode, LogLevel};

use super::slot::{FunctionSlot, InvokeResult, WorkItem};
use super::{error, FunctionManager};
use crate::group::{Endpoint, FunctionArn};
use crate::router::{Message, Qos, WhenFull};
use crate::services::Services;

impl FunctionManager {
    /// Answers a worker's host call.
    pub(crate) async fn handle_call(self: &Arc<Self>, slot: &Arc<FunctionSlot>, call: Call) -> Reply {
        if let Some((service, req)) = Services::request_of(slot.def.arn.as_str(), &call) {
            return match self.services.request(service, req).await {
                Ok(payload) if matches!(call, Call::Invoke { .. }) => {
                    Reply::Invoked { invocation_id: uuid::Uuid::new_v4().to_string(), payload, function_error: String::new() }
                }
                Ok(payload) => Reply::Bytes(payload),
                Err((code, message)) => error(code, message),
            };
        }
        match call {
            Call::Publish { topic, payload, queue_full_policy, claimed_source } => {
                self.publish(slot, &topic, payload, &queue_full_policy, &claimed_source).await
            }
            Call::Invoke { function_arn, qualifier, event, client_context, payload } => {
                match self.invoke(&function_arn, &qualifier, event, &client_context, payload).await {
                    Ok((invocation_id, r)) => {
                        Reply::Invoked { invocation_id, payload: r.payload.to_vec(), function_error: r.function_error().into() }
                    }
                    Err((code, message)) => error(code, message),
                }
            }
            Call::Shadow { .. } | Call::GetSecret { .. } => error(HostErrorCode::Internal, "a service call reached no service"),
        }
    }

    /// A publish from a function: routed with the function as source.
    async fn publish(&self, slot: &FunctionSlot, topic: &str, payload: Vec<u8>, policy: &str, claimed_source: &str) -> Reply {
        let arn = &slot.def.arn;
        if !claimed_source.is_empty() && claimed_source != arn.as_str() && claimed_source != arn.unqualified() {
            let msg = format!("a function may publish only as itself: the publish claims source {claimed_source}, the caller is {arn}");
            if self.refused_log.allow() {
                tracing::warn!(function = %arn, claimed = %claimed_source, "publish refused: claims another source");
            }
            slot.log.write(LogLevel::Error, &format!("publish refused: {msg}"));
            return error(HostErrorCode::Refused, msg);
        }
        match ggcore_ipc::topic::check_publish(topic, payload.len(), self.cfg.max_payload) {
            Ok(()) => {}
            Err(ggcore_ipc::topic::PublishError::BadTopic(m)) => return error(HostErrorCode::BadRequest, m),
            Err(ggcore_ipc::topic::PublishError::TooLarge(m)) => return error(HostErrorCode::TooLarge, m),
        }
        if !matches!(policy, "" | "BestEffort" | "AllOrError") {
            return error(HostErrorCode::BadRequest, format!("Invalid value for queueFullPolicy: {policy}"));
        }
        let msg = Message { topic: Arc::from(topic), payload: Bytes::from(payload), qos: Qos::AtLeastOnce };
        let mut scratch = Vec::new();
        let source = Endpoint::Function(arn.clone());
        let when_full = if policy == "AllOrError" { WhenFull::Refuse } else { WhenFull::Hold };
        let out = self.router.route_with(&source, &msg, &mut scratch, when_full);
        if out.refused > 0 {
            return error(
                HostErrorCode::Full,
                format!("the message could not reach every destination ({} of {} queues full)", out.refused, out.targets),
            );
        }
        if policy == "AllOrError" && out.dropped > 0 {
            return error(
                HostErrorCode::Full,
                format!("the message could not reach every destination ({} of {} dropped)", out.dropped, out.targets),
            );
        }
        if out.blocked > 0 {
            // Accepted (every target took it); the publish returns once the
            // full queues have room again.
            let full = self.router.full_targets(&out, &scratch);
            self.router.hold(&source, &full).await;
        }
        Reply::Done
    }

    /// Invokes a deployed function. `client_context` is base64 of JSON, as the
    /// SDKs send it. Returns the invocation id and, for RequestResponse, the result.
    pub async fn invoke(
        self: &Arc<Self>,
        function_arn: &str,
        qualifier: &str,
        is_event: bool,
        client_context: &str,
        payload: Vec<u8>,
    ) -> Result<(String, InvokeResult), (HostErrorCode, String)> {
        let bad = |m: String| (HostErrorCode::BadRequest, m);
        let arn = FunctionArn::parse(function_arn).map_err(|e| bad(e.to_string()))?;
        let arn = match (arn.qualifier(), qualifier) {
            (_, "") => arn,
            (Some(q), given) if q != given => {
                return Err(bad("The derived qualifier from the function name does not match the specified qualifier.".into()))
            }
            (Some(_), _) => arn,
            (None, q) => FunctionArn::parse(&format!("{}:{q}", arn.as_str())).map_err(|e| bad(e.to_string()))?,
        };
        let Some(slot) = self.resolve(&arn) else {
            return Err((HostErrorCode::NotFound, format!("function {arn} is not deployed in this group")));
        };
        let context = client_context_text(client_context).map_err(bad)?;
        if payload.len() > self.cfg.max_payload {
            return Err((
                HostErrorCode::TooLarge,
                format!("payload of {} bytes is over maxPayloadBytes ({})", payload.len(), self.cfg.max_payload),
            ));
        }
        let invocation_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = if is_event {
            (None, None)
        } else {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (Some(tx), Some(rx))
        };
        let item = WorkItem {
            invocation_id: invocation_id.clone(),
            event: Bytes::from(payload),
            client_context: context,
            is_event,
            reply: tx,
            enqueued: Instant::now(),
        };
        if slot.enqueue(item).is_err() {
            slot.stats.rejected_queue_full.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err((
                HostErrorCode::Full,
                format!("the work queue of function {} is full (maxWorkItemCount {})", slot.def.arn, slot.capacity),
            ));
        }
        self.ensure_capacity(&slot);
        match rx {
            None => Ok((invocation_id, InvokeResult { payload: Bytes::new(), failure: None })),
            Some(rx) => match rx.await {
                Ok(r) => Ok((invocation_id, r)),
                Err(_) => Ok((invocation_id, InvokeResult::unhandled("the function's instance ended before answering"))),
            },
        }
    }
}

/// The client context of an invoke as the target function receives it: the
/// SDKs send base64 of a JSON object (`custom`, `client`, `env`, which the
/// runtimes read); empty means none.
pub(crate) fn client_context_text(client_context: &str) -> Result<String, String> {
    if client_context.is_empty() {
        return Ok(String::new());
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(client_context).map_err(|e| format!("ClientContext is not base64: {e}"))?;
    let text = String::from_utf8(raw).map_err(|_| "ClientContext is not UTF-8 JSON".to_string())?;
    let doc = serde_json::from_str::<serde_json::Value>(&text).map_err(|e| format!("ClientContext is not JSON: {e}"))?;
    if !doc.is_object() {
        return Err(format!("ClientContext is not a JSON object (such as {{\"custom\": {{...}}}}): {}", json_kind(&doc)));
    }
    Ok(text)
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
