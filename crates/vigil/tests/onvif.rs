//! ONVIF end to end (issue 15): independent clients from PyPI against one running
//! `vigil camera` on 127.0.0.1.
//!
//! WSDiscovery finds the camera with a unicast Probe; onvif-zeep authenticates with
//! WS-UsernameToken (the credential `vigil user onvif` made), reads the device information,
//! scopes and profiles, and gets the stream and snapshot URIs; ffprobe plays the stream URI it
//! got; the snapshot URI serves a JPEG. A wrong password gets the NotAuthorized fault, a
//! replayed UsernameToken is refused, and XML bombs posted over HTTP get a fault fast with the
//! camera's memory bounded; `vigil discover` lists the camera. One camera for all of it (CI
//! time). And WS-Discovery over a real multicast link (two network namespaces, root): Hello,
//! a multicast Probe from `vigil discover`, Bye.
//!
//! The recorder side: `vigil serve`'s API discovers a `vigil camera` (unicast Probe), reads
//! its profiles over ONVIF with the ONVIF user's credential, adds it and records it; a wrong
//! password is a 422 naming NotAuthorized.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ffprobe_streams, run_peer, vigil_bin, Camera, CameraOpts, PASSWORD, USER};

/// Installs onvif-zeep and WSDiscovery if missing, as scripts/test.sh does.
fn ensure_clients() {
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    if ok(Command::new("python3").args(["-c", "import onvif, wsdiscovery"])) {
        return;
    }
    let pip = ["-m", "pip", "install", "-q", "onvif-zeep", "WSDiscovery"];
    if !ok(Command::new("python3").args(pip)) {
        assert!(
            ok(Command::new("python3")
                .args(pip)
                .arg("--break-system-packages")),
            "cannot install onvif-zeep and WSDiscovery from PyPI"
        );
    }
}

/// `vigil user onvif USER`: the credential it shows (its last line).
fn onvif_credential(cam: &Camera) -> String {
    let out = run_peer(
        Command::new(vigil_bin())
            .args(["user", "onvif", USER, "--data"])
            .arg(cam.data.path()),
        Duration::from_secs(30),
    );
    assert!(out.success(), "vigil user onvif: {}", out.stderr);
    let text = String::from_utf8(out.stdout).unwrap();
    let cred = text.lines().last().unwrap().trim().to_owned();
    assert_eq!(cred.len(), 32, "{text}");
    cred
}

/// One POST over a fresh connection (`Connection: close`): status line and whole response.
fn post(addr: SocketAddr, path: &str, extra: &str, body: &[u8]) -> (u16, String, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/soap+xml\r\n\
         Connection: close\r\n{extra}\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text, elapsed)
}

/// The camera's peak resident set (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn envelope(body: &str) -> String {
    format!(
        "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" \
         xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\"><s:Body>{body}</s:Body></s:Envelope>"
    )
}

