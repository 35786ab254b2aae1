//! Motion benchmark: decode + detection per core at 640x360, beside `ffmpeg -threads 1 -i
//! SUB.mp4 -f null -` decoding the same file in the same run (the physical floor: a detector
//! has to decode every picture of the stream, P-frames need their references).
//!
//! The file is made here (`--source`):
//! - `x264` (default, camera-like): ffmpeg's `testsrc2` with temporal noise (sensor grain),
//!   libx264 main profile (CABAC), no B-frames, 512 kbit/s, a key frame every 2 s;
//! - `pattern`: the Vigil test pattern (moving bars, a bouncing box) encoded with Vigil's
//!   OpenH264 encoder (constrained baseline), written as Annex B and remuxed to MP4 by ffmpeg;
//! - `scene`: the scripted motion scene (mostly still, like a real yard), same encoder.
//!
//! Vigil's side runs in this process on one thread: [`vigil_nvr::motion::Analyzer`] (what
//! `spawn_motion`'s worker thread runs) over every access unit, with detection at 5 fps (the
//! default) and, for reference, at every picture; OpenH264 alone (decode only) too. With the
//! `libav` feature the Analyzer runs with both decoders, OpenH264 and libavcodec (one
//! thread), in the same run. CPU time is the thread's scheduler runtime
//! (`/proc/thread-self/schedstat`, ns); ffmpeg's is its own `-benchmark` utime + stime. Each
//! measurement is the best of `--runs`.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _};
use clap::Parser;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::OpenH264API;
use vigil_camera::testsrc::{SceneScript, TestPattern};
use vigil_camera::{EncoderConfig, H264Encoder};
use vigil_media::AccessUnit;
use vigil_nvr::motion::{Analyzer, DecoderKind};
use vigil_nvr::MotionSettings;

#[derive(Parser, Debug)]
#[command(about = "Motion detection: decode + detect per core vs ffmpeg decode-only")]
struct Args {
    /// Seconds of video in the file.
    #[arg(long, default_value_t = 60)]
    seconds: u32,
    /// Frame rate of the sub stream.
    #[arg(long, default_value_t = 15.0)]
    fps: f64,
    /// `x264`, `pattern` or `scene` (see the module doc).
    #[arg(long, default_value = "x264")]
    source: String,
    /// Repetitions; the best is kept.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Keep the files and print the directory.
    #[arg(long)]
    keep: bool,
}

const W: u32 = 640;
const H: u32 = 360;

/// CPU time of the calling thread, seconds (scheduler runtime, ns resolution).
fn thread_cpu() -> anyhow::Result<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let ns: u64 = s
        .split_whitespace()
        .next()
        .context("empty schedstat")?
        .parse()?;
    Ok(ns as f64 / 1e9)
}

fn encode(args: &Args) -> anyhow::Result<Vec<AccessUnit>> {
    let mut tp = if args.source == "scene" {
        TestPattern::scene(W, H, SceneScript::default())?
    } else {
        TestPattern::new(W, H)?
    };
    let keyint = (args.fps * 2.0).round() as u32;
    let mut enc = H264Encoder::new(EncoderConfig {
        width: W,
        height: H,
        fps: args.fps,
        bitrate_bps: 512_000,
        keyint,
    })?;
    let base = 1_800_000_000_000_000i64;
    let frames = (f64::from(args.seconds) * args.fps) as u32;
    let mut out = Vec::with_capacity(frames as usize);
    for n in 0..frames {
        let us = base + (f64::from(n) * 1e6 / args.fps) as i64;
        let pts = (f64::from(n) * 90_000.0 / args.fps) as i64;
        if let Some(au) = enc.encode(tp.render(n, us), pts, us)? {
            out.push(au);
        }
    }
    Ok(out)
}

/// Annex B (ITU-T H.264 Annex B): parameter sets before each key frame, start codes.
fn write_annexb(aus: &[AccessUnit], path: &Path) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for au in aus {
        if au.key {
            for ps in [&au.params.sps, &au.params.pps] {
                f.write_all(&[0, 0, 0, 1])?;
                f.write_all(ps)?;
            }
        }
        for nal in au.nal_units() {
            f.write_all(&[0, 0, 0, 1])?;
            f.write_all(nal)?;
        }
    }
    f.flush()?;
    Ok(())
}

fn ffmpeg(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-y"])
        .args(args)
        .output()
        .context("running ffmpeg (apt-get install ffmpeg)")?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("ffmpeg {args:?} failed: {err}");
    }
    Ok(err)
}

