//! `vigil`: an IP camera (and, as the project grows, a recorder and monitor) in one binary.
//!
//! This file holds the command line and the process setup only; each subcommand lives in its
//! own module.

use clap::{Parser, Subcommand};

mod alerts_link;
mod camera_cmd;
mod cloud_cmd;
mod config;
mod demo_cmd;
mod discover_cmd;
mod export_cmd;
mod fd_limits;
mod http;
mod logging;
mod metrics;
mod onvif_discovery;
mod onvif_http;
mod package_assets;
mod serve_cmd;
mod service;
mod setup_cmd;
mod tls;
mod user_cmd;

/// Vigil: a secure IP camera in one binary.
#[derive(Parser, Debug)]
#[command(name = "vigil", version, about, long_about = None)]
struct Cli {
    /// Format of the log on stderr: `human` lines, or `json` (one object per line, for
    /// journald or Loki). Status lines on stdout are plain text in both.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        env = "VIGIL_LOG_FORMAT",
        default_value_t = logging::LogFormat::Human
    )]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Turn this machine into an IP camera: capture, encode H.264, serve RTSP(S) and snapshots.
    Camera(camera_cmd::CameraArgs),
    /// Manage users (who may watch the camera).
    User(user_cmd::UserArgs),
    /// Record the cameras of a configuration file (see vigil.example.toml).
    Serve(serve_cmd::ServeArgs),
    /// Write a time range of a recorded camera stream as an MP4 file.
    Export(export_cmd::ExportArgs),
    /// Rebuild the recordings index from the recording files.
    Reindex(serve_cmd::ReindexArgs),
    /// Print a fresh one-time setup link (while no user exists) for the server of a configuration.
    SetupUrl(setup_cmd::SetupUrlArgs),
    /// The encrypted cloud tier: make a key, list the bucket, restore footage from it.
    Cloud(cloud_cmd::CloudArgs),
    /// Find ONVIF cameras on this network (WS-Discovery) and list their addresses.
    Discover(discover_cmd::DiscoverArgs),
    /// Try the whole system: two test cameras, recorded, in the web app (https://localhost:8443).
    Demo(demo_cmd::DemoArgs),
}

fn main() -> std::process::ExitCode {
    // Packaging only (packaging/build-deb.sh): kept out of `Cli` so that it shows in neither
    // --help, the man pages nor the completions it writes (clap_complete lists hidden
    // subcommands too).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "package-assets")
    {
        return package_assets::main();
    }
    let cli = Cli::parse();
    logging::init(cli.log_format);
    if matches!(
        cli.command,
        Command::Camera(_) | Command::Serve(_) | Command::Demo(_)
    ) {
        // Servers: every connection cap is derived from the limit in force (fd_limits).
        let limit = fd_limits::raise_nofile();
        tracing::info!(
            soft_before = limit.before,
            soft_now = limit.now,
            "open-file limit"
        );
    }
    let result = match cli.command {
        Command::User(args) => user_cmd::run(args),
        Command::Camera(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("vigil-io")
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(camera_cmd::run(args))),
        Command::Serve(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("vigil-rec")
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(serve_cmd::run(args))),
        Command::Demo(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("vigil-demo")
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(demo_cmd::run(args))),
        Command::Cloud(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("vigil-cloud")
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(cloud_cmd::run(args))),
        Command::Export(args) => export_cmd::run(args),
        Command::Discover(args) => discover_cmd::run(args),
        Command::Reindex(args) => serve_cmd::run_reindex(args),
        Command::SetupUrl(args) => setup_cmd::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            logging::note(logging::Severity::Error, &format!("error: {e:#}"));
            std::process::ExitCode::FAILURE
        }
    }
}
