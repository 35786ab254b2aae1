//! The alerts crate's end-to-end tests, in one test binary: each binary links, and
//! monomorphizes the axum, hyper and rumqttc stacks, on its own, which cost CI about a
//! minute of build time for four small files.
//!
//! - `docs`: docs/alerts.md's examples are true (the TOML parses, the Python verifier accepts
//!   a real signed request and refuses a tampered one).
//! - `mqtt`, `mqtt_tls`: Home Assistant discovery and events through a real Mosquitto.
//! - `webhook`: signed webhooks, retries, and hostile receivers.

mod common;
mod docs;
mod mqtt;
mod mqtt_tls;
mod webhook;
