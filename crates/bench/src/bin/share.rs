//! Share-link bench (issue 13): for a clip of `--clip-s` seconds (default one minute) of a
//! 720p25 camera at a real 4 Mbit/s (a file of testsrc2 with temporal noise, made by ffmpeg and
//! replayed by `vigil camera --source file:…`; the plain test pattern compresses far below its
//! target),
//! - the owner's wait from "Share" to a link to send: `POST /api/shares` of a clip kept on the
//!   recorder, and of an offsite clip (exported, sealed with AES-256-GCM and uploaded with its
//!   page to SeaweedFS);
//! - the recipient's wait from opening the link to the first picture in headless Chromium,
//!   for both kinds;
//! - beside the status quo a share link replaces, in the same run: downloading the same range as
//!   an MP4 (`export.mp4?download=1`) in order to mail it.
//!
//! Real parts over 127.0.0.1: `vigil camera` (test pattern), `vigil serve` with `[cloud]` on
//! SeaweedFS, Debian's Chromium. Each figure is measured `--runs` times (default 3); the output
//! gives every run and the median.
//!
//! ```sh
//! cargo build --release -p vigil -p vigil-bench && target/release/share
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::{json, Value};
use vigil_bench::browser::Chromium;
use vigil_bench::children::ChildGuard;
use vigil_bench::servers;
use vigil_testkit::s3::SeaweedS3;

#[derive(Parser, Debug)]
#[command(about = "Share links: time to a link and to the recipient's first picture")]
struct Args {
    /// Length of the shared clip, seconds.
    #[arg(long, default_value_t = 60)]
    clip_s: u64,
    /// Camera picture size.
    #[arg(long, default_value = "1280x720")]
    size: String,
    /// Camera frames per second.
    #[arg(long, default_value_t = 25)]
    fps: u32,
    /// Camera bitrate (ffmpeg's syntax).
    #[arg(long, default_value = "4M")]
    bitrate: String,
    /// Measurements of each figure.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The vigil binary (default: next to this binary).
    #[arg(long)]
    vigil: Option<PathBuf>,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

fn fmt_runs(v: &[f64]) -> String {
    let runs: Vec<String> = v.iter().map(|x| format!("{x:.0}")).collect();
    format!("median {:.0} ms (runs {})", median(v), runs.join(", "))
}

/// `vigil serve`'s first lines: the HTTPS address and the setup link.
struct Serve {
    _guard: ChildGuard,
    https_port: u16,
    setup_url: String,
}

fn spawn_serve(vigil: &Path, config: &Path, log: &Path) -> anyhow::Result<Serve> {
    let mut cmd = Command::new(vigil);
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn");
    let (guard, rx) = ChildGuard::spawn_with_lines(cmd, log, Duration::from_secs(20))?;
    let (mut port, mut setup) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while port.is_none() || setup.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .with_context(|| format!("vigil serve did not start; see {}", log.display()))?;
        if let Some(a) = line.strip_prefix("listening https ") {
            let addr: std::net::SocketAddr = a.trim().parse().context("https address")?;
            port = Some(addr.port());
        } else if let Some(u) = line.strip_prefix("setup-url ") {
            setup = Some(u.trim().to_owned());
        }
    }
    let (port, setup) = (port.unwrap_or_default(), setup.unwrap_or_default());
    let token = setup
        .split_once("#/setup/")
        .map(|(_, t)| t.to_owned())
        .context("setup-url without a token")?;
    Ok(Serve {
        _guard: guard,
        https_port: port,
        setup_url: format!("https://127.0.0.1:{port}/#/setup/{token}"),
    })
}

