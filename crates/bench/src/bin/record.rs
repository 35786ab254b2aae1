//! Recorder benchmark: CPU per stream-hour and memory per stream of `vigil serve`, beside the
//! peers recording the same streams in the same run — one `ffmpeg -c copy -f segment` process
//! per camera (what Frigate runs), Moonfire NVR (`--moonfire BIN`, built by the recipe in
//! `crates/bench/moonfire/`) and the floor (`record_floor`: the bytes appended to files with one
//! `fdatasync` per file per second, nothing parsed) — with a check from Vigil's index that no
//! frame was lost.
//!
//! One GStreamer RTSP server (`scripts/gst-rtsp-server.py`) serves a ~4 Mbit/s 1280x720 30 fps
//! H.264 file in a loop on one shared mount; every recorder stream plays that mount, so the
//! camera side stays cheap. The file is fed through a live `appsrc`, which answers the SEEKING
//! query as not seekable, so a client's `Range: npt=0-` on PLAY (retina sends it) cannot seek
//! the shared pipeline under the other clients; the Moonfire recipe also builds it with a retina
//! that omits the header. For each N the recorders run one after the other, never together:
//! after all N streams are up and a warm-up, CPU (per-thread scheduler runtime), memory and the
//! bytes on disk are sampled around a fixed window, then the recorder is stopped (SIGTERM) and
//! its output is checked.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Parser;
use vigil_bench::children::{self, ChildGuard};
use vigil_bench::procstat::{self, ProcSample};
use vigil_bench::{recindex, servers};

#[derive(Parser, Debug)]
#[command(
    about = "Recording N RTSP streams: CPU and memory per stream, vigil serve vs ffmpeg, Moonfire NVR and the floor"
)]
struct Args {
    /// Stream counts to measure, comma-separated (1 to 128 each).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    streams: Vec<usize>,
    /// Seconds of recording after all streams are up, before the window opens.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Measured window in seconds.
    #[arg(long, default_value_t = 30.0)]
    window: f64,
    /// H.264 MP4 to serve; default: a 20 s 1280x720 30 fps ~4 Mbit/s file made with ffmpeg.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Frame rate of the served file (what "no frame lost" expects per second).
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// The vigil binary (default: next to this binary).
    #[arg(long)]
    vigil: Option<PathBuf>,
    /// The GStreamer peer script.
    #[arg(long)]
    gst_script: Option<PathBuf>,
    /// Python with python3-gi (the system one).
    #[arg(long, default_value = "/usr/bin/python3")]
    python: PathBuf,
    /// Sides to run, in this order, comma-separated: ffmpeg, moonfire, vigil, floor.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ffmpeg,moonfire,vigil,floor"
    )]
    sides: Vec<String>,
    /// The Moonfire NVR binary (`crates/bench/moonfire/README.md` says how to build it);
    /// required when the sides include moonfire.
    #[arg(long)]
    moonfire: Option<PathBuf>,
    /// Moonfire's `flushIfSec` (its `config` tool's default is 0: commit each finished
    /// recording, i.e. once a minute per stream).
    #[arg(long, default_value_t = 0)]
    moonfire_flush: u32,
    /// The floor's read batching in ms of media; default: the same as Vigil's ingest.
    #[arg(long, default_value_t = vigil_ingest::config::DEFAULT_READ_BATCH.as_millis() as u64)]
    floor_batch_ms: u64,
    /// Keep the temporary directory (recordings, logs) and print its path.
    #[arg(long)]
    keep: bool,
}

/// How long the N streams may take to come up before the round fails.
fn startup_timeout(n: usize) -> Duration {
    Duration::from_secs(30 + n as u64)
}

