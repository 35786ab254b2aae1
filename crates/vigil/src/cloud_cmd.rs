//! `vigil cloud`: the owner's side of the encrypted cloud tier (docs/cloud.md).
//!
//! - `keygen --output FILE`: a new age identity for the owner to keep offline; prints the
//!   public recipient that goes into `[cloud] recipients`.
//! - `ls --config vigil.toml --identity FILE`: what the bucket holds, per camera and day.
//! - `restore --config vigil.toml --identity FILE --camera NAME --start --end --output
//!   clip.mp4`: a range rebuilt from the bucket alone (the data directory is not read).

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::export_cmd::{format_time, parse_time};

/// Options of `vigil cloud`.
#[derive(Args, Debug)]
pub struct CloudArgs {
    #[command(subcommand)]
    command: CloudCommand,
}

#[derive(Subcommand, Debug)]
enum CloudCommand {
    /// Make an identity (keep it offline) and print its public key for `recipients`.
    Keygen {
        /// Where to write the identity (must not exist).
        #[arg(long, short)]
        output: PathBuf,
    },
    /// List what the bucket holds, per camera, stream and day.
    Ls {
        #[command(flatten)]
        bucket: BucketArgs,
    },
    /// Rebuild a time range of a camera stream from the bucket as an MP4 file.
    Restore {
        #[command(flatten)]
        bucket: BucketArgs,
        /// Camera name.
        #[arg(long)]
        camera: String,
        /// Stream: `main` or `sub`.
        #[arg(long, default_value = "main")]
        stream: String,
        /// Start, RFC 3339 (the clip begins at the key frame at or before it).
        #[arg(long, value_parser = parse_time)]
        start: i64,
        /// End, RFC 3339 (exclusive).
        #[arg(long, value_parser = parse_time)]
        end: i64,
        /// The MP4 file to write (replaced if it exists).
        #[arg(long, short)]
        output: PathBuf,
    },
}

/// Where the bucket is and the key that opens it.
#[derive(Args, Debug)]
struct BucketArgs {
    /// The configuration file with the `[cloud]` section (only that section is used).
    #[arg(long, value_name = "FILE", env = "VIGIL_CONFIG")]
    config: PathBuf,
    /// The owner's identity file (from `vigil cloud keygen` or `age-keygen`).
    #[arg(long, value_name = "FILE")]
    identity: PathBuf,
}

impl BucketArgs {
    fn open(&self) -> anyhow::Result<vigil_cloud::restore::Bucket> {
        let cfg = Config::load(&self.config)?;
        let Some(cloud) = cfg.cloud else {
            bail!("{} has no [cloud] section", self.config.display());
        };
        let ids = vigil_cloud::keys::read_identities(&self.identity)?;
        Ok(vigil_cloud::restore::Bucket::open(&cloud, ids)?)
    }
}

/// Runs `vigil cloud`.
pub async fn run(args: CloudArgs) -> anyhow::Result<()> {
    match args.command {
        CloudCommand::Keygen { output } => {
            let public = vigil_cloud::keys::keygen_to_file(&output)?;
            crate::logging::note(
                crate::logging::Severity::Info,
                &format!(
                    "wrote the identity to {}: keep it offline (whoever holds it can read the \
                     footage; without it nobody can, not even you)",
                    output.display()
                ),
            );
            println!("{public}");
        }
        CloudCommand::Ls { bucket } => {
            let days = bucket.open()?.ls().await.context("listing the bucket")?;
            if days.is_empty() {
                println!("the bucket holds no footage");
            }
            println!(
                "{:<20} {:<6} {:<10} {:>5} {:>10} {:>12}  first - last (UTC)",
                "camera", "stream", "day", "hours", "footage", "bytes"
            );
            for d in days {
                println!(
                    "{:<20} {:<6} {:<10} {:>5} {:>9.0}s {:>12}  {} - {}",
                    d.camera,
                    d.stream,
                    d.day,
                    d.hours,
                    d.footage_s,
                    d.bytes,
                    format_time(d.start_us),
                    format_time(d.end_us)
                );
            }
        }
        CloudCommand::Restore {
            bucket,
            camera,
            stream,
            start,
            end,
            output,
        } => {
            vigil_recorder::check_name(&camera).context("--camera")?;
            vigil_recorder::check_name(&stream).context("--stream")?;
            if end <= start {
                bail!("--end must be after --start");
            }
            let t0 = std::time::Instant::now();
            let r = bucket
                .open()?
                .restore(&camera, &stream, start, end, &output)
                .await
                .context("restoring from the bucket")?;
            println!(
                "restored {} frames, {} to {}, {} bytes to {} ({} parts, {} bytes fetched, {:.1} s)",
                r.frames,
                format_time(r.start_wall_us),
                format_time(r.end_wall_us),
                r.bytes,
                output.display(),
                r.parts,
                r.fetched,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
