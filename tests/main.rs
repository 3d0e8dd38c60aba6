//! End-to-end tests of ggcore: each test starts real `ggcore` processes on
//! temporary roots and talks to them with real clients (rumqttc, a raw TLS
//! client, Python paho-mqtt, Mosquitto's tools), asserting on what arrives and
//! on what must not. Build the core first: `cargo build -p ggcore`.

mod common;

mod admission;
mod clients;
mod cloud;
mod conformance;
mod deploy;
mod faults;
mod flow_control;
mod function_faults;
mod function_load;
mod functions;
mod isolation;
mod java;
mod lifecycle;
mod native;
mod node;
mod plugins;
mod routing;
mod scale;
mod sessions;
mod shadows;
