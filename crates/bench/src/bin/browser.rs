//! Browser bench (issue 4): the web app's live view as a person sees it, in headless Chromium.
//!
//! Runs `vigil demo` (two test-pattern cameras, recorded, served on HTTPS), creates the admin
//! through the setup page, then measures with the player's own figures (`window.__vigil.stats`):
//! - page load → first live frame (`firstFrameMs`: `performance.now()` at the first frame shown,
//!   i.e. from navigation start), over several fresh loads of the grid;
//! - live latency p50/p95/max over a window of steady play: display time of each frame
//!   (`requestVideoFrameCallback`) minus its capture time on the test pattern's clock, carried
//!   with each fragment, the server clock offset applied.
//!
//! - the same latency read from the pixels: frames grabbed on a canvas as they are shown, the
//!   capture time burned into the picture by the test pattern decoded from them (a check of the
//!   player's own figure that does not trust its bookkeeping).
//!
//! Also prints the CPU of the whole demo process (two encoders, recorder, web server) during the
//! latency window, for scale. Needs `chromium` and `chromium-driver` (Debian packages).
//!
//! `--transport both` (the default) measures everything twice in one run, over WebRTC (the
//! UI's default) and over MSE (`localStorage['vigil.transport'] = 'mse'`), and checks that each
//! player really used its transport. `--camera 1280x720@30` measures one camera of that size
//! instead of the demo: `vigil camera` recorded by `vigil serve`, its main stream on the camera
//! page; the CPU figure is then `vigil serve`'s alone (the encoder runs in the camera process).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::Value;
use vigil_bench::browser::{latencies_between, log_tail, Chromium, Demo};
use vigil_bench::{percentile, procstat, servers};

#[derive(Parser, Debug)]
#[command(
    about = "Page load to first live frame, and live latency, of vigil demo in headless Chromium"
)]
struct Args {
    /// Seconds of steady live play measured for latency.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Fresh page loads measured for the first frame.
    #[arg(long, default_value_t = 5)]
    loads: u32,
    /// Frames per camera whose latency is also read from their pixels.
    #[arg(long, default_value_t = 30)]
    pixel_frames: u32,
    /// The vigil binary (default: next to this binary).
    #[arg(long)]
    vigil: Option<PathBuf>,
    /// Directory for the demo's and chromedriver's logs (default: a temporary directory).
    #[arg(long)]
    logs: Option<PathBuf>,
    /// `webrtc`, `mse`, or `both` (one after the other, same server and camera).
    #[arg(long, default_value = "both")]
    transport: String,
    /// One test-pattern camera `WxH@FPS` (e.g. `1280x720@30`) behind `vigil serve`, played on
    /// its camera page (main stream), instead of `vigil demo`'s grid.
    #[arg(long)]
    camera: Option<String>,
}

/// `WxH@FPS`.
fn parse_camera(s: &str) -> anyhow::Result<((u32, u32), u32)> {
    let (size, fps) = s.split_once('@').context("--camera WxH@FPS")?;
    let (w, h) = size.split_once('x').context("--camera WxH@FPS")?;
    Ok(((w.parse()?, h.parse()?), fps.parse()?))
}

/// Names of the cameras in the grid.
const CAMERAS_JS: &str = "return Array.from(document.querySelectorAll('#grid .tile[data-camera]'))
    .map(t => t.dataset.camera);";

/// The first-frame time of every camera once all have one, else null.
const FIRST_FRAMES_JS: &str = "const s = window.__vigil && window.__vigil.stats;
    if (!s) return null;
    const out = {};
    for (const name of arguments[0]) {
        if (!s[name] || s[name].firstFrameMs === null) return null;
        out[name] = s[name].firstFrameMs;
    }
    return out;";

fn stats_line(name: &str, v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let p = |q| percentile(&s, q).map_or("-".to_owned(), |x| format!("{x:.0}"));
    format!(
        "{name:<8} {:>7} {:>7} {:>7} {:>7}",
        s.len(),
        p(50.0),
        p(95.0),
        p(100.0)
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let vigil = servers::vigil_binary(args.vigil.clone())?;
    let tmp = tempfile::tempdir()?;
    let logs = args.logs.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&logs)?;
    let demo_log = logs.join("demo.log");
    let driver_log = logs.join("chromedriver.log");

    let transports: Vec<&str> = match args.transport.as_str() {
        "both" => vec!["webrtc", "mse"],
        "webrtc" => vec!["webrtc"],
        "mse" => vec!["mse"],
        other => bail!("--transport must be webrtc, mse or both, not {other:?}"),
    };
    let demo = match &args.camera {
        Some(c) => {
            let (size, fps) = parse_camera(c)?;
            Demo::serve_camera(&vigil, &demo_log, size, fps)?
        }
        None => Demo::start(&vigil, &demo_log)?,
    };
    let chrome = Chromium::start(&driver_log).await?;
    let mut result = chrome
        .setup_admin(&demo.setup_url, "admin", &servers::run_password())
        .await
        .map_err(anyhow::Error::from);
    for transport in transports {
        if result.is_err() {
            break;
        }
        result = run(&args, &demo, &chrome, transport).await;
    }
    chrome.close().await;
    if result.is_err() {
        eprintln!("--- demo log (tail) ---\n{}", log_tail(&demo_log, 40));
    }
    result
}