#[test]
fn onvif_client_discovers_authenticates_and_plays() {
    ensure_clients();
    let cam = Camera::start(CameraOpts {
        onvif: true,
        https: true,
        ..CameraOpts::default()
    });
    let onvif = cam.onvif.unwrap();
    let discovery = cam.discovery.unwrap();
    let cred = onvif_credential(&cam);

    // --- the Python peers ---------------------------------------------------------------
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/onvif_client.py");
    let out = run_peer(
        Command::new("python3").args([script, &discovery.to_string(), USER, &cred, PASSWORD]),
        Duration::from_secs(90),
    );
    assert!(
        out.success(),
        "onvif_client.py failed after {:?}: {}\nstdout: {}",
        out.elapsed,
        out.stderr,
        String::from_utf8_lossy(&out.stdout)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("onvif_client.py in {:?}: {r}", out.elapsed);
    let probe = &r["probe"];
    assert_eq!(
        probe["action"],
        "http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches"
    );
    assert_eq!(probe["relates"], true);
    assert!(probe["epr"].as_str().unwrap().starts_with("urn:uuid:"));
    assert!(probe["types"]
        .as_array()
        .unwrap()
        .contains(&"http://www.onvif.org/ver10/network/wsdl:NetworkVideoTransmitter".into()));
    assert_eq!(
        probe["xaddrs"][0],
        format!("http://{onvif}/onvif/device_service")
    );
    assert_eq!(r["printer_probe_answered"], false);
    assert_eq!(r["device"]["manufacturer"], "Vigil");
    assert_eq!(r["device"]["firmware"], env!("CARGO_PKG_VERSION"));
    assert!(r["scopes"]
        .as_array()
        .unwrap()
        .contains(&"onvif://www.onvif.org/Profile/Streaming".into()));
    let profiles = r["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 2);
    assert_eq!(profiles[0]["token"], "main");
    assert_eq!(profiles[0]["width"], 320);
    assert_eq!(profiles[1]["width"], 160);
    assert_eq!(profiles[0]["encoding"], "H264");
    let stream_uri = r["stream_uri"].as_str().unwrap();
    assert_eq!(stream_uri, format!("rtsp://{}/main", cam.rtsp));
    assert_eq!(
        r["snapshot_uri"],
        format!("https://{}/snapshot.jpg?stream=main", cam.https.unwrap())
    );
    assert_eq!(r["snapshot"]["status"], 200);
    assert_eq!(r["snapshot"]["jpeg"], true);
    assert_eq!(r["http_digest"]["status"], 200);
    assert_eq!(r["http_digest"]["model"], true);
    assert_eq!(r["wrong_password"]["code"], "env:Sender");
    assert_eq!(
        r["wrong_password"]["subcodes"][0],
        "{http://www.onvif.org/ver10/error}NotAuthorized"
    );
    assert_eq!(r["replay"]["status"], 400);
    assert_eq!(r["replay"]["not_authorized"], true);

    // --- vigil discover (the recorder side) finds the camera -----------------------------
    let out = run_peer(
        Command::new(vigil_bin()).args([
            "discover",
            "--to",
            &discovery.to_string(),
            "--timeout",
            "1",
        ]),
        Duration::from_secs(20),
    );
    assert!(out.success(), "vigil discover: {}", out.stderr);
    let listed = String::from_utf8(out.stdout).unwrap();
    let line = listed.lines().next().unwrap_or_default();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields[0], probe["epr"], "{line}");
    assert_eq!(fields[1], format!("http://{onvif}/onvif/device_service"));
    assert!(
        fields[2].contains("onvif://www.onvif.org/hardware/vigil"),
        "{line}"
    );

    // --- ffprobe plays the URI the ONVIF client got (with the camera user's password) ----
    let url = stream_uri.replacen("rtsp://", &format!("rtsp://{USER}:{PASSWORD}@"), 1);
    let out = run_peer(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_streams",
            "-of",
            "json",
            &url,
        ]),
        Duration::from_secs(25),
    );
    assert!(out.success(), "ffprobe {url}: {}", out.stderr);
    let streams = ffprobe_streams(&out.stdout);
    assert_eq!(streams[0]["codec_name"], "h264", "{streams:?}");
    assert_eq!(streams[0]["width"], 320);
    println!("ffprobe on the ONVIF stream URI: {:?}", out.elapsed);

    // --- HTTP without credentials: 401 with Digest challenges and the fault -------------
    let (status, text, _) = post(
        onvif,
        "/onvif/device_service",
        &format!(
            "Content-Length: {}\r\n",
            envelope("<tds:GetDeviceInformation/>").len()
        ),
        envelope("<tds:GetDeviceInformation/>").as_bytes(),
    );
    assert_eq!(status, 401, "{text}");
    assert!(
        text.contains("www-authenticate: Digest realm=\"vigil\""),
        "{text}"
    );
    assert!(text.contains("ter:NotAuthorized"), "{text}");
    let (status, text, _) = post(onvif, "/etc/passwd", "Content-Length: 0\r\n", b"");
    assert_eq!(status, 401, "401 before 404: {text}");

    // --- XML bombs over HTTP: a fault, fast, memory bounded ------------------------------
    let rss_before = peak_rss_kib(cam.pid());
    let laughs = {
        let mut d = String::from("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">");
        d.push_str("<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">");
        for i in 2..=9 {
            let p = i - 1;
            d.push_str(&format!(
                "<!ENTITY lol{i} \"{}\">",
                format!("&lol{p};").repeat(10)
            ));
        }
        d.push_str("]>");
        d + &envelope("<tds:GetDeviceInformation>&lol9;</tds:GetDeviceInformation>")
    };
    let xxe = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE s [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>{}",
        envelope("<tds:GetDeviceInformation>&xxe;</tds:GetDeviceInformation>")
    );
    let deep = |n: usize| envelope(&format!("{}{}", "<a>".repeat(n), "</a>".repeat(n)));
    let many = envelope(&"<a/>".repeat(5000));
    let cases: Vec<(&str, String, Option<u64>, &str, u16)> = vec![
        ("billion laughs", laughs, None, "ter:WellFormed", 400),
        ("external entity", xxe, None, "ter:WellFormed", 400),
        (
            "deep nesting 100 000",
            deep(100_000),
            None,
            "ter:OutofMemory",
            500,
        ),
        (
            "deep nesting 1 000 (8 KB)",
            deep(1_000),
            None,
            "ter:OutofMemory",
            500,
        ),
        ("5 000 siblings (20 KB)", many, None, "ter:OutofMemory", 500),
        // Announced, never sent: refused on Content-Length before a byte of it is read.
        (
            "10 MB body",
            String::new(),
            Some(10_000_000),
            "ter:OutofMemory",
            500,
        ),
    ];
    for (name, body, announce, fault, want) in cases {
        let len = announce.unwrap_or(body.len() as u64);
        let send = if len > 64 * 1024 {
            // The server answers without reading an oversized body; sending it would only
            // make the kernel reset the connection over unread data.
            &b""[..]
        } else {
            body.as_bytes()
        };
        let (status, text, elapsed) = post(
            onvif,
            "/onvif/device_service",
            &format!("Content-Length: {len}\r\n"),
            send,
        );
        println!("{name} ({len} bytes): HTTP {status} in {elapsed:?}");
        assert_eq!(status, want, "{name}: {text}");
        assert!(text.contains(fault), "{name}: {text}");
        assert!(elapsed < Duration::from_secs(2), "{name} took {elapsed:?}");
    }
    let rss_after = peak_rss_kib(cam.pid());
    println!(
        "camera peak RSS {} KiB before the bombs, {} KiB after",
        rss_before, rss_after
    );
    assert!(
        rss_after < rss_before + 16 * 1024,
        "peak RSS grew from {rss_before} to {rss_after} KiB"
    );
}

/// The recorder's side of ONVIF, through `vigil serve`'s web API: `POST /api/discover`
/// finds the camera, `POST /api/onvif/device` reads its identity and streams (a wrong
/// password: 422 naming NotAuthorized), `POST /api/cameras` adds it with its ONVIF record,
/// `/api/system` flags its firmware against a minimum, and a recording appears.
#[test]
fn recorder_discovers_adds_and_records_a_vigil_camera() {
    use common::browser::Api;
    use common::recorder::{now_us, vigil_serve};
    use serde_json::json;

    let cam = Camera::start(CameraOpts {
        onvif: true,
        ..CameraOpts::default()
    });
    let onvif = cam.onvif.unwrap();
    let discovery = cam.discovery.unwrap();
    let cred = onvif_credential(&cam);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[web]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut serve = vigil_serve(&config);
    let (https, _) = serve.wait_line("listening https ", 0, Duration::from_secs(30));
    let (fp, _) = serve.wait_line("tls-fingerprint sha256 ", 0, Duration::from_secs(5));
    let (setup, _) = serve.wait_line("setup-url ", 0, Duration::from_secs(5));
    let https: SocketAddr = https
        .trim_start_matches("listening https ")
        .trim()
        .parse()
        .unwrap();
    let fp = fp.trim_start_matches("tls-fingerprint sha256 ").trim();
    let token = setup.split_once("#/setup/").unwrap().1.trim().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut api = Api::https(https, fp);
    rt.block_on(api.setup(&token, "owner", "correct horse battery staple"));
    let call = |method: &str, path: &str, body: Option<serde_json::Value>| {
        rt.block_on(api.request(method, path, body.as_ref()))
    };

    // --- discover ----------------------------------------------------------------------
    let xaddr = format!("http://{onvif}/onvif/device_service");
    let discover = || {
        let r = call(
            "POST",
            "/api/discover",
            Some(json!({"to": discovery.to_string(), "timeout_s": 2.0})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let found = r.json();
        println!("discovered: {found}");
        found
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["xaddrs"][0] == xaddr.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("camera not discovered: {found}"))
    };
    let dev = discover();
    assert_eq!(dev["address"], "127.0.0.1");
    assert!(dev["endpoint"].as_str().unwrap().starts_with("urn:uuid:"));
    assert!(dev["added_as"].is_null(), "{dev}");

    // --- wrong password: a clear 4xx naming the fault, never echoing the password --------
    let wrong = "not-the-credential-1234";
    let r = call(
        "POST",
        "/api/onvif/device",
        Some(json!({"xaddr": xaddr, "username": USER, "password": wrong})),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("NotAuthorized"), "{}", r.text());
    assert!(!r.text().contains(wrong));

    // --- read the device ---------------------------------------------------------------
    let r = call(
        "POST",
        "/api/onvif/device",
        Some(json!({"xaddr": xaddr, "username": USER, "password": cred})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let d = r.json();
    println!("device: {d}");
    assert!(!r.text().contains(&cred));
    assert_eq!(d["manufacturer"], "Vigil");
    assert_eq!(d["firmware"], env!("CARGO_PKG_VERSION"));
    assert_eq!(d["profiles"].as_array().unwrap().len(), 2);
    let url = d["url"].as_str().unwrap().to_owned();
    let sub_url = d["sub_url"].as_str().unwrap().to_owned();
    assert_eq!(url, cam.bare_url("main"));
    assert_eq!(sub_url, cam.bare_url("sub"));

    // --- add it, as the pre-filled form does (the RTSP login is the camera user's) --------
    let r = call(
        "POST",
        "/api/cameras",
        Some(json!({
            "name": "onvifcam", "url": url, "sub_url": sub_url,
            "username": USER, "password": PASSWORD,
            "onvif": {"xaddr": xaddr, "model": d["model"], "firmware": d["firmware"],
                      "min_firmware": "999.1"},
        })),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["onvif"]["xaddr"], xaddr.as_str());
    assert!(!r.text().contains(PASSWORD));
    let sys = call("GET", "/api/system", None).json();
    let row = &sys["onvif"][0];
    assert_eq!(row["camera"], "onvifcam");
    assert_eq!(row["firmware"], env!("CARGO_PKG_VERSION"));
    assert_eq!(row["outdated"], true, "{sys}");
    assert_eq!(discover()["added_as"], "onvifcam");

    // --- it records ----------------------------------------------------------------------
    let t0 = now_us();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = call(
            "GET",
            &format!(
                "/api/cameras/onvifcam/recordings?start_us={}&end_us={}",
                t0 - 60_000_000,
                now_us() + 1_000_000
            ),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        if v["ranges"].as_array().is_some_and(|a| !a.is_empty()) {
            println!("recorded: {v}");
            break;
        }
        assert!(Instant::now() < deadline, "nothing recorded: {v}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let r = call("DELETE", "/api/cameras/onvifcam", None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(call("GET", "/api/system", None).json()["onvif"]
        .as_array()
        .unwrap()
        .is_empty());
    serve.stop_gracefully(Duration::from_secs(10));
}

/// WS-Discovery over a real multicast link, which loopback cannot give: two network
/// namespaces joined by a veth pair (198.18.7.1/24 and 198.18.7.2/24, root, deleted
/// afterwards). The camera listens on the wildcard address (joining 239.255.255.250) and
/// multicasts Hello at start and Bye at stop; in the other namespace a listener joined to the
/// group hears both, and `vigil discover` (a multicast Probe, no `--to`) finds the camera,
/// whose ProbeMatches waits SOAP-over-UDP's random delay.
#[test]
fn multicast_discovery_hello_probe_and_bye_across_a_link() {
    let uid = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test builds network namespaces (ip netns): run it as root, as CI does"
    );
    struct Link(String);
    impl Drop for Link {
        fn drop(&mut self) {
            for part in ["c", "v"] {
                let _ = Command::new("ip")
                    .args(["netns", "del", &format!("{}{part}", self.0)])
                    .status();
            }
        }
    }
    let link = Link(format!("vd{}", std::process::id() % 100_000));
    let (cam_ns, view_ns) = (format!("{}c", link.0), format!("{}v", link.0));
    let setup = r#"
set -eu
C=$1; V=$2
ip netns add $C; ip netns add $V
ip -n $C link set lo up; ip -n $V link set lo up
ip link add c0 netns $C type veth peer name v0 netns $V
ip -n $C addr add 198.18.7.1/24 dev c0; ip -n $C link set c0 up
ip -n $V addr add 198.18.7.2/24 dev v0; ip -n $V link set v0 up
# Multicast leaves through the link (no default route in either namespace).
ip -n $C route add 224.0.0.0/4 dev c0
ip -n $V route add 224.0.0.0/4 dev v0
"#;
    let out = Command::new("bash")
        .args(["-c", setup, "setup", &cam_ns, &view_ns])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building the namespaces failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let in_ns = |ns: &str, program: &str| {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    };

    // A listener joined to the group on the viewer's side: one line per Hello or Bye.
    let listen = r#"
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 3702))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton("198.18.7.2")))
print("ready", flush=True)
s.settimeout(1.0)
end = time.time() + 60
while time.time() < end:
    try:
        data, peer = s.recvfrom(65536)
    except socket.timeout:
        continue
    text = data.decode("utf-8", "replace")
    for kind in ("Hello", "Bye"):
        if "/discovery/" + kind + "<" in text:
            xaddr = text.split("XAddrs>")[1].split("<")[0] if "XAddrs>" in text else "-"
            print(kind, peer[0], xaddr, flush=True)
"#;
    let mut listener = common::recorder::Proc::spawn(
        "multicast listener",
        in_ns(&view_ns, "python3").args(["-c", listen]),
    );
    listener.wait_line("ready", 0, Duration::from_secs(20));

    let dir = tempfile::tempdir().unwrap();
    common::add_user(dir.path(), USER, PASSWORD);
    let mut cam = common::recorder::Proc::spawn(
        "vigil camera",
        in_ns(&cam_ns, vigil_bin())
            .args(["camera", "--source", "testsrc", "--data"])
            .arg(dir.path())
            .args(["--rtsp", "127.0.0.1:0", "--rtsps", "off", "--http", "off"])
            .args(["--onvif", "198.18.7.1:8000", "--discovery", "0.0.0.0:3702"])
            .args(["--sub-size", "off", "--size", "320x180", "--fps", "5"])
            .env("RUST_LOG", "info"),
    );
    cam.wait_line("listening ws-discovery ", 0, Duration::from_secs(30));
    let (hello, _) = listener.wait_line("Hello ", 0, Duration::from_secs(10));
    assert!(
        hello.contains("198.18.7.1 http://198.18.7.1:8000/onvif/device_service"),
        "{hello}"
    );

    // `vigil discover` with a multicast Probe (no --to) from the other side of the link.
    let started = Instant::now();
    let out = run_peer(
        in_ns(&view_ns, vigil_bin()).args(["discover", "--timeout", "2"]),
        Duration::from_secs(30),
    );
    assert!(out.success(), "vigil discover: {}", out.stderr);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("http://198.18.7.1:8000/onvif/device_service"),
        "multicast discover found nothing ({:?}): {text} {}",
        started.elapsed(),
        out.stderr
    );

    cam.stop_gracefully(Duration::from_secs(20));
    let (bye, _) = listener.wait_line("Bye ", 0, Duration::from_secs(10));
    assert!(bye.contains("198.18.7.1"), "{bye}");
    drop(listener);
    drop(link);
}