/// A recorder given this long after SIGTERM (closing files) is then killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Figures of one recorder at one stream count.
#[derive(Debug, Clone, Default)]
struct Round {
    streams: usize,
    window_s: f64,
    cpu_s: f64,
    rss_bytes: u64,
    peak_rss_bytes: u64,
    pss_bytes: u64,
    threads: usize,
    /// Source (GStreamer) CPU in the same window, for context.
    gst_cpu_s: f64,
    /// Per stream: frames in the window (Vigil) or frames recorded vs media time (ffmpeg).
    frames: Frames,
    /// Bytes that reached the recorder's files in the window (all streams).
    written_bytes: u64,
    /// Processes that did not exit 0 on SIGTERM, or streams that went offline.
    trouble: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct Frames {
    expected: f64,
    min: u64,
    max: u64,
    /// Streams with fewer than `expected - LOSS_TOLERANCE` frames (or none at all).
    lossy: usize,
    /// Streams counted.
    counted: usize,
}

/// Frames a stream may miss at the window's edges (wall-time mapping, sampling instants).
const LOSS_TOLERANCE: f64 = 2.0;

impl Round {
    fn cpu_s_per_stream_hour(&self) -> f64 {
        self.cpu_s / (self.streams as f64 * self.window_s / 3600.0)
    }
    fn mb_per_stream(&self, bytes: u64) -> f64 {
        bytes as f64 / 1048576.0 / self.streams as f64
    }
    /// Megabits per second written to disk per stream: each side should write about the
    /// camera's bit rate, or it is not recording what the others record.
    fn mbit_s_per_stream(&self) -> f64 {
        self.written_bytes as f64 * 8.0 / 1e6 / self.window_s / self.streams as f64
    }
}

/// The sides of the bench, in the order they run by default.
const SIDES: [&str; 4] = ["ffmpeg", "moonfire", "vigil", "floor"];

/// Total size of the regular files under `dir` (recursively); a file removed while walking
/// counts as empty.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

/// Samples every pid; a process that is gone is an error (a recorder must not die mid-window).
fn sample_all(pids: &[u32]) -> anyhow::Result<Vec<ProcSample>> {
    pids.iter()
        .map(|&p| procstat::sample(p).with_context(|| format!("sampling pid {p}")))
        .collect()
}

/// CPU seconds between two sample sets of the same pids, and whether any figure was imprecise.
fn cpu_sum(before: &[ProcSample], after: &[ProcSample]) -> f64 {
    let mut imprecise = false;
    let sum = before
        .iter()
        .zip(after)
        .map(|(b, a)| {
            let d = procstat::cpu_between(b, a);
            imprecise |= !d.precise;
            d.cpu_s
        })
        .sum();
    if imprecise {
        eprintln!("  (no per-thread runtimes in /proc: CPU from 100 Hz ticks)");
    }
    sum
}

/// Measures the window for the processes `pids` (and GStreamer's `gst_pid` beside them).
struct Window {
    window_s: f64,
    written_bytes: u64,
    w0_us: i64,
    w1_us: i64,
    cpu_s: f64,
    gst_cpu_s: f64,
    before: Vec<ProcSample>,
    after: Vec<ProcSample>,
    mem: Vec<children::MemSample>,
}

fn measure_window(
    pids: &[u32],
    gst_pid: u32,
    out_dir: &Path,
    args: &Args,
) -> anyhow::Result<Window> {
    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    let gst0 = procstat::sample(gst_pid)?;
    let bytes0 = dir_bytes(out_dir);
    let w0_us = now_us();
    let t0 = Instant::now();
    let before = sample_all(pids)?;
    std::thread::sleep(Duration::from_secs_f64(args.window));
    let after = sample_all(pids)?;
    let window_s = t0.elapsed().as_secs_f64();
    let w1_us = now_us();
    let written_bytes = dir_bytes(out_dir).saturating_sub(bytes0);
    let gst1 = procstat::sample(gst_pid)?;
    let mem = pids
        .iter()
        .map(|&p| children::mem_sample(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Window {
        window_s,
        written_bytes,
        w0_us,
        w1_us,
        cpu_s: cpu_sum(&before, &after),
        gst_cpu_s: procstat::cpu_between(&gst0, &gst1).cpu_s,
        before,
        after,
        mem,
    })
}

fn round_from(n: usize, w: &Window) -> Round {
    Round {
        streams: n,
        window_s: w.window_s,
        cpu_s: w.cpu_s,
        rss_bytes: w.after.iter().map(|s| s.rss_bytes).sum(),
        peak_rss_bytes: w.mem.iter().map(|m| m.peak_rss_bytes).sum(),
        pss_bytes: w.mem.iter().map(|m| m.pss_bytes).sum(),
        threads: w.after.iter().map(|s| s.threads.len()).sum(),
        gst_cpu_s: w.gst_cpu_s,
        written_bytes: w.written_bytes,
        ..Round::default()
    }
}

fn vigil_config(dir: &Path, n: usize, url: &str) -> anyhow::Result<PathBuf> {
    // The recorder alone, as `ffmpeg -c copy` is: no web app, no motion detection (which
    // would decode every stream).
    let mut toml = String::from("data_dir = \"data\"\n\n[web]\nlisten = \"off\"\n");
    for i in 0..n {
        write!(
            toml,
            "\n[[camera]]\nname = \"cam{i:03}\"\nurl = \"{url}\"\ntransport = \"tcp\"\n\
             [camera.motion]\nenabled = false\n"
        )?;
    }
    let path = dir.join("vigil.toml");
    std::fs::write(&path, toml)?;
    Ok(path)
}

fn vigil_round(
    vigil: &Path,
    n: usize,
    url: &str,
    gst_pid: u32,
    tmp: &Path,
    args: &Args,
) -> anyhow::Result<Round> {
    let dir = tmp.join(format!("vigil-{n}"));
    std::fs::create_dir_all(&dir)?;
    let config = vigil_config(&dir, n, url)?;
    let mut cmd = Command::new(vigil);
    cmd.arg("serve").arg("--config").arg(&config);
    let (mut guard, lines) = ChildGuard::spawn_with_lines(cmd, &dir.join("vigil.log"), STOP_GRACE)?;
    // Up when every stream has printed `recording camNNN/main`.
    let deadline = Instant::now() + startup_timeout(n);
    let mut up = std::collections::BTreeSet::new();
    while up.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(s) = line.strip_prefix("recording ") {
                    up.insert(s.to_string());
                }
            }
            Err(_) => bail!(
                "vigil serve: only {}/{n} streams recording after {:?}; see {}",
                up.len(),
                startup_timeout(n),
                dir.join("vigil.log").display()
            ),
        }
    }
    let w = measure_window(&[guard.pid()], gst_pid, &dir.join("data"), args)?;
    let mut round = round_from(n, &w);
    if let (Some(b), Some(a)) = (w.before.first(), w.after.first()) {
        print_thread_groups(guard.pid(), b, a, w.window_s);
    }
    // State changes during the window (reconnects would hide frame loss behind gaps).
    round
        .trouble
        .extend(lines.try_iter().filter(|l| l.starts_with("offline ")));
    let t_stop = Instant::now();
    let status = children::stop_all(std::slice::from_mut(&mut guard));
    eprintln!(
        "  vigil stopped in {:.1} s: {:?}",
        t_stop.elapsed().as_secs_f64(),
        status.first().copied().flatten()
    );
    match status.first().copied().flatten() {
        Some(s) if s.success() => {}
        other => round.trouble.push(format!("vigil exit: {other:?}")),
    }
    drop(guard);
    let frames = recindex::frames_per_stream(&dir.join("data/index.sqlite3"), w.w0_us, w.w1_us)?;
    let expected = args.fps * (w.w1_us - w.w0_us) as f64 / 1e6;
    let counts: Vec<u64> = (0..n)
        .map(|i| {
            frames
                .get(&format!("cam{i:03}/main"))
                .map_or(0, |f| f.in_window)
        })
        .collect();
    round.frames = frames_summary(&counts, expected);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(round)
}

