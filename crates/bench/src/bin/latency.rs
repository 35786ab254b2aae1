//! Latency benchmark: capture → decoded picture on an RTSP client, for `vigil camera --source testsrc`.
//!
//! The test pattern burns each frame's wall-clock capture time and a frame counter into the picture.
//! The client plays the main stream over TCP, decodes every access unit, reads the code back and
//! records `now - capture` when the picture is decoded; counter gaps are frames lost anywhere on the
//! way (encoder, hub, server, client). Two clients are measured one after the other: this crate's
//! own (RTP depacketizer + openh264), and ffmpeg (`-threads 1`, low-delay flags) as a third-party
//! player. Both run on the same machine as the server and their decode time counts.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Parser;
use openh264::decoder::Decoder;
use openh264::formats::YUVSource as _;
use vigil_bench::depacketize::{parse_rtp, Depacketizer};
use vigil_bench::{percentile, servers};
use vigil_camera::testsrc::read_code;
use vigil_testkit::rtsp::{self, digest::Credentials};

#[derive(Parser, Debug)]
#[command(about = "Capture-to-decoded latency of vigil's test-pattern camera over RTSP/TCP")]
struct Args {
    /// Seconds measured per client.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Seconds played before measuring (decoder start-up, first key frame).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Main stream size.
    #[arg(long, default_value = "1280x720")]
    size: String,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// The vigil binary (default: next to this binary).
    #[arg(long)]
    vigil: Option<PathBuf>,
    /// Skip the ffmpeg client.
    #[arg(long)]
    no_ffmpeg: bool,
}

/// What one client saw.
#[derive(Debug, Default)]
struct Stats {
    latencies_ms: Vec<f64>,
    frames: u64,
    unreadable: u64,
    lost: u64,
    last_counter: Option<u32>,
}

impl Stats {
    fn record(&mut self, y: &[u8], stride: usize, w: u32, h: u32, measuring: bool) {
        let Some(code) = read_code(y, stride, w, h) else {
            if measuring {
                self.unreadable += 1;
            }
            return;
        };
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or_default();
        if let Some(last) = self.last_counter {
            if measuring && code.counter > last {
                self.lost += u64::from(code.counter - last - 1);
            }
        }
        self.last_counter = Some(code.counter);
        if measuring {
            self.frames += 1;
            self.latencies_ms
                .push((now_us - code.capture_us) as f64 / 1000.0);
        }
    }

    fn row(&mut self, name: &str) -> String {
        self.latencies_ms.sort_by(f64::total_cmp);
        let p = |q| percentile(&self.latencies_ms, q).map_or("-".into(), |v| format!("{v:.1}"));
        format!(
            "{name:<24} {:>7} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8}",
            self.frames,
            self.lost,
            self.unreadable,
            p(50.0),
            p(95.0),
            p(99.0),
            p(100.0)
        )
    }
}

/// This crate's client: RTP/TCP → depacketize → openh264 → read the code.
async fn own_client(url: &str, creds: &Credentials, args: &Args) -> anyhow::Result<Stats> {
    let mut playing = rtsp::play::play(url, creds).await?;
    let mut decoder = Decoder::new().context("creating the openh264 decoder")?;
    for ps in rtsp::sprop_parameter_sets(&playing.sdp) {
        let mut nal = vec![0, 0, 0, 1];
        nal.extend_from_slice(&ps);
        let _ = decoder.decode(&nal);
    }
    let mut depack = Depacketizer::new();
    let mut stats = Stats::default();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.seconds);
    let mut decode_errors = 0u64;
    while Instant::now() < end {
        let Some((ch, data)) = tokio::time::timeout_at(end.into(), playing.next_frame())
            .await
            .unwrap_or(Ok(None))?
        else {
            break;
        };
        if ch != 0 {
            continue;
        }
        let Some(pkt) = parse_rtp(&data) else {
            continue;
        };
        let Some(au) = depack.push(&pkt) else {
            continue;
        };
        match decoder.decode(&au) {
            Ok(Some(yuv)) => {
                let (w, h) = yuv.dimensions();
                let stride = yuv.strides().0;
                stats.record(
                    yuv.y(),
                    stride,
                    w as u32,
                    h as u32,
                    Instant::now() >= measure_from,
                );
            }
            Ok(None) => {}
            Err(_) => decode_errors += 1,
        }
    }
    if decode_errors > 0 || depack.lost_packets > 0 {
        eprintln!(
            "  own client: {decode_errors} decode errors, {} RTP packets lost",
            depack.lost_packets
        );
    }
    Ok(stats)
}