/// Waits in the page until `<video id=ID>` shows a picture; the page's own clock at that
/// moment, ms since the navigation started.
const FIRST_PICTURE: &str = "const id = arguments[0]; return new Promise((res, rej) => { \
    const end = performance.now() + 60000; \
    const t = () => { const v = document.getElementById(id); \
      if (v && v.readyState >= 2 && v.videoWidth > 0) return res(performance.now()); \
      const m = document.getElementById('share-message'); \
      if (m && m.dataset.reason) return rej(new Error('share page: ' + m.dataset.reason + ': ' + m.textContent)); \
      if (performance.now() > end) return rej(new Error('no picture in 60 s')); \
      setTimeout(t, 5); }; t(); });";

/// `POST /api/shares` from the logged-in page: [status, ms, url].
const CREATE: &str = "const body = arguments[0]; return (async () => { \
    const s = await (await fetch('/api/session')).json(); \
    const t0 = performance.now(); \
    const r = await fetch('/api/shares', {method: 'POST', headers: {'content-type': 'application/json', \
      'x-csrf-token': s.csrf_token}, body: JSON.stringify(body)}); \
    const j = await r.json(); return [r.status, performance.now() - t0, j.url || j.error]; })();";

/// The status quo: the same range downloaded as an MP4 in the page: [status, ms, bytes].
const DOWNLOAD: &str = "const u = arguments[0]; return (async () => { \
    const t0 = performance.now(); const r = await fetch(u); const b = await r.arrayBuffer(); \
    return [r.status, performance.now() - t0, b.byteLength]; })();";

