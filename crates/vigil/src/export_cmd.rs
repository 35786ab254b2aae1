//! `vigil export`: one camera stream's time range as a standard MP4 file.
//!
//! The export is planned from the index alone (`vigil_recorder::export`) and its media bytes
//! are copied from the segment files: no decode, no scan. It opens the data directory with
//! `Recorder::open_read_only` — no lock, no start-up repairs, no writes — so it runs beside
//! a live `vigil serve` (SQLite WAL readers never block the writer). The output is written
//! to a temporary file next to the destination, fsynced and renamed into place, so an
//! interrupted export never leaves a truncated `FILE.mp4`.

use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use vigil_recorder::{ExportPlan, Recorder};

use crate::config::DataSource;

/// Options of `vigil export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    source: DataSource,
    /// Camera name, as in the configuration.
    #[arg(long)]
    camera: String,
    /// Stream: `main` or `sub`.
    #[arg(long, default_value = "main")]
    stream: String,
    /// Start of the range, RFC 3339 (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00+02:00`).
    /// The export begins at the key frame at or before it.
    #[arg(long, value_parser = parse_time)]
    start: i64,
    /// End of the range, RFC 3339 (exclusive).
    #[arg(long, value_parser = parse_time)]
    end: i64,
    /// The MP4 file to write (replaced if it exists).
    #[arg(long, short)]
    output: PathBuf,
}

/// Parses an RFC 3339 date-time (RFC 3339 §5.6 `date-time`) into µs since the Unix epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|e| {
        format!("expected an RFC 3339 time such as 2024-05-01T12:00:00Z, got {s:?}: {e}")
    })?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).map_err(|_| format!("time out of range: {s:?}"))
}

/// Formats µs since the epoch as RFC 3339 in UTC, with microseconds.
pub fn format_time(us: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{us} µs"))
}

/// Runs `vigil export`.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    if args.end <= args.start {
        bail!("--end must be after --start");
    }
    let (data_dir, config) = args.source.resolve()?;
    vigil_recorder::check_name(&args.camera).context("--camera")?;
    vigil_recorder::check_name(&args.stream).context("--stream")?;
    let recorder = Recorder::open_read_only(&data_dir)
        .with_context(|| format!("opening the recordings in {}", data_dir.display()))?;
    let plan = match recorder.export(&args.camera, &args.stream, args.start, args.end) {
        Ok(p) => p,
        Err(vigil_recorder::Error::UnknownStream { .. }) => {
            if let Some(cfg) = &config {
                if !cfg.streams.iter().any(|s| s.camera == args.camera) {
                    let names: Vec<&str> = cfg.streams.iter().map(|s| s.camera.as_str()).collect();
                    bail!(
                        "unknown camera {:?}; the configuration has: {}",
                        args.camera,
                        names.join(", ")
                    );
                }
            }
            bail!(
                "no recordings of camera {:?} stream {:?} in {}",
                args.camera,
                args.stream,
                data_dir.display()
            );
        }
        Err(vigil_recorder::Error::NothingRecorded) => {
            let ranges = recorder.ranges(&args.camera, &args.stream, i64::MIN, i64::MAX)?;
            if ranges.is_empty() {
                bail!(
                    "no recordings of {}/{} yet (is the camera reachable? see the log of `vigil serve`)",
                    args.camera,
                    args.stream
                );
            }
            let near: Vec<String> = ranges
                .iter()
                .rev()
                .take(5)
                .rev()
                .map(|r| {
                    format!(
                        "  {} to {}",
                        format_time(r.start_wall_us),
                        format_time(r.end_wall_us)
                    )
                })
                .collect();
            bail!(
                "nothing recorded for {}/{} between {} and {}; latest recordings:\n{}",
                args.camera,
                args.stream,
                format_time(args.start),
                format_time(args.end),
                near.join("\n")
            );
        }
        Err(e) => return Err(e).context("planning the export"),
    };
    write_atomically(&args.output, |out| plan.write_to(out))?;
    let secs = (plan.end_wall_us - plan.start_wall_us) as f64 / 1e6;
    println!(
        "exported {} frames from {} to {} ({secs:.3} s, {} bytes) to {}",
        plan.frames,
        format_time(plan.start_wall_us),
        format_time(plan.end_wall_us),
        plan.total_len,
        args.output.display()
    );
    for line in boundary_notes(args.start, args.end, &plan) {
        crate::logging::note(crate::logging::Severity::Info, &line);
    }
    Ok(())
}