/// Kills the ffmpeg child however we leave.
struct ChildGuard(Child);
impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ffmpeg as the player: decodes to raw I420 on stdout; we read the luma plane of each picture.
fn ffmpeg_client(url_with_creds: &str, w: u32, h: u32, args: &Args) -> anyhow::Result<Stats> {
    let child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rtsp_transport",
            "tcp",
        ])
        .args([
            "-fflags",
            "nobuffer",
            "-flags",
            "low_delay",
            "-threads",
            "1",
            "-i",
            url_with_creds,
        ])
        .args([
            "-an",
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "pipe:1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting ffmpeg")?;
    let mut guard = ChildGuard(child);
    let mut out = guard.0.stdout.take().context("ffmpeg stdout")?;
    let (wu, hu) = (w as usize, h as usize);
    let mut frame = vec![0u8; wu * hu * 3 / 2];
    let mut stats = Stats::default();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.seconds);
    while Instant::now() < end {
        if out.read_exact(&mut frame).is_err() {
            break;
        }
        let y = frame.get(..wu * hu).unwrap_or_default();
        stats.record(y, wu, w, h, Instant::now() >= measure_from);
    }
    Ok(stats)
}

fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s.split_once('x').context("--size must be WxH")?;
    Ok((w.parse()?, h.parse()?))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (w, h) = parse_size(&args.size)?;
    if args.seconds <= 0.0 || args.seconds > 300.0 {
        bail!("--seconds must be in (0, 300]");
    }
    let tmp = tempfile::tempdir()?;
    let creds = Credentials {
        user: "bench".into(),
        password: servers::run_password(),
    };
    let vigil = servers::vigil_binary(args.vigil.clone())?;
    let data = tmp.path().join("vigil-data");
    std::fs::create_dir_all(&data)?;
    servers::vigil_add_user(&vigil, &data, &creds.user, &creds.password)?;
    let mut cmd = Command::new(&vigil);
    cmd.args([
        "camera",
        "--source",
        "testsrc",
        "--size",
        &args.size,
        "--fps",
        &args.fps.to_string(),
    ])
    .args([
        "--sub-size",
        "off",
        "--rtsp",
        "127.0.0.1:0",
        "--rtsps",
        "off",
        "--http",
        "off",
        "--onvif",
        "off",
        "--data",
    ])
    .arg(&data);
    let server = servers::spawn_server("vigil", cmd, &tmp.path().join("vigil.log"))?;
    let url = server.main_url();
    eprintln!(
        "vigil: pid {}, {url}; measuring {} s after {} s warm-up",
        server.pid(),
        args.seconds,
        args.warmup
    );

    let mut rows = Vec::new();
    let mut own = own_client(&url, &creds, &args).await?;
    rows.push(own.row("bench client (openh264)"));
    if !args.no_ffmpeg {
        let cred_url = format!(
            "rtsp://{}:{}@{}/main",
            creds.user, creds.password, server.rtsp_addr
        );
        match ffmpeg_client(&cred_url, w, h, &args) {
            Ok(mut s) => rows.push(s.row("ffmpeg -threads 1")),
            Err(e) => eprintln!("ffmpeg client skipped: {e:#}"),
        }
    }
    drop(server);

    println!();
    println!(
        "latency: vigil camera --source testsrc {}@{} (main stream, default bitrate), RTSP/TCP on 127.0.0.1, {:.0} s per client",
        args.size, args.fps, args.seconds
    );
    println!("latency = wall clock when the client has the decoded picture - capture time burned into it");
    println!(
        "{:<24} {:>7} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "client", "frames", "lost", "unread", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for r in rows {
        println!("{r}");
    }
    println!("(lost = frame-counter gaps; unread = decoded pictures whose code did not read; goal p95 < 100 ms)");
    Ok(())
}