/// Vigil's CPU in the window by kind of thread. Thread names with their numbers stripped form
/// the groups; `vigil serve` names its tokio workers and blocking-pool writers `vigil-rec`, and
/// recorders from before the shared writer pool had one `rec-CAM/STREAM` thread per stream.
fn print_thread_groups(pid: u32, before: &ProcSample, after: &ProcSample, window_s: f64) {
    let names = children::thread_names(pid);
    let mut groups: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for (tid, t) in &after.threads {
        let name = names.get(tid).map_or("?", String::as_str);
        let key = if name.starts_with("rec-") {
            "rec-* (writers)".to_string()
        } else {
            name.trim_end_matches(|c: char| c.is_ascii_digit())
                .to_string()
        };
        let g = groups.entry(key).or_default();
        g.0 += 1;
        g.1 += t - before.threads.get(tid).copied().unwrap_or(0.0);
    }
    let text: Vec<String> = groups
        .iter()
        .map(|(k, (count, cpu))| format!("{k} x{count}: {:.2}%", cpu / window_s * 100.0))
        .collect();
    eprintln!("  vigil CPU by thread: {}", text.join(", "));
}

fn frames_summary(counts: &[u64], expected: f64) -> Frames {
    Frames {
        expected,
        min: counts.iter().copied().min().unwrap_or(0),
        max: counts.iter().copied().max().unwrap_or(0),
        lossy: counts
            .iter()
            .filter(|&&c| (c as f64) < expected - LOSS_TOLERANCE)
            .count(),
        counted: counts.len(),
    }
}

