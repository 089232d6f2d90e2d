//! veil: on-device privacy redaction. This library holds the binary's parts; `main.rs` only
//! parses the command line and dispatches.

pub mod allocator;
pub mod capture;
pub mod categories;
pub mod cli;
pub mod commands;
pub mod config;
pub mod detect_response;
pub mod device;
pub mod evaluation;
pub mod gpio;
pub mod inputs;
pub mod jobs;
pub mod logging;
pub mod mqtt;
pub mod outbound;
pub mod photo;
pub mod pipeline;
pub mod redaction;
pub mod remote_config;
pub mod server;
pub mod sinks;
pub mod store;
pub mod swappable_detector;
pub mod systemd;
pub mod telemetry;
pub mod video;
pub mod webhooks;
