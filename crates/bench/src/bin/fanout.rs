//! Fan-out benchmark: server CPU and memory per RTSP client, Vigil beside GStreamer's RTSP server.
//!
//! Both servers serve the same H.264 file (looped in real time, no re-encode) at /main with Digest
//! auth. For each client count N the servers are measured one after the other (never at the same
//! time, so they do not compete for the cores): N clients in this process play over TCP, then after
//! a warm-up the server's CPU time (of all threads) and RSS are sampled around a fixed
//! window, along with the RTP bytes every client received. CPU time is each server thread's
//! scheduler runtime (nanosecond accounting), not the 100 Hz utime/stime ticks.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use vigil_bench::procstat;
use vigil_bench::servers::{self, ServerGuard};
use vigil_testkit::rtsp::{self, digest::Credentials};

#[derive(Parser, Debug)]
#[command(about = "RTSP fan-out: CPU per client, Vigil vs GStreamer, same file, same clients")]
struct Args {
    /// Client counts to measure, comma-separated (at most 100 each).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    clients: Vec<usize>,
    /// Seconds of playing before the window opens.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Measured window in seconds.
    #[arg(long, default_value_t = 10.0)]
    window: f64,
    /// H.264 MP4 to serve; default: a 20 s 1280x720 30 fps ~4 Mbit/s file made with ffmpeg.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The vigil binary (default: next to this binary).
    #[arg(long)]
    vigil: Option<PathBuf>,
    /// The GStreamer peer script.
    #[arg(long)]
    gst_script: Option<PathBuf>,
    /// Python with python3-gi (the system one).
    #[arg(long, default_value = "/usr/bin/python3")]
    python: PathBuf,
    /// Measure only one side: vigil or gst.
    #[arg(long)]
    only: Option<String>,
}

/// Figures for one server at one client count.
#[derive(Debug, Clone, Default)]
struct Round {
    clients: usize,
    playing: usize,
    cpu_s: f64,
    window_s: f64,
    rss_mb: f64,
    min_mbps: f64,
    mean_mbps: f64,
}

impl Round {
    fn cpu_pct(&self) -> f64 {
        self.cpu_s / self.window_s * 100.0
    }
    /// CPU milliseconds spent per second of one client's streaming.
    fn ms_per_client_s(&self) -> f64 {
        self.cpu_s * 1000.0 / (self.clients as f64 * self.window_s)
    }
}

/// Plays N clients against `server`, measures one window, then drops the clients.
async fn measure(
    server: &ServerGuard,
    n: usize,
    creds: &Credentials,
    args: &Args,
) -> anyhow::Result<Round> {
    let url = server.main_url();
    let counters: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<(), String>>(n.max(1));
    let mut tasks = Vec::with_capacity(n);
    for counter in &counters {
        let (url, creds, counter, ready) = (
            url.clone(),
            creds.clone(),
            counter.clone(),
            ready_tx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            match rtsp::play::play(&url, &creds).await {
                Ok(playing) => {
                    let _ = ready.send(Ok(())).await;
                    let _ = playing.count_rtp_bytes(&counter).await;
                }
                Err(e) => {
                    let _ = ready.send(Err(e.to_string())).await;
                }
            }
        }));
    }
    drop(ready_tx);
    let mut playing = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for _ in 0..n {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => playing += 1,
            Ok(Some(Err(e))) => eprintln!("  {}: a client failed: {e}", server.name),
            Ok(None) | Err(_) => break,
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let pid = server.pid();
    let before = procstat::sample(pid)?;
    let me_before = procstat::sample(std::process::id())?;
    let bytes_before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.window)).await;
    let after = procstat::sample(pid)?;
    let me_after = procstat::sample(std::process::id())?;
    let window_s = t0.elapsed().as_secs_f64();
    let mbps: Vec<f64> = counters
        .iter()
        .zip(&bytes_before)
        .map(|(c, b)| (c.load(Ordering::Relaxed) - b) as f64 * 8.0 / window_s / 1e6)
        .collect();
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    // The clients' own cost, to show they were not the bottleneck.
    eprintln!(
        "  ({n} clients in the bench process used {:.1}% CPU)",
        procstat::cpu_between(&me_before, &me_after).cpu_s / window_s * 100.0
    );
    let cpu = procstat::cpu_between(&before, &after);
    if !cpu.precise {
        eprintln!("  (no per-thread runtimes in /proc: CPU from 100 Hz ticks, +-0.1% of a core)");
    }
    if cpu.vanished_threads > 0 {
        eprintln!(
            "  ({} server threads exited during the window; their last moments are not counted)",
            cpu.vanished_threads
        );
    }
    Ok(Round {
        clients: n,
        playing,
        cpu_s: cpu.cpu_s,
        window_s,
        rss_mb: after.rss_bytes as f64 / (1024.0 * 1024.0),
        min_mbps: mbps.iter().copied().fold(f64::INFINITY, f64::min),
        mean_mbps: mbps.iter().sum::<f64>() / mbps.len().max(1) as f64,
    })
}

