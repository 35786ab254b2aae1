//! Video sources and the H.264 encoder.