/// Frames and media duration of the MP4 files ffmpeg wrote into `dir` (ffprobe, no decoding).
fn ffmpeg_output_frames(dir: &Path) -> anyhow::Result<(u64, f64)> {
    let (mut frames, mut secs) = (0u64, 0.0f64);
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if path.extension().is_none_or(|x| x != "mp4") {
            continue;
        }
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_packets", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=nb_read_packets,duration"])
            .args(["-of", "default=noprint_wrappers=1"])
            .arg(&path)
            .output()
            .context("running ffprobe")?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(v) = line.strip_prefix("nb_read_packets=") {
                frames += v.trim().parse::<u64>().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("duration=") {
                secs += v.trim().parse::<f64>().unwrap_or(0.0);
            }
        }
    }
    Ok((frames, secs))
}

fn ffmpeg_round(
    n: usize,
    url: &str,
    gst_pid: u32,
    tmp: &Path,
    args: &Args,
) -> anyhow::Result<Round> {
    let dir = tmp.join(format!("ffmpeg-{n}"));
    let mut guards = Vec::with_capacity(n);
    let mut outs = Vec::with_capacity(n);
    for i in 0..n {
        let out = dir.join(format!("cam{i:03}"));
        std::fs::create_dir_all(&out)?;
        let mut cmd = Command::new("ffmpeg");
        // Frigate's record command, minus its audio and timestamp options we have no use for.
        cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            .args(["-rtsp_transport", "tcp", "-i", url, "-c", "copy"])
            .args([
                "-f",
                "segment",
                "-segment_time",
                "60",
                "-reset_timestamps",
                "1",
            ])
            .args(["-strftime", "1"])
            .arg(out.join("%Y%m%d%H%M%S.mp4"));
        guards.push(ChildGuard::spawn(cmd, &out.join("ffmpeg.log"), STOP_GRACE)?);
        outs.push(out);
    }
    // Up when every process has an output file with bytes in it.
    let deadline = Instant::now() + startup_timeout(n);
    loop {
        let up = outs.iter().filter(|o| has_mp4_data(o)).count();
        if up == n {
            break;
        }
        if let Some(i) = guards.iter_mut().position(|g| g.exited().is_some()) {
            bail!(
                "ffmpeg #{i} exited early; see {}",
                outs[i].join("ffmpeg.log").display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "only {up}/{n} ffmpeg processes writing after {:?}",
                startup_timeout(n)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let t_start = Instant::now();
    let pids: Vec<u32> = guards.iter().map(|g| g.pid()).collect();
    let w = measure_window(&pids, gst_pid, &dir, args)?;
    let mut round = round_from(n, &w);
    let statuses = children::stop_all(&mut guards);
    let recorded_s = t_start.elapsed().as_secs_f64();
    for (i, s) in statuses.iter().enumerate() {
        // ffmpeg exits 255 on SIGTERM after writing its trailer; only a SIGKILL is trouble.
        if s.is_none() {
            round.trouble.push(format!("ffmpeg #{i} had to be killed"));
        }
    }
    drop(guards);
    // ffmpeg's files carry no wall clock; compare packets with the files' media duration (RTP
    // time), which a lost frame does not shorten.
    let probed = outs
        .iter()
        .map(|o| ffmpeg_output_frames(o))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let counts: Vec<u64> = probed.iter().map(|p| p.0).collect();
    let min_ratio = probed
        .iter()
        .filter(|p| p.1 > 0.0)
        .map(|&(frames, secs)| frames as f64 / (secs * args.fps))
        .fold(f64::INFINITY, f64::min);
    // Expected: the mean media duration of a stream's files, in frames.
    let mean_secs = probed.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let mut f = frames_summary(&counts, mean_secs * args.fps);
    f.lossy = probed
        .iter()
        .filter(|&&(frames, secs)| {
            frames == 0 || (frames as f64) < secs * args.fps - LOSS_TOLERANCE
        })
        .count();
    eprintln!(
        "  ffmpeg: frames per stream {}..{} over ~{recorded_s:.1} s; lowest frames/(duration x fps) {min_ratio:.4}",
        f.min, f.max
    );
    round.frames = f;
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(round)
}

fn has_mp4_data(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(Result::ok).any(|e| {
            e.path().extension().is_some_and(|x| x == "mp4")
                && e.metadata().is_ok_and(|m| m.len() > 0)
        })
    })
}

/// A free TCP port on 127.0.0.1 (bound and released; Moonfire needs a number in its config).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Sample files in Moonfire's sample directory that hold bytes (its `meta` file aside).
fn moonfire_files_with_data(sample: &Path) -> usize {
    std::fs::read_dir(sample).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .filter(|e| e.file_name() != "meta" && e.metadata().is_ok_and(|m| m.len() > 0))
            .count()
    })
}