async fn run_rounds(
    server: &ServerGuard,
    creds: &Credentials,
    args: &Args,
) -> anyhow::Result<Vec<Round>> {
    let mut rounds = Vec::new();
    // Baseline with no client: Vigil's file source keeps running; GStreamer's shared media is only
    // built for the first client.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle0 = procstat::sample(server.pid())?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = procstat::sample(server.pid())?;
    eprintln!(
        "{}: pid {}, listening {}, no clients: CPU {:.2}%, RSS {:.1} MB",
        server.name,
        server.pid(),
        server.rtsp_addr,
        procstat::cpu_between(&idle0, &idle).cpu_s / t0.elapsed().as_secs_f64() * 100.0,
        idle.rss_bytes as f64 / 1048576.0
    );
    for &n in &args.clients {
        let r = measure(server, n, creds, args).await?;
        eprintln!(
            "  {} N={n}: {}/{n} playing, CPU {:.2}% ({:.2} ms per client-second), RSS {:.1} MB, per-client Mbit/s min {:.2} mean {:.2}",
            server.name, r.playing, r.cpu_pct(), r.ms_per_client_s(), r.rss_mb, r.min_mbps, r.mean_mbps
        );
        rounds.push(r);
        // Let the server notice the disconnects before the next round.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(rounds)
}

fn print_table(file: &std::path::Path, args: &Args, v: &[Round], g: &[Round]) {
    println!();
    println!(
        "fanout: {} served to N RTSP/TCP clients, Digest auth, both servers on 127.0.0.1",
        file.display()
    );
    println!(
        "window {:.0} s after {:.0} s warm-up; CPU = scheduler runtime of the server's threads (/proc/PID/task/*/sched), 100% = one core",
        args.window, args.warmup
    );
    println!(
        "{:>4} | {:>8} {:>10} {:>8} {:>11} | {:>8} {:>10} {:>8} {:>11} | {:>9}",
        "N",
        "vigil%",
        "ms/cl·s",
        "RSS MB",
        "Mb/s min",
        "gst%",
        "ms/cl·s",
        "RSS MB",
        "Mb/s min",
        "gst/vigil"
    );
    for i in 0..v.len().max(g.len()) {
        let (vr, gr) = (v.get(i), g.get(i));
        let n = vr.or(gr).map(|r| r.clients).unwrap_or_default();
        let cell = |r: Option<&Round>| match r {
            Some(r) => format!(
                "{:>8.2} {:>10.3} {:>8.1} {:>6.2}{:>5}",
                r.cpu_pct(),
                r.ms_per_client_s(),
                r.rss_mb,
                r.min_mbps,
                if r.playing == r.clients {
                    String::new()
                } else {
                    format!("!{}", r.playing)
                }
            ),
            None => format!("{:>8} {:>10} {:>8} {:>11}", "-", "-", "-", "-"),
        };
        let ratio = match (vr, gr) {
            (Some(a), Some(b)) if a.cpu_s > 0.0 => format!("{:>8.2}x", b.cpu_s / a.cpu_s),
            _ => format!("{:>9}", "-"),
        };
        println!("{n:>4} | {} | {} | {ratio}", cell(vr), cell(gr));
    }
    println!("(ms/cl·s = server CPU ms per client-second; Mb/s min = slowest client's RTP rate; !k = only k clients played)");
    println!("gst/vigil = GStreamer's server CPU over Vigil's in the same window (goal: >= 2)");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // One thread for all clients: their cost stays bounded to one core and out of the servers' way.
    let args = Args::parse();
    if args.clients.iter().any(|&n| n == 0 || n > 100) {
        bail!("--clients must be between 1 and 100");
    }
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let file = match &args.file {
        Some(f) => f.clone(),
        None => servers::make_test_file(tmp.path(), "fanout-720p30-4M.mp4")?,
    };
    let creds = Credentials {
        user: "bench".into(),
        password: servers::run_password(),
    };
    let want = |side: &str| args.only.as_deref().is_none_or(|o| o == side);

    let mut vigil_rounds = Vec::new();
    if want("vigil") {
        let vigil = servers::vigil_binary(args.vigil.clone())?;
        let data = tmp.path().join("vigil-data");
        std::fs::create_dir_all(&data)?;
        servers::vigil_add_user(&vigil, &data, &creds.user, &creds.password)?;
        let mut cmd = Command::new(&vigil);
        cmd.arg("camera")
            .arg("--source")
            .arg(format!("file:{}", file.display()))
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
        vigil_rounds = run_rounds(&server, &creds, &args).await?;
    }
    let mut gst_rounds = Vec::new();
    if want("gst") {
        let server = servers::spawn_gst_file(
            &args.python,
            args.gst_script.as_deref(),
            &file,
            &["--user", &creds.user, "--password", &creds.password],
            &tmp.path().join("gst.log"),
        )?;
        gst_rounds = run_rounds(&server, &creds, &args).await?;
    }
    print_table(&file, &args, &vigil_rounds, &gst_rounds);
    Ok(())
}