async fn run(args: &Args, demo: &Demo, chrome: &Chromium, transport: &str) -> anyhow::Result<()> {
    // The UI reads the override when a view is built: set it, then load the page afresh.
    let set = if transport == "mse" {
        "localStorage.setItem('vigil.transport', 'mse'); return true;"
    } else {
        "localStorage.removeItem('vigil.transport'); return true;"
    };
    chrome.js(set).await?;
    let single = args.camera.is_some();
    if single {
        chrome
            .client
            .goto(&format!("{}/#/camera/cam", demo.base_url()))
            .await
            .context("opening the camera page")?;
    }
    let cameras: Vec<String> = if single {
        vec!["cam".to_owned()]
    } else {
        serde_json::from_value(chrome.js(CAMERAS_JS).await?)?
    };
    if cameras.is_empty() {
        bail!("the grid shows no camera");
    }
    let video_css = |cam: &str| {
        if single {
            format!(".player.big[data-camera=\"{cam}\"] video")
        } else {
            format!("#grid .tile[data-camera=\"{cam}\"] video")
        }
    };
    let cams = Value::from(cameras.clone());

    // Fresh loads of the grid: the session cookie stays, the page and the player start over.
    let mut first: Vec<Vec<f64>> = vec![Vec::new(); cameras.len()];
    for _ in 0..args.loads.max(1) {
        chrome.client.refresh().await.context("reload")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let v = loop {
            let v = chrome
                .client
                .execute(FIRST_FRAMES_JS, vec![cams.clone()])
                .await
                .context("reading firstFrameMs")?;
            if !v.is_null() {
                break v;
            }
            if Instant::now() >= deadline {
                bail!("no first frame in every tile within 20 s of a load");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for (i, cam) in cameras.iter().enumerate() {
            if let (Some(f), Some(list)) = (v[cam].as_f64(), first.get_mut(i)) {
                list.push(f);
            }
        }
        // Let the page settle before the next load (and before the latency window).
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Steady live play.
    let before = chrome.stats().await?;
    let cpu0 = procstat::sample(demo.pid())?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    let after = chrome.stats().await?;
    let cpu1 = procstat::sample(demo.pid())?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = procstat::cpu_between(&cpu0, &cpu1);

    // Each player must really have used the transport measured.
    for cam in &cameras {
        let used = after[cam]["transport"].as_str().unwrap_or("?");
        if used != transport {
            bail!("{cam} played over {used}, not {transport}: {}", after[cam]);
        }
    }
    println!();
    println!("======== {} ========", transport.to_uppercase());
    match &args.camera {
        Some(c) => println!(
            "vigil serve + vigil camera {c} in headless Chromium (camera page, main stream), loopback"
        ),
        None => println!(
            "vigil demo in headless Chromium ({} cameras, grid view, sub streams), loopback",
            cameras.len()
        ),
    }
    println!();
    println!(
        "page load -> first live frame (ms, {} fresh loads):",
        args.loads.max(1)
    );
    println!(
        "{:<8} {:>7} {:>7} {:>7} {:>7}",
        "camera", "loads", "p50", "p95", "max"
    );
    for (cam, v) in cameras.iter().zip(&first) {
        println!("{}", stats_line(cam, v));
    }
    println!();
    println!(
        "live latency, capture -> display (ms, {:.0} s of steady play):",
        wall
    );
    println!(
        "{:<8} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "camera", "frames", "p50", "p95", "max", "fps"
    );
    for cam in &cameras {
        let lat = latencies_between(&before, &after, cam);
        println!("{} {:>7.1}", stats_line(cam, &lat), lat.len() as f64 / wall);
    }
    println!();
    println!("the same, read from the pixels of shown frames (canvas, burned-in capture time):");
    println!(
        "{:<8} {:>7} {:>7} {:>7} {:>7}",
        "camera", "frames", "p50", "p95", "max"
    );
    for cam in &cameras {
        let css = video_css(cam);
        let mut lat = Vec::new();
        for _ in 0..args.pixel_frames {
            if let Some(l) = chrome.pixel_latency_ms(&css).await {
                lat.push(l);
            }
        }
        println!("{}", stats_line(cam, &lat));
    }
    println!();
    println!(
        "{} CPU during the window: {:.1}% of one core ({}{})",
        if single {
            "vigil serve"
        } else {
            "demo process"
        },
        100.0 * cpu.cpu_s / wall,
        if single {
            "recorder + web, one viewer"
        } else {
            "encoders + recorder + web"
        },
        if cpu.precise { "" } else { ", tick-based" }
    );
    Ok(())
}
