//! config.json: parse as `ggcore run` does; a valid file yields settings
//! within their documented ranges, an invalid one names the field at fault.

use std::path::Path;

use serde_json::Value;

use super::json_path::{names, Want};
use crate::config::CoreConfig;
use crate::group::MIN_SPOOL_BYTES;

const FILE: &str = "/fuzz/config/config.json";
const ROOT: &str = "/fuzz";

pub fn config_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let doc = serde_json::from_str::<Value>(text).ok().filter(Value::is_object);
    match CoreConfig::parse(Path::new(FILE), text, Path::new(ROOT)) {
        Ok(c) => {
            let doc = doc.unwrap_or_else(|| panic!("a configuration that is not a JSON object was accepted"));
            check_config(&doc, &c);
        }
        Err(e) => {
            assert!(!e.message.is_empty(), "an error without a message at {:?}", e.path);
            let shown = e.to_string();
            assert!(shown.starts_with(FILE), "{shown}");
            match &doc {
                None => assert!(e.path.is_empty(), "{e}"),
                Some(doc) => {
                    assert!(!e.path.is_empty(), "an error without a JSON path: {e}");
                    assert!(names(doc, &e.path, Want::Present), "error path {:?} names nothing in the file ({})", e.path, e.message);
                }
            }
        }
    }
}

fn check_config(doc: &Value, c: &CoreConfig) {
    let ct = &c.core_thing;
    for p in [&ct.ca_path, &ct.cert_path, &ct.key_path, &c.write_directory].into_iter().flatten() {
        assert!(p.is_absolute(), "{}", p.display());
    }
    assert!(c.device_ca_path.is_absolute());
    assert!(c.plugin_path.iter().all(|p| p.is_absolute()));
    assert!((30..=1200).contains(&ct.keep_alive.as_secs()), "{:?}", ct.keep_alive);
    assert!(ct.mqtt_max_connection_retry_interval.as_secs() >= 1);
    assert!((1..=256 * 1024 * 1024).contains(&c.mqtt.max_payload_bytes));
    assert!((1..=1_000_000).contains(&c.mqtt.max_queued_messages));
    assert!((1..=86_400).contains(&c.mqtt.stall_timeout.as_secs()));
    assert!((1..=100_000).contains(&c.mqtt.max_subscriptions));
    assert!(c.mqtt.host.parse::<std::net::IpAddr>().is_ok(), "{}", c.mqtt.host);
    assert!(c.runtime.max_work_item_count >= 1);
    assert!(c.spooler.max_size_bytes >= MIN_SPOOL_BYTES);
    assert!(c.threads <= 256 && c.event_loop_threads() >= 1);
    if let Some(t) = &ct.thing_arn {
        assert!(crate::group::arn::valid_thing_name(t.name()));
        assert_eq!(c.core_thing_name(), Some(t.name()));
    }
    for w in &c.warnings {
        assert!(!w.is_empty());
        // Unknown fields are named by their path.
        if let Some(path) = w.strip_suffix(": unknown field, ignored") {
            assert!(names(doc, path, Want::Present), "warning path {path:?} names nothing in the file");
        }
    }
}