async fn measure(args: &Args, serve: &Serve, work: &Path) -> anyhow::Result<()> {
    let base = format!("https://127.0.0.1:{}", serve.https_port);
    let chrome = Chromium::start(&work.join("chromedriver.log")).await?;
    let password = servers::run_password();
    chrome
        .setup_admin(&serve.setup_url, "owner", &password)
        .await?;
    let end_us = now_us() - 3_000_000;
    let start_us = end_us - (args.clip_s as i64) * 1_000_000;
    let (mut local, mut offsite, mut download) = (Vec::new(), Vec::new(), Vec::new());
    let (mut local_ttff, mut offsite_ttff) = (Vec::new(), Vec::new());
    let mut bytes = 0.0;
    for _ in 0..args.runs {
        chrome.client.goto(&format!("{base}/#/")).await?;
        let mut links = Vec::new();
        for (kind, out) in [("clip", &mut local), ("offsite", &mut offsite)] {
            let body = json!({"kind": kind, "camera": "cam", "start_us": start_us,
                "end_us": end_us, "expires_s": 3600});
            let r = chrome.client.execute(CREATE, vec![body]).await?;
            if r[0] != 201 {
                bail!("creating a {kind} share: {r}");
            }
            out.push(r[1].as_f64().unwrap_or(f64::NAN));
            links.push(r[2].as_str().unwrap_or_default().to_owned());
        }
        let url =
            format!("/api/cameras/cam/export.mp4?start_us={start_us}&end_us={end_us}&download=1");
        let r = chrome.client.execute(DOWNLOAD, vec![json!(url)]).await?;
        if r[0] != 200 {
            bail!("export download: {r}");
        }
        download.push(r[1].as_f64().unwrap_or(f64::NAN));
        bytes = r[2].as_f64().unwrap_or(0.0);
        for (link, out, id) in [
            (&links[0], &mut local_ttff, "share-video"),
            (&links[1], &mut offsite_ttff, "share-video"),
        ] {
            // A fresh document each time: no cached clip, no media session kept.
            chrome.client.goto("about:blank").await?;
            chrome.client.delete_all_cookies().await?;
            chrome.client.goto(link).await?;
            let v: Value = chrome
                .client
                .execute(FIRST_PICTURE, vec![json!(id)])
                .await
                .with_context(|| format!("opening {}", link.split('#').next().unwrap_or("")))?;
            out.push(v.as_f64().unwrap_or(f64::NAN));
        }
    }
    chrome.close().await;
    println!(
        "clip: {} s of {} at {} fps, {} ({:.1} MB as MP4)",
        args.clip_s,
        args.size,
        args.fps,
        args.bitrate,
        bytes / 1e6
    );
    println!("owner, Share to a link to send:");
    println!("  local link                 {}", fmt_runs(&local));
    println!("  offsite link (seal+upload) {}", fmt_runs(&offsite));
    println!("  peer: download the MP4     {}", fmt_runs(&download));
    println!("recipient, open the link to the first picture (Chromium):");
    println!("  local link                 {}", fmt_runs(&local_ttff));
    println!("  offsite link (fetch+open)  {}", fmt_runs(&offsite_ttff));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let vigil = servers::vigil_binary(args.vigil.clone())?;
    let work = tempfile::tempdir()?;
    let s3 = SeaweedS3::start("vigil");
    let cam_data = work.path().join("camera");
    std::fs::create_dir_all(&cam_data)?;
    let cam_password = servers::run_password();
    servers::vigil_add_user(&vigil, &cam_data, "bench", &cam_password)?;
    let source = work.path().join("source.mp4");
    eprintln!("making {} with ffmpeg …", source.display());
    let made = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc2=size={}:rate={}", args.size, args.fps))
        .args(["-t", "20", "-vf", "noise=alls=10:allf=t", "-c:v", "libx264"])
        .args([
            "-b:v",
            &args.bitrate,
            "-minrate",
            &args.bitrate,
            "-maxrate",
            &args.bitrate,
        ])
        .args([
            "-bufsize",
            &args.bitrate,
            "-g",
            &(2 * args.fps).to_string(),
            "-bf",
            "0",
        ])
        .args(["-pix_fmt", "yuv420p", "-preset", "veryfast"])
        .arg(&source)
        .status()
        .context("running ffmpeg (apt-get install ffmpeg)")?;
    if !made.success() {
        bail!("ffmpeg failed: {made}");
    }
    let mut cam = Command::new(&vigil);
    cam.args(["camera", "--source"])
        .arg(format!("file:{}", source.display()))
        .arg("--data")
        .arg(&cam_data)
        .args([
            "--rtsp",
            "127.0.0.1:0",
            "--rtsps",
            "off",
            "--http",
            "off",
            "--onvif",
            "off",
        ])
        .args(["--sub-size", "off"])
        .env("RUST_LOG", "warn");
    let camera = servers::spawn_server("vigil camera", cam, &work.path().join("camera.log"))?;
    let key = work.path().join("owner.key");
    let out = Command::new(&vigil)
        .args(["cloud", "keygen", "--output"])
        .arg(&key)
        .output()
        .context("vigil cloud keygen")?;
    let recipient = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !recipient.starts_with("age1") {
        bail!("keygen printed {recipient:?}");
    }
    let config = work.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{data}\"\n[cloud]\nendpoint = \"{ep}\"\nbucket = \"{bucket}\"\n\
             prefix = \"bench\"\npath_style = true\naccess_key_id = \"{ak}\"\n\
             secret_access_key = \"{sk}\"\nrecipients = [\"{recipient}\"]\n\n\
             [web]\nlisten = \"127.0.0.1:0\"\n\n[[camera]]\nname = \"cam\"\nurl = \"{url}\"\n\
             username = \"bench\"\npassword = \"{cam_password}\"\n",
            data = work.path().join("data").display(),
            ep = s3.endpoint(),
            bucket = s3.bucket,
            ak = s3.access_key,
            sk = s3.secret_key,
            url = camera.main_url(),
        ),
    )?;
    let serve = spawn_serve(&vigil, &config, &work.path().join("serve.log"))?;
    eprintln!("recording {} s before sharing…", args.clip_s + 5);
    std::thread::sleep(Duration::from_secs(args.clip_s + 5));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let r = rt.block_on(measure(&args, &serve, work.path()));
    if r.is_err() {
        eprintln!(
            "serve log tail:\n{}",
            vigil_bench::browser::log_tail(&work.path().join("serve.log"), 30)
        );
    }
    drop(serve);
    drop(camera);
    drop(s3);
    r
}
