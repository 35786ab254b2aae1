//! RTSP 1.0 server for Vigil.
