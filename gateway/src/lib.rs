//! Weir: an analytics event gateway that speaks Rakam's HTTP API.

pub mod app;
pub mod batch;
pub mod cluster;
pub mod config;
pub mod crm;
pub mod http;
pub mod ingest;
pub mod keys;
pub mod log;
pub mod metadata;
pub mod plugin;
pub mod query;
pub mod schema;
pub mod stream;
pub mod users;
pub mod views;
