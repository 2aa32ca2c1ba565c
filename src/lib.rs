//! Thuiswacht: telemonitoring ingestion and triage for frail older people at home.
//!
//! Modules in data-flow order (DESIGN §1):
//! - [`settings`]: configuration, file < environment < flags.
//! - [`domain`]: readings, device statuses, metrics, units, identifiers.
//! - [`profiles`]: device profiles from `devices/`.
//! - [`decode`]: payload bytes to readings or rejections.
//! - [`ingest`]: the MQTT event loop (readings and device status topics) and acknowledgement tokens.
//! - [`validate`]: decoded readings checked against device and profile.
//! - [`store`]: the store interface, its PostgreSQL and SQLite implementations, and the batching writer.
//! - [`triage`]: the triage engine: NEWS2, rules, baselines, urgency; replay.
//! - [`alert_book`]: findings to alerts, their lifecycle, the triage stage, technical
//!   alerts and the missed-measurement sweep.
//! - [`tuning`]: alarm-burden figures for coordinators.
//! - [`thresholds`]: personal thresholds set by coordinators: review-by dates
//!   and four-eyes approval of looser ones.
//! - [`auth`]: sign-in, sessions, CSRF, team scoping, the audit trail, security headers.
//! - [`api`]: the HTTP service.
//! - [`web`]: the nurses' pages (worklist, patient page), rendered on the server.
//! - [`app`]: wires the stages together.
//! - [`simulate`]: the device simulator; [`loadgen`]: the end-to-end load benchmark.

pub mod alert_book;
pub mod api;
pub mod app;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod commands;
mod config_files;
pub mod decode;
pub mod domain;
pub mod ingest;
pub mod loadgen;
pub mod profiles;
pub mod protocols;
pub mod settings;
pub mod simulate;
pub mod store;
pub mod telemetry;
pub mod thresholds;
pub mod triage;
pub mod tuning;
pub mod validate;
pub mod web;
pub mod worklist;
