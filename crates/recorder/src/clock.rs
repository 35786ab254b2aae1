//! Injected time: the one [`Clock`] of the ingest → hub → recorder path, defined in
//! `vigil-hub` (see [`vigil_hub::clock`]) and re-exported here for the recorder's users.
//!
//! Recording, rotation, retention and the index commits read time only through it, so
//! tests drive them with [`SimClock`].

pub use vigil_hub::clock::{Clock, RealClock, SimClock};
