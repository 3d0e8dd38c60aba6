//! Side-by-side load benchmarks of ggcore's local MQTT server against
//! Mosquitto and rumqttd (what is measured and how: `BENCHMARKS.md`).
//!
//! - [`load`]: the client harness — publishers and subscribers over TLS with
//!   client certificates, on one current-thread tokio runtime, speaking MQTT
//!   3.1.1 through rumqttc's `mqttbytes::v4` codec, each packet its own write
//!   (or, when asked, batched), with a send timestamp in every payload and loss
//!   counted message by message.
//! - [`brokers`]: starts ggcore, Mosquitto and rumqttd on the same certificates.
//! - [`procfs`]: CPU time and resident memory from `/proc`.
//! - [`report`]: medians and the markdown tables of `BENCHMARKS.md`.
//! - [`startup`]: ggcore's idle memory and start-to-ready time.

pub mod brokers;
pub mod load;
pub mod procfs;
pub mod report;
pub mod startup;
pub mod tls;
