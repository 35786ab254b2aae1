//! The MQTT tests' Mosquitto and subscriber (shared with the whole-system alerts test).

pub use vigil_testkit::mqtt::*;
