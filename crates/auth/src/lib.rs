//! Users and credentials for Vigil.