/// Lines of Moonfire's log at WARN or ERROR level, but the expected missing-UI warning.
fn moonfire_warnings(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| (l.contains(" WARN ") || l.contains(" ERROR ")) && !l.contains("ui dir"))
        .map(|l| l.chars().take(160).collect())
        .collect()
}

fn moonfire_round(
    bin: &Path,
    n: usize,
    url: &str,
    gst_pid: u32,
    tmp: &Path,
    args: &Args,
) -> anyhow::Result<Round> {
    let base = tmp.join(format!("moonfire-{n}"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("moonfire/setup-moonfire-db.sh");
    // `%.0s` takes the camera number and prints nothing: every camera plays the same mount.
    let template = format!("{url}%.0s");
    let out = Command::new("bash")
        .arg(&script)
        .arg(bin)
        .arg(&base)
        .arg(n.to_string())
        .arg(&template)
        .arg((4u64 << 30).to_string())
        .arg(free_port()?.to_string())
        .arg(args.moonfire_flush.to_string())
        .output()
        .context("running setup-moonfire-db.sh")?;
    if !out.status.success() {
        bail!(
            "setup-moonfire-db.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let log = base.join("moonfire.log");
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg("--config")
        .arg(base.join("moonfire.toml"))
        .env("TZ", "UTC")
        .env("MOONFIRE_LOG", "info");
    let mut guard = ChildGuard::spawn(cmd, &log, STOP_GRACE)?;
    let sample = base.join("sample");
    let deadline = Instant::now() + startup_timeout(n);
    loop {
        let up = moonfire_files_with_data(&sample);
        if up >= n {
            break;
        }
        if guard.exited().is_some() {
            bail!("moonfire-nvr exited early; see {}", log.display());
        }
        if Instant::now() > deadline {
            bail!(
                "moonfire-nvr: only {up}/{n} streams writing after {:?}; see {}",
                startup_timeout(n),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let w = measure_window(&[guard.pid()], gst_pid, &sample, args)?;
    let mut round = round_from(n, &w);
    let status = children::stop_all(std::slice::from_mut(&mut guard));
    match status.first().copied().flatten() {
        Some(s) if s.success() => {}
        other => round.trouble.push(format!("moonfire exit: {other:?}")),
    }
    drop(guard);
    let warnings = moonfire_warnings(&log);
    if let Some(first) = warnings.first() {
        round
            .trouble
            .push(format!("{} warnings, first: {first}", warnings.len()));
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&base);
    }
    Ok(round)
}

fn floor_round(
    n: usize,
    url: &str,
    gst_pid: u32,
    tmp: &Path,
    args: &Args,
) -> anyhow::Result<Round> {
    let dir = tmp.join(format!("floor-{n}"));
    std::fs::create_dir_all(&dir)?;
    let bin = std::env::current_exe()?.with_file_name("record_floor");
    let mut cmd = Command::new(&bin);
    cmd.args(["--url", url, "--streams", &n.to_string()])
        .args(["--batch-ms", &args.floor_batch_ms.to_string(), "--dir"])
        .arg(dir.join("out"));
    let (mut guard, lines) = ChildGuard::spawn_with_lines(cmd, &dir.join("floor.log"), STOP_GRACE)
        .with_context(|| {
            format!(
                "starting {} (cargo build --release -p vigil-bench)",
                bin.display()
            )
        })?;
    let up = lines.recv_timeout(startup_timeout(n)).with_context(|| {
        format!(
            "record_floor did not come up; see {}",
            dir.join("floor.log").display()
        )
    })?;
    if up.trim() != format!("up {n}") {
        bail!("record_floor printed {up:?}");
    }
    let w = measure_window(&[guard.pid()], gst_pid, &dir.join("out"), args)?;
    let mut round = round_from(n, &w);
    if guard.exited().is_some() {
        round.trouble.push("record_floor died".into());
    }
    children::stop_all(std::slice::from_mut(&mut guard));
    drop(guard);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(round)
}

fn report_round(side: &str, r: &Round) {
    eprintln!(
        "  {side} N={}: CPU {:.3} s in {:.1} s ({:.1}% of a core, {:.1} s per stream-hour), RSS {:.1} MB \
         (peak {:.1}, PSS {:.1}), {} threads, {:.2} Mbit/s per stream to disk, GStreamer {:.1}% CPU; frames per stream {}..{} (expected {:.0}), {} lossy{}",
        r.streams,
        r.cpu_s,
        r.window_s,
        r.cpu_s / r.window_s * 100.0,
        r.cpu_s_per_stream_hour(),
        r.rss_bytes as f64 / 1048576.0,
        r.peak_rss_bytes as f64 / 1048576.0,
        r.pss_bytes as f64 / 1048576.0,
        r.threads,
        r.mbit_s_per_stream(),
        r.gst_cpu_s / r.window_s * 100.0,
        r.frames.min,
        r.frames.max,
        r.frames.expected,
        r.frames.lossy,
        if r.trouble.is_empty() {
            String::new()
        } else {
            format!("; trouble: {}", r.trouble.join(", "))
        }
    );
}

/// `a / b` as `N.Nx`, or `-` when either side did not run.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

type Rows = BTreeMap<usize, BTreeMap<&'static str, Round>>;

fn print_table(file: &Path, args: &Args, rows: &Rows) {
    println!();
    println!(
        "record: N streams of {} (one GStreamer RTSP server, shared media from a live appsrc, RTSP/TCP on 127.0.0.1)",
        file.display()
    );
    println!(
        "window {:.0} s after {:.0} s warm-up; CPU = scheduler runtime of all threads; MB = RSS / N at the window's end; Mbit/s = bytes on disk per stream",
        args.window, args.warmup
    );
    let cell = |r: Option<&Round>| match r {
        Some(r) => format!(
            "{:>7.2} {:>6.2} {:>5.2}",
            r.cpu_s_per_stream_hour(),
            r.mb_per_stream(r.rss_bytes),
            r.mbit_s_per_stream()
        ),
        None => format!("{:>7} {:>6} {:>5}", "-", "-", "-"),
    };
    println!(
        "{:>3} | {:^20} | {:^20} | {:^20} | {:^20} | {:>6} | {:>9} | {:>8} | {:>8} | {:>8}",
        "N",
        "vigil s/h MB Mb/s",
        "moonfire s/h MB Mb/s",
        "ffmpeg s/h MB Mb/s",
        "floor s/h MB Mb/s",
        "thr",
        "lost",
        "moon/vig",
        "ffm/vig",
        "vig/floor"
    );
    for (n, sides) in rows {
        let v = sides.get("vigil");
        let cpu = |side: &str| sides.get(side).map(Round::cpu_s_per_stream_hour);
        let lost = match (v, sides.get("ffmpeg")) {
            (Some(v), f) => format!(
                "{}/{}{}",
                v.frames.lossy,
                v.frames.counted,
                f.map_or(String::new(), |f| format!(" f{}", f.frames.lossy))
            ),
            (None, Some(f)) => format!("f{}/{}", f.frames.lossy, f.frames.counted),
            (None, None) => "-".into(),
        };
        println!(
            "{n:>3} | {} | {} | {} | {} | {:>6} | {:>9} | {:>8} | {:>8} | {:>8}",
            cell(v),
            cell(sides.get("moonfire")),
            cell(sides.get("ffmpeg")),
            cell(sides.get("floor")),
            v.map_or("-".into(), |r| r.threads.to_string()),
            lost,
            ratio(cpu("moonfire"), cpu("vigil")),
            ratio(cpu("ffmpeg"), cpu("vigil")),
            ratio(cpu("vigil"), cpu("floor")),
        );
    }
    println!("(s/h = CPU seconds per stream-hour; MB = RSS per stream; thr = vigil's threads; lost = vigil's streams short of fps x window by > {LOSS_TOLERANCE} frames / streams, f = ffmpeg's)");
    let base_rss = rows
        .get(&1)
        .and_then(|s| s.get("vigil"))
        .map(|r| r.rss_bytes);
    if let Some(base) = base_rss {
        for (n, sides) in rows {
            if let Some(r) = sides.get("vigil").filter(|r| r.streams > 1) {
                println!(
                    "vigil marginal memory N=1 -> {n}: {:.2} MB per added stream",
                    (r.rss_bytes as f64 - base as f64) / 1048576.0 / (r.streams - 1) as f64
                );
            }
        }
    }
    println!("goals (issue 18): moon/vig >= 2x and ffm/vig >= 5x at N = 16 and 64, ffm/vig >= 2x at N = 1, vig/floor <= 1.5x, vigil MB <= moonfire MB, no frame lost at N = 64");
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.streams.iter().any(|&n| n == 0 || n > 128) {
        bail!("--streams must be between 1 and 128");
    }
    if !(args.window > 0.0 && args.window <= 600.0 && args.warmup >= 0.0 && args.warmup <= 60.0) {
        bail!("--window must be in (0, 600] s and --warmup in [0, 60] s");
    }
    let mut sides: Vec<&'static str> = Vec::new();
    for s in &args.sides {
        match SIDES.iter().find(|&&k| k == s) {
            Some(k) => sides.push(k),
            None => bail!("unknown side {s:?}: the sides are {}", SIDES.join(", ")),
        }
    }
    let moonfire = match (&args.moonfire, sides.contains(&"moonfire")) {
        (Some(p), true) => Some(p.clone()),
        (None, true) => bail!(
            "the moonfire side needs --moonfire PATH (build it: crates/bench/moonfire/README.md), \
             or leave it out with --sides"
        ),
        (_, false) => None,
    };
    let tmp = tempfile::Builder::new()
        .prefix("vigil-record-bench")
        .tempdir()?;
    let file = match &args.file {
        Some(f) => f.clone(),
        None => servers::make_test_file(tmp.path(), "record-720p30-4M.mp4")?,
    };
    let vigil = if sides.contains(&"vigil") {
        Some(servers::vigil_binary(args.vigil.clone())?)
    } else {
        None
    };
    let gst = servers::spawn_gst_file(
        &args.python,
        args.gst_script.as_deref(),
        &file,
        &[],
        &tmp.path().join("gst.log"),
    )?;
    let url = gst.main_url();
    eprintln!("gst: pid {}, serving {url}", gst.pid());

    let mut rows: Rows = BTreeMap::new();
    for &n in &args.streams {
        for &side in &sides {
            let r = match side {
                "vigil" => vigil
                    .as_deref()
                    .map(|v| vigil_round(v, n, &url, gst.pid(), tmp.path(), &args)),
                "ffmpeg" => Some(ffmpeg_round(n, &url, gst.pid(), tmp.path(), &args)),
                "moonfire" => moonfire
                    .as_deref()
                    .map(|m| moonfire_round(m, n, &url, gst.pid(), tmp.path(), &args)),
                _ => Some(floor_round(n, &url, gst.pid(), tmp.path(), &args)),
            };
            let Some(r) = r else { continue };
            let r = r.with_context(|| format!("{side} at N = {n}"))?;
            report_round(side, &r);
            rows.entry(n).or_default().insert(side, r);
            // Let GStreamer drop the sessions before the next recorder connects.
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    print_table(&file, &args, &rows);
    drop(gst);
    if args.keep {
        eprintln!("kept {}", tmp.keep().display());
    }
    Ok(())
}
