//! The invocations sent ahead to one instance: the worker runs them one at a
//! time, in order, so the first unanswered one is the one running. Sending
//! them, and what becomes of them when the instance ends.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use ggcore_ipc::{Context, Down, Outcome};
use tokio::sync::oneshot;

use ggcore_plugin_abi::LogLevel;

use super::conn::Conn;
use super::instance::Ended;
use super::process::{death_reason, Exit};
use super::slot::{FunctionFailure, FunctionSlot, InvokeResult, WorkItem};
use super::FunctionManager;
use crate::group::Lifecycle;

/// One invocation sent to the worker and not answered yet.
pub(crate) struct Sent {
    pub(crate) item: WorkItem,
    pub(crate) result: oneshot::Receiver<Outcome>,
}

/// Most invocations sent ahead to one instance: 4 where no other instance
/// could take them (pinned, or on-demand at its instance limit), else 1, so
/// that queued work still spreads over new instances.
const PIPELINE_DEPTH: usize = 4;

pub(crate) fn pipeline_depth(slot: &FunctionSlot) -> usize {
    if slot.def.lifecycle == Lifecycle::Pinned || slot.alive.load(Ordering::Relaxed) >= slot.max_instances {
        PIPELINE_DEPTH
    } else {
        1
    }
}

/// Sends `item` to the worker; gives it back when the connection is gone.
pub(crate) async fn send_invoke(
    slot: &FunctionSlot,
    conn: &Conn,
    next_id: &mut u64,
    item: WorkItem,
    sent: &mut VecDeque<Sent>,
) -> Result<(), WorkItem> {
    let frame_id = *next_id;
    *next_id += 1;
    slot.stats.invocations.fetch_add(1, Ordering::Relaxed);
    // The worker sets the deadline again when the invocation starts.
    let deadline_ms = crate::telemetry::now_ms() + slot.def.timeout.as_millis() as u64;
    let (tx, rx) = oneshot::channel();
    conn.results.lock().unwrap_or_else(|p| p.into_inner()).insert(frame_id, tx);
    let frame = ggcore_ipc::encode(&Down::Invoke {
        id: frame_id,
        event: item.event.to_vec(),
        context: Context {
            invocation_id: item.invocation_id.clone(),
            client_context: item.client_context.clone(),
            deadline_unix_ms: deadline_ms,
            event: item.is_event,
        },
    });
    if conn.tx.send(frame).await.is_err() {
        conn.results.lock().unwrap_or_else(|p| p.into_inner()).remove(&frame_id);
        return Err(item);
    }
    sent.push_back(Sent { item, result: rx });
    Ok(())
}

/// The worker died: the running invocation (the first of `sent`) gets an
/// Unhandled error with the reason, counted as a crash or out of memory; the
/// ones sent after it never started and go back to the queue.
pub(crate) async fn died(mgr: &FunctionManager, slot: &FunctionSlot, cg_name: &str, exit: &Exit, sent: &mut VecDeque<Sent>) -> Ended {
    let reason = death_reason(&mgr.memory, cg_name, exit, "the worker ended").await;
    if !sent.is_empty() {
        if reason.contains("out of memory") {
            slot.stats.out_of_memory.fetch_add(1, Ordering::Relaxed);
        } else {
            slot.stats.crashes.fetch_add(1, Ordering::Relaxed);
        }
    }
    end_running(slot, sent, &reason, "");
    Ended::Died(reason)
}

/// The running invocation (the first of `sent`) ends with an Unhandled error
/// `message` (logged with `note`); the ones sent after it never started and go
/// back to the queue.
pub(crate) fn end_running(slot: &FunctionSlot, sent: &mut VecDeque<Sent>, message: &str, note: &str) {
    if let Some(head) = sent.pop_front() {
        slot.stats.unhandled_errors.fetch_add(1, Ordering::Relaxed);
        slot.log.write(LogLevel::Error, &format!("invocation {} ended: {message}{note}", head.item.invocation_id));
        head.item.answer(InvokeResult::unhandled(message));
    }
    slot.give_back(sent.drain(..).map(|s| s.item).collect());
}

pub(crate) fn outcome_result(slot: &FunctionSlot, outcome: Outcome, max_payload: usize) -> InvokeResult {
    // The worker bounds results too; one that does not is not trusted.
    let len = match &outcome {
        Outcome::Ok(p) | Outcome::Err { payload: p, .. } => p.len(),
    };
    if len > max_payload {
        slot.stats.unhandled_errors.fetch_add(1, Ordering::Relaxed);
        return InvokeResult::unhandled(&ggcore_ipc::limits::oversized_result(len, max_payload));
    }
    match outcome {
        Outcome::Ok(payload) => {
            slot.stats.succeeded.fetch_add(1, Ordering::Relaxed);
            InvokeResult { payload: Bytes::from(payload), failure: None }
        }
        Outcome::Err { unhandled, payload } => {
            let failure = if unhandled {
                slot.stats.unhandled_errors.fetch_add(1, Ordering::Relaxed);
                FunctionFailure::Unhandled
            } else {
                slot.stats.handled_errors.fetch_add(1, Ordering::Relaxed);
                FunctionFailure::Handled
            };
            InvokeResult { payload: Bytes::from(payload), failure: Some(failure) }
        }
    }
}
