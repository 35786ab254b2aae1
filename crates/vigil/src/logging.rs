//! Where `vigil` writes what (docs/config.md, "Output"): the machine-readable status lines
//! (`listening …`, `tls-fingerprint …`, `setup-url …`, `recording …`) on stdout, plain text
//! in every format because tests and scripts read them; everything else on stderr, as the
//! usual human-readable tracing lines or, with `--log-format json`, one JSON object per line
//! (`timestamp`, `level`, `target`, `fields.message` and the event's other fields) for
//! journald, Loki and the like.

use std::sync::atomic::{AtomicBool, Ordering};

/// The format of stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text lines for a person at a terminal (colored when stderr is one).
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Set once by [`init`]; read by [`note`].
static JSON: AtomicBool = AtomicBool::new(false);

/// Installs the global tracing subscriber: stderr, level from `RUST_LOG` (default `info`).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match format {
        LogFormat::Human => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_env_filter(filter)
            .init(),
        LogFormat::Json => {
            JSON.store(true, Ordering::Relaxed);
            tracing_subscriber::fmt()
                .json()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_env_filter(filter)
                .init();
        }
    }
}

/// How much a [`note`] matters (its level in JSON logs).
#[derive(Clone, Copy, Debug)]
pub enum Severity {
    /// For information.
    Info,
    /// Something the operator should act on.
    Warn,
    /// The command failed.
    Error,
}

/// A message for the person at the console: `vigil: LINE` per line on stderr in the human
/// format (as it always was), a log event in JSON, so that every stderr line stays one object.
pub fn note(severity: Severity, msg: &str) {
    if !JSON.load(Ordering::Relaxed) {
        for line in msg.lines() {
            eprintln!("vigil: {line}");
        }
        return;
    }
    match severity {
        Severity::Info => tracing::info!("{msg}"),
        Severity::Warn => tracing::warn!("{msg}"),
        Severity::Error => tracing::error!("{msg}"),
    }
}
