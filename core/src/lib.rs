//! ggcore: an edge core that does what the AWS Greengrass v1 core does.
//!
//! The parts (see ARCHITECTURE.md): [`broker`] (the local TLS MQTT server),
//! [`router`] (the subscription table), [`deploy`] and [`group`] (deployments),
//! [`store`] (RocksDB state), [`certs`], [`config`], [`admin`] (the admin socket)
//! and [`daemon`] (`ggcore run`).

pub mod access;
pub mod admin;
pub mod broker;
pub mod bundle;
pub mod certs;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod deploy;
pub mod functions;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod group;
pub mod layout;
pub mod permissions;
pub mod plugins;
pub mod renewal;
pub mod router;
pub mod services;
pub mod shadow;
pub mod shutdown;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod topic;
