//! What every store in Vigil's data directory shares.
//!
//! - [`private_fs`]: files 0600 and directories 0700 at creation, whatever the umask and the
//!   parent's mode — footage, indexes, accounts.
//! - [`schema`]: one way to version an SQLite store and bring an older one forward.
//!
//! The stores themselves (the recording index, the event store, the web app's sessions and
//! audit log) live with the code that owns them; `docs/schema.md` describes each.

pub mod private_fs;
pub mod schema;

pub use schema::{Migration, Schema, SchemaError, Upgraded};