/// `bench: utime=0.581s stime=0.012s rtime=0.600s` → utime + stime.
fn ffmpeg_cpu(stderr: &str) -> anyhow::Result<f64> {
    let line = stderr
        .lines()
        .find(|l| l.contains("bench: utime="))
        .context("no `bench:` line from ffmpeg -benchmark")?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let rest = line
            .split_once(&format!("{name}="))
            .context("bench field")?
            .1;
        let v = rest
            .split(|c: char| c == 's' || c.is_whitespace())
            .next()
            .context("bench value")?;
        Ok(v.parse()?)
    };
    Ok(field("utime")? + field("stime")?)
}

fn decoded_frames(stderr: &str) -> Option<u64> {
    // The last progress line: `frame=  900 fps=...`.
    let l = stderr.rsplit("frame=").next()?;
    l.split_whitespace().next()?.parse().ok()
}

/// Analyzer over every access unit, detection at `fps`; returns (CPU s, analysed).
fn run_analyzer(aus: &[AccessUnit], kind: DecoderKind, fps: f32) -> anyhow::Result<(f64, u64)> {
    let settings = MotionSettings {
        fps,
        ..MotionSettings::default()
    };
    let mut a = Analyzer::with_decoder(settings, kind)?;
    let t0 = thread_cpu()?;
    for au in aus {
        a.push(au)?;
    }
    let cpu = thread_cpu()? - t0;
    let st = a.stats();
    if st.decoded + st.not_needed != aus.len() as u64 || st.errors != 0 {
        bail!("analyzer decoded {} of {} ({st:?})", st.decoded, aus.len());
    }
    Ok((cpu, st.analysed))
}

/// OpenH264 alone (Annex B input prepared beforehand, no copy of the picture).
fn run_decode_only(annexb: &[Vec<u8>]) -> anyhow::Result<f64> {
    let mut d = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())?;
    let t0 = thread_cpu()?;
    let mut n = 0u64;
    for au in annexb {
        if d.decode(au)?.is_some() {
            n += 1;
        }
    }
    let cpu = thread_cpu()? - t0;
    if n != annexb.len() as u64 {
        bail!("decoded {n} of {}", annexb.len());
    }
    Ok(cpu)
}

