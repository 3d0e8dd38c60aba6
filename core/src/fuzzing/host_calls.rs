//! The JSON that crosses the plugin ABI with host calls: client contexts (sent
//! by a function's invoke as base64 of JSON, and made by the core for routed
//! messages), function error documents, JSON strings written by the ABI's
//! `push_json_string`, and the probe report a plugin prints for the core.
//!
//! Input: text, used as each of these.

use base64::Engine;
use ggcore_plugin_abi::{push_json_string, ErrorKind, FunctionError};
use serde_json::Value;

use crate::functions::client_context_text;
use crate::plugins::PluginEntry;

pub fn host_calls(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    json_strings(&text);
    client_contexts(&text);
    probe_report(&text);
}

/// Every string the core or a plugin writes into JSON reads back unchanged.
fn json_strings(text: &str) {
    let mut literal = String::new();
    push_json_string(&mut literal, text);
    let back: String = serde_json::from_str(&literal).unwrap_or_else(|e| panic!("{literal:?} is not a JSON string: {e}"));
    assert_eq!(back, text);

    for kind in [ErrorKind::Handled, ErrorKind::Unhandled] {
        let e = FunctionError::new(kind, text);
        let doc: Value = serde_json::from_slice(&e.payload).unwrap_or_else(|e| panic!("an error document that is not JSON: {e}"));
        assert_eq!(doc.get("errorMessage").and_then(Value::as_str), Some(text));
    }

    // A routed message's client context, as the core makes it for the function.
    let mut context = String::from("{\"custom\":{\"subject\":");
    push_json_string(&mut context, text);
    context.push_str("}}");
    let doc: Value = serde_json::from_str(&context).unwrap_or_else(|e| panic!("{context:?}: {e}"));
    assert_eq!(doc["custom"]["subject"].as_str(), Some(text));
}

/// An invoke's client context reaches the target as a JSON object (what the
/// runtimes read `custom`, `client` and `env` from), or not at all.
fn client_contexts(text: &str) {
    for sent in [text.to_string(), base64::engine::general_purpose::STANDARD.encode(text)] {
        match client_context_text(&sent) {
            Ok(ctx) if ctx.is_empty() => assert!(sent.is_empty(), "{sent:?} gave an empty client context"),
            Ok(ctx) => {
                let doc: Value = serde_json::from_str(&ctx).unwrap_or_else(|e| panic!("{ctx:?} passed as a client context: {e}"));
                assert!(doc.is_object(), "the client context {ctx:?} is not a JSON object");
                let again = base64::engine::general_purpose::STANDARD.encode(&ctx);
                assert_eq!(client_context_text(&again).as_deref(), Ok(ctx.as_str()));
            }
            Err(e) => assert!(e.starts_with("ClientContext "), "{e}"),
        }
    }
}

/// The report a plugin's probe prints reads back as it was written.
fn probe_report(text: &str) {
    let Ok(entry) = serde_json::from_str::<PluginEntry>(text.trim()) else { return };
    let written = serde_json::to_string(&entry).unwrap_or_else(|e| panic!("{entry:?} does not serialise: {e}"));
    let back: PluginEntry = serde_json::from_str(&written).unwrap_or_else(|e| panic!("{written}: {e}"));
    assert_eq!(back, entry);
    let status = entry.status();
    assert!(status == "ok" || status.starts_with("unavailable: "), "{status}");
    for r in &entry.runtimes {
        if !r.ends_with('*') {
            assert!(entry.serves(r), "{r} is listed and not served");
        }
    }
}
