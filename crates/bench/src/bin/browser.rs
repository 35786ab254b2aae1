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

    let demo = Demo::start(&vigil, &demo_log)?;
    let chrome = Chromium::start(&driver_log).await?;
    let result = run(&args, &demo, &chrome).await;
    chrome.close().await;
    if result.is_err() {
        eprintln!("--- demo log (tail) ---\n{}", log_tail(&demo_log, 40));
    }
    result
}

async fn run(args: &Args, demo: &Demo, chrome: &Chromium) -> anyhow::Result<()> {
    chrome
        .setup_admin(&demo.setup_url, "admin", &servers::run_password())
        .await?;
    let cameras: Vec<String> = serde_json::from_value(chrome.js(CAMERAS_JS).await?)?;
    if cameras.is_empty() {
        bail!("the grid shows no camera");
    }
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

    println!(
        "vigil demo in headless Chromium ({} cameras, grid view, sub streams), loopback",
        cameras.len()
    );
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
        let css = format!("#grid .tile[data-camera=\"{cam}\"] video");
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
        "demo process CPU during the window: {:.1}% of one core (encoders + recorder + web{})",
        100.0 * cpu.cpu_s / wall,
        if cpu.precise { "" } else { ", tick-based" }
    );
    Ok(())
}
