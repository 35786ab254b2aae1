//! TLS material for the HTTPS (and later RTSPS) listeners. It lives in [`vigil_web::tls`] (the
//! web app is its main user); re-exported here for the camera's snapshot server.

pub use vigil_web::tls::*;