/// What a user should know about where the export really begins and ends compared with what
/// was asked, in milliseconds as printed: a shortfall that rounds to 0.000 s is not worth a
/// warning (a sample's end lands a microsecond short of `--end` after the 90 kHz → µs
/// conversion).
fn boundary_notes(start: i64, end: i64, plan: &ExportPlan) -> Vec<String> {
    let ms = |us: i64| (us as f64 / 1000.0).round() / 1000.0;
    let mut notes = Vec::new();
    let early = ms(start - plan.start_wall_us);
    let late = -early;
    if early > 0.0 {
        notes.push(format!(
            "the export starts {early:.3} s before --start, at the key frame the pictures depend on"
        ));
    } else if late > 0.0 {
        // Only when nothing was recorded at --start (a gap, or before the first recording):
        // otherwise the export always begins at the key frame at or before it.
        notes.push(format!(
            "nothing was recorded at --start; the export starts {late:.3} s after it, at the \
             first key frame recorded after --start"
        ));
    }
    let short = ms(end - plan.end_wall_us);
    if short > 0.0 {
        notes.push(format!("the recording ends {short:.3} s before --end"));
    }
    notes
}

/// Writes `path` through a temporary file in the same directory (mode 0600), fsync, rename.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        write(&mut out)?;
        out.flush()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_round_trip_with_microseconds_and_offsets() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1_000_000));
        assert_eq!(parse_time("1970-01-01T01:00:01+01:00"), Ok(1_000_000));
        let us = 1_714_564_800_123_456;
        assert_eq!(parse_time(&format_time(us)), Ok(us));
        assert!(parse_time("2024-05-01 12:00").is_err());
        assert!(parse_time("yesterday").is_err());
    }

    fn plan_of(start_wall_us: i64, end_wall_us: i64) -> ExportPlan {
        ExportPlan {
            header: Vec::new(),
            ranges: Vec::new(),
            total_len: 0,
            start_wall_us,
            end_wall_us,
            frames: 1,
            audio_frames: 0,
        }
    }

    #[test]
    fn boundary_notes_round_to_what_they_print() {
        // Exactly as asked, or a microsecond off (90 kHz → µs rounding): nothing to say.
        assert!(boundary_notes(10, 2_000_010, &plan_of(10, 2_000_010)).is_empty());
        assert!(boundary_notes(10, 2_000_010, &plan_of(10, 2_000_009)).is_empty());
        assert!(boundary_notes(10, 2_000_010, &plan_of(11, 2_000_010)).is_empty());
        assert_eq!(
            boundary_notes(1_000_000, 3_000_000, &plan_of(0, 2_998_000)),
            [
                "the export starts 1.000 s before --start, at the key frame the pictures depend on",
                "the recording ends 0.002 s before --end",
            ]
        );
        // Starting after --start is never silent.
        let late = boundary_notes(0, 3_000_000, &plan_of(1_500_000, 3_000_000));
        assert_eq!(late.len(), 1);
        assert!(late[0].contains("starts 1.500 s after it"), "{late:?}");
    }

    #[test]
    fn a_failed_write_leaves_neither_output_nor_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.mp4");
        std::fs::write(&out, b"old").unwrap();
        let r = write_atomically(&out, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk on fire"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomically(&out, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
    }
}