fn best<T: Copy>(
    runs: u32,
    mut f: impl FnMut() -> anyhow::Result<(f64, T)>,
) -> anyhow::Result<(f64, T)> {
    let mut best: Option<(f64, T)> = None;
    for _ in 0..runs.max(1) {
        let r = f()?;
        if best.is_none_or(|b| r.0 < b.0) {
            best = Some(r);
        }
    }
    best.context("no run")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let h264 = dir.path().join("SUB.h264");
    let mp4 = dir.path().join("SUB.mp4");
    let rate = format!("{}", args.fps);
    let mp4s = mp4.to_str().context("path")?;
    let (aus, what) = match args.source.as_str() {
        "x264" => {
            let src = format!("testsrc2=size={W}x{H}:rate={rate}");
            let secs = args.seconds.to_string();
            let gop = ((args.fps * 2.0).round() as u32).to_string();
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                &src,
                "-vf",
                "noise=alls=6:allf=t",
                "-t",
                &secs,
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-profile:v",
                "main",
                "-bf",
                "0",
                "-b:v",
                "512k",
                "-maxrate",
                "512k",
                "-bufsize",
                "1M",
                "-g",
                &gop,
                "-pix_fmt",
                "yuv420p",
                mp4s,
            ])?;
            let mut file = vigil_camera::FileSource::open(&mp4, args.fps)?;
            let base = 1_800_000_000_000_000i64;
            let n = file.frames_per_loop();
            let aus: Vec<AccessUnit> = (0..n)
                .map(|i| file.next_au(base + (i as f64 * 1e6 / args.fps) as i64))
                .collect();
            (
                aus,
                "testsrc2 + noise, libx264 main profile (CABAC), no B-frames",
            )
        }
        "pattern" | "scene" => {
            let aus = encode(&args)?;
            write_annexb(&aus, &h264)?;
            ffmpeg(&[
                "-r",
                &rate,
                "-f",
                "h264",
                "-i",
                h264.to_str().context("path")?,
                "-c",
                "copy",
                mp4s,
            ])?;
            let what = if args.source == "scene" {
                "scripted scene, Vigil's OpenH264 encoder (constrained baseline)"
            } else {
                "moving test pattern, Vigil's OpenH264 encoder (constrained baseline)"
            };
            (aus, what)
        }
        other => bail!("--source {other}: expected x264, pattern or scene"),
    };
    let n = aus.len() as f64;
    let bytes: usize = aus.iter().map(|a| a.data.len()).sum();
    println!(
        "file: {} pictures, {W}x{H} @ {} fps, {:.0} kbit/s, {what}",
        aus.len(),
        args.fps,
        bytes as f64 * 8.0 / (n / args.fps) / 1000.0,
    );

    let (ff_cpu, ff_frames) = best(args.runs, || {
        let err = ffmpeg(&[
            "-benchmark",
            "-threads",
            "1",
            "-i",
            mp4.to_str().context("path")?,
            "-f",
            "null",
            "-",
        ])?;
        Ok((ffmpeg_cpu(&err)?, decoded_frames(&err)))
    })?;
    if let Some(f) = ff_frames {
        if f != aus.len() as u64 {
            bail!("ffmpeg decoded {f} pictures, expected {}", aus.len());
        }
    }
    let annexb: Vec<Vec<u8>> = aus
        .iter()
        .map(|au| {
            let mut v = Vec::new();
            if au.key {
                for ps in [&au.params.sps, &au.params.pps] {
                    v.extend_from_slice(&[0, 0, 0, 1]);
                    v.extend_from_slice(ps);
                }
            }
            for nal in au.nal_units() {
                v.extend_from_slice(&[0, 0, 0, 1]);
                v.extend_from_slice(nal);
            }
            v
        })
        .collect();
    let (dec_cpu, ()) = best(args.runs, || Ok((run_decode_only(&annexb)?, ())))?;
    let kinds = [
        DecoderKind::OpenH264,
        #[cfg(feature = "libav")]
        DecoderKind::Libav,
    ];
    // (decoder, CPU at 5 fps, analysed at 5 fps, CPU at every picture, analysed)
    let mut runs = Vec::new();
    for &kind in &kinds {
        let (at5_cpu, at5_n) = best(args.runs, || run_analyzer(&aus, kind, 5.0))?;
        let (all_cpu, all_n) = best(args.runs, || run_analyzer(&aus, kind, 30.0))?;
        runs.push((kind, at5_cpu, at5_n, all_cpu, all_n));
    }

    let fps = |cpu: f64| n / cpu;
    println!();
    println!(
        "CPU per picture and pictures per second of one core (best of {}):",
        args.runs
    );
    println!(
        "  ffmpeg -threads 1 decode only (libavcodec)      {:7.3} ms  {:7.0} fps",
        ff_cpu / n * 1e3,
        fps(ff_cpu)
    );
    println!(
        "  OpenH264 decode only                             {:7.3} ms  {:7.0} fps",
        dec_cpu / n * 1e3,
        fps(dec_cpu)
    );
    // (decoder, decode path ms per picture, detection ms per analysed picture, ratio)
    let mut per = Vec::new();
    for &(kind, at5_cpu, at5_n, all_cpu, all_n) in &runs {
        let name = kind.name();
        println!(
            "  Vigil/{name:<10} decode all + detect at 5 fps ({at5_n:4} det) {:7.3} ms  {:7.0} fps",
            at5_cpu / n * 1e3,
            fps(at5_cpu)
        );
        println!(
            "  Vigil/{name:<10} decode all + detect every picture ({all_n:4}) {:7.3} ms  {:7.0} fps",
            all_cpu / n * 1e3,
            fps(all_cpu)
        );
        let detect_ms = ((all_cpu - at5_cpu) / (all_n.saturating_sub(at5_n)).max(1) as f64) * 1e3;
        let decode_ms = (at5_cpu / n * 1e3 - detect_ms * at5_n as f64 / n).max(0.0);
        println!(
            "    => detection {detect_ms:.3} ms per analysed picture, decode path {decode_ms:.3} ms per picture"
        );
        per.push((name, decode_ms, detect_ms, at5_cpu / ff_cpu));
    }
    println!();
    for &(name, _, _, ratio) in &per {
        println!(
            "ratio Vigil/{name} (decode + detect at 5 fps) / ffmpeg decode-only CPU: {ratio:.2}x (goal <= 1.3x)"
        );
    }
    println!("cameras per core, motion at 5 fps (every picture decoded):");
    for stream_fps in [5.0, 10.0, 15.0, 30.0] {
        let ff = stream_fps * ff_cpu / n * 1e3;
        let mut line = format!("  sub stream {stream_fps:>2} fps:");
        for &(name, decode_ms, detect_ms, _) in &per {
            let per_s = stream_fps * decode_ms + 5.0f64.min(stream_fps) * detect_ms;
            line += &format!(
                " Vigil/{name} {:5.1} cameras ({per_s:.1} ms CPU per camera-second);",
                1000.0 / per_s
            );
        }
        println!("{line} ffmpeg decode alone {:5.1}", 1000.0 / ff);
    }
    if args.keep {
        let kept = dir.keep();
        println!("files in {}", kept.display());
    }
    Ok(())
}
