//! Hearth: a self-hosted email warm-up service.
//!
//! Data flows config → preflight → planner + scheduler → outbox + sender → engagement
//! workers → placement ledger → reports. See ARCHITECTURE.md for the map and invariants.

pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod engagement;
pub mod http;
pub mod mark;
pub mod oauth2;
pub mod planner;
pub mod preflight;
pub mod report;
pub mod scheduler;
pub mod secrets;
pub mod seeds_import;
pub mod sender;
pub mod startup;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod webhooks;
pub mod worker;
