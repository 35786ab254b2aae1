//! `vigil serve` with a `[webrtc]` section, end to end: the configuration reaches the web
//! app, no UDP media port is open before anyone watches, aiortc (`crates/web/tests/
//! whep_client.py`) plays a `vigil camera` through WHEP with an API token and decodes every
//! picture, and the port is closed again after its DELETE; and the same through two NATs
//! and coturn, built in network namespaces (root). The routes' authorization and limits are
//! tested in `crates/web/tests/whep.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::browser::Api;
use common::recorder::{listening_addr, vigil_camera, vigil_serve, Proc};
use common::{PASSWORD, USER};
use serde_json::{json, Value};

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn udp_port_free(port: u16) -> bool {
    std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

fn write_config(dir: &Path, rtsp: std::net::SocketAddr, udp_port: u16) -> std::path::PathBuf {
    let login = format!("username = \"{USER}\"\npassword = \"{PASSWORD}\"\n");
    write_config_login(dir, rtsp, udp_port, &login)
}

/// [`write_config`] with `login` (`username` and `password` lines, or none) for the camera.
fn write_config_login(
    dir: &Path,
    rtsp: std::net::SocketAddr,
    udp_port: u16,
    login: &str,
) -> std::path::PathBuf {
    let text = format!(
        "data_dir = \"data\"\n[web]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"off\"\n\
         [webrtc]\nudp_port = {udp_port}\nmax_sessions = 2\n\
         [[camera]]\nname = \"porch\"\nurl = \"rtsp://{rtsp}/main\"\n{login}"
    );
    common::recorder::write_private(&dir.join("vigil.toml"), &text)
}

/// Waits until `serve` records porch/main, creates the admin through its setup link and an
/// API token with the `view` scope: (its HTTPS address, the token).
async fn admin_token(serve: &mut Proc) -> (std::net::SocketAddr, String) {
    let (line, _) = serve.wait_line("listening https ", 0, Duration::from_secs(60));
    let addr: std::net::SocketAddr = line["listening https ".len()..].trim().parse().unwrap();
    let (line, _) = serve.wait_line("tls-fingerprint sha256 ", 0, Duration::from_secs(10));
    let fingerprint = line["tls-fingerprint sha256 ".len()..].trim().to_owned();
    let (line, _) = serve.wait_line("setup-url ", 0, Duration::from_secs(10));
    let setup_token = line.rsplit('/').next().unwrap().trim().to_owned();
    serve.wait_line("recording porch/main", 0, Duration::from_secs(60));
    let mut api = Api::https(addr, &fingerprint);
    api.setup(&setup_token, "admin", "a long admin pass phrase")
        .await;
    let r = api
        .request(
            "POST",
            "/api/tokens",
            Some(&json!({"name": "whep", "scopes": ["view"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_owned();
    (addr, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigil_serve_plays_a_camera_over_whep_with_its_port_open_only_while_watched() {
    let cam_dir = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = vigil_camera(cam_dir.path(), "127.0.0.1:0", (320, 180), 15, &[]);
    let udp_port = free_udp_port();
    let mut serve = vigil_serve(&write_config(dir.path(), rtsp, udp_port));
    let (addr, token) = admin_token(&mut serve).await;
    assert!(
        udp_port_free(udp_port),
        "the WebRTC port is open before anyone watches"
    );

    // aiortc plays porch over WHEP; meanwhile the port is open (checked from here).
    let url = format!("https://{addr}/api/cameras/porch/whep?stream=main");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/tests/whep_client.py");
    let mut client = Command::new("python3")
        .arg(&script)
        .args(["play", &url, &token, "45"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut seen_open = false;
    while client.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "aiortc did not finish"
        );
        seen_open |= !udp_port_free(udp_port);
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = client.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "aiortc: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let play: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout} / {stderr}"));
    eprintln!("aiortc through vigil serve: {play}");
    assert!(
        seen_open,
        "the configured UDP port {udp_port} was never open"
    );
    assert_eq!(play["post"], 201, "{play}");
    assert_eq!(play["frames"], 45, "{play}");
    assert_eq!(play["decode_errors"], 0, "{play}");
    assert_eq!(play["size"], json!([320, 180]), "{play}");
    assert_eq!(play["delete"], 204, "{play}");
    let closing = Instant::now();
    while !udp_port_free(udp_port) {
        assert!(
            closing.elapsed() < Duration::from_secs(5),
            "the WebRTC port is still open after the last session"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serve.stop_gracefully(Duration::from_secs(20));
}

/// G.711 passed through (issue 14): GStreamer's RTSP server sends H.264 and PCMU, `vigil
/// serve` records both, and aiortc, offering audio beside the video, gets an answer with
/// PCMU alone and decodes pictures and at least 50 audio frames, without a decode error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g711_from_the_camera_plays_over_whep_beside_the_picture() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gst-rtsp-server.py");
    let mut cam = Command::new("/usr/bin/python3");
    cam.arg(script)
        .args(["--port", "0", "--testsrc", "320x240@15", "--bitrate", "500"])
        .args(["--audio", "pcmu"]);
    let mut cam = Proc::spawn("gst-rtsp-server", &mut cam);
    let rtsp = listening_addr(&mut cam);
    let udp_port = free_udp_port();
    let mut serve = vigil_serve(&write_config_login(dir.path(), rtsp, udp_port, ""));
    let (addr, token) = admin_token(&mut serve).await;

    let url = format!("https://{addr}/api/cameras/porch/whep?stream=main");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/tests/whep_client.py");
    let out = tokio::task::spawn_blocking(move || {
        common::run_peer(
            Command::new("python3")
                .arg(&script)
                .args(["play", &url, &token, "30", "--audio", "50"]),
            Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    let stderr = &out.stderr;
    assert!(out.success(), "aiortc: {stderr}\n{}", serve.stderr_tail(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let play: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout} / {stderr}"));
    eprintln!("aiortc with G.711 through vigil serve: {play}");
    assert_eq!(play["post"], 201, "{play}");
    assert_eq!(play["frames"], 30, "{play}");
    assert_eq!(play["decode_errors"], 0, "{play}");
    assert_eq!(play["size"], json!([320, 240]), "{play}");
    assert_eq!(play["audio_codec"], json!(["PCMU/8000"]), "{play}");
    assert_eq!(play["audio_frames"], 50, "{play}");
    assert_eq!(play["audio_rate"], 8000, "{play}");
    assert_eq!(play["audio_decode_errors"], 0, "{play}");
    assert_eq!(play["delete"], 204, "{play}");
    serve.stop_gracefully(Duration::from_secs(20));
}

/// A home and a mobile network in network namespaces (iproute2 and nftables, as root), all
/// addresses in 198.18.0.0/15 and only inside the namespaces; deleted on drop:
///
/// ```text
///  home: recorder, camera    home-nat                     public: coturn             viewer-nat                   viewer: aiortc
///  198.18.1.2 ── 198.18.1.1 | 198.19.0.2 ── 198.19.0.1 | 198.19.1.1 ── 198.19.1.2 | 198.18.2.1 ── 198.18.2.2
///               masquerade, the web app's TCP port forwarded          masquerade fully-random
///               (address- and port-dependent filtering)               (symmetric: a new port per peer)
/// ```
///
/// The home router forwards the web app's TCP port only (signalling), as a user would; no
/// media port. No direct path can work between the two NATs (the viewer's maps a new port
/// for every peer, the home one drops what its recorder has not sent to), so the picture
/// can only flow through the TURN relay.
struct NatLab {
    tag: String,
}

impl NatLab {
    const SETUP: &'static str = r#"
set -eu
T=$1; WEB=$2
H=${T}h; HN=${T}hn; P=${T}p; VN=${T}vn; V=${T}v
for n in $H $HN $P $VN $V; do ip netns add $n; ip -n $n link set lo up; done
ip link add h0 netns $H type veth peer name h1 netns $HN
ip link add hn0 netns $HN type veth peer name p0 netns $P
ip link add p1 netns $P type veth peer name vn0 netns $VN
ip link add vn1 netns $VN type veth peer name v0 netns $V
up() { ip -n $1 addr add $3 dev $2; ip -n $1 link set $2 up; }
up $H h0 198.18.1.2/24
up $HN h1 198.18.1.1/24
up $HN hn0 198.19.0.2/24
up $P p0 198.19.0.1/24
up $P p1 198.19.1.1/24
up $VN vn0 198.19.1.2/24
up $VN vn1 198.18.2.1/24
up $V v0 198.18.2.2/24
ip -n $H route add default via 198.18.1.1
ip -n $HN route add default via 198.19.0.1
ip -n $VN route add default via 198.19.1.1
ip -n $V route add default via 198.18.2.1
# The rest of the internet: a default route into a veth whose other end takes nothing (a
# gateway with a made-up MAC). Packets for the private addresses go there and vanish
# silently, as on the internet; an unreachable route would fail coturn's send at once, and
# coturn then drops the whole allocation.
ip -n $P link add inet0 type veth peer name inet1
ip -n $P link set inet0 up
ip -n $P link set inet1 up
ip -n $P addr add 198.19.255.1/30 dev inet0
ip -n $P neigh add 198.19.255.2 lladdr 02:00:00:00:00:01 dev inet0 nud permanent
ip -n $P route add default via 198.19.255.2
for n in $HN $P $VN; do ip netns exec $n sysctl -qw net.ipv4.ip_forward=1; done
ip netns exec $HN nft -f - <<NFT
table ip home {
  chain pre { type nat hook prerouting priority dstnat; iifname "hn0" tcp dport $WEB dnat to 198.18.1.2; }
  chain post { type nat hook postrouting priority srcnat; oifname "hn0" masquerade; }
  chain forwarding { type filter hook forward priority filter; policy drop;
    ct state established,related accept; iifname "h1" accept; ct status dnat accept; }
}
NFT
ip netns exec $VN nft -f - <<NFT
table ip viewer {
  chain post { type nat hook postrouting priority srcnat; oifname "vn0" masquerade fully-random; }
  chain forwarding { type filter hook forward priority filter; policy drop;
    ct state established,related accept; iifname "vn1" accept; }
}
NFT
"#;

    /// Builds the lab; the home router forwards TCP port `web` to the recorder.
    fn new(web: u16) -> NatLab {
        let uid = Command::new("id").arg("-u").output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "this test builds network namespaces (ip netns, nftables): run it as root, as CI does"
        );
        let lab = NatLab {
            tag: format!("vw{}", std::process::id() % 100_000),
        };
        let out = Command::new("bash")
            .args(["-c", Self::SETUP, "setup", &lab.tag, &web.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "building the namespaces failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    /// The namespace `part` (`h`, `hn`, `p`, `vn`, `v`).
    fn ns(&self, part: &str) -> String {
        format!("{}{part}", self.tag)
    }

    /// `program` inside namespace `part`.
    fn exec(&self, part: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(part), program]);
        c
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends and nftables tables with it.
        for part in ["v", "vn", "p", "hn", "h"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(part)])
                .status();
        }
    }
}

/// Issue 14's NAT test: the recorder behind a home NAT (web port forwarded, no media port),
/// the viewer (aiortc) behind a symmetric NAT, coturn between them. The viewer gets its TURN
/// credentials from OPTIONS (made from coturn's shared secret); the recorder learns its
/// public address from the same coturn (STUN) and offers it as a server-reflexive candidate.
/// The picture flows through the relay and decodes without an error.
#[test]
fn viewer_behind_a_symmetric_nat_plays_through_the_turn_relay() {
    const WEB: u16 = 8443;
    const SECRET: &str = "nat-lab-turn-secret-5b1e";
    let lab = NatLab::new(WEB);
    let tmp = tempfile::tempdir().unwrap();

    // coturn on the "internet", with the TURN REST shared secret.
    let turn = Proc::spawn(
        "coturn",
        lab.exec("p", "turnserver").args([
            "-n",
            "--listening-ip=198.19.0.1",
            "--relay-ip=198.19.0.1",
            "--listening-port=3478",
            "--min-port=49160",
            "--max-port=49200",
            "--use-auth-secret",
            &format!("--static-auth-secret={SECRET}"),
            "--realm=vigil.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--log-file=stdout",
            "--simple-log",
            "--verbose",
            &format!("--pidfile={}", tmp.path().join("turn.pid").display()),
            &format!("--userdb={}", tmp.path().join("turndb").display()),
        ]),
    );

    // The camera and the recorder at home.
    let cam_dir = tmp.path().join("camera");
    std::fs::create_dir_all(&cam_dir).unwrap();
    common::add_user(&cam_dir, USER, PASSWORD);
    let mut cam = Proc::spawn(
        "vigil camera",
        lab.exec("h", common::vigil_bin())
            .args(["camera", "--source", "testsrc", "--data"])
            .arg(&cam_dir)
            .args(["--rtsp", "127.0.0.1:0", "--rtsps", "off", "--http", "off"])
            .args(["--onvif", "off", "--sub-size", "off", "--size", "320x180"])
            .args(["--fps", "15"])
            .env("RUST_LOG", "warn"),
    );
    let rtsp = listening_addr(&mut cam);
    let dir = tmp.path().join("nvr");
    std::fs::create_dir_all(&dir).unwrap();
    let config = common::recorder::write_private(
        &dir.join("vigil.toml"),
        &format!(
            "data_dir = \"data\"\n[web]\nlisten = \"198.18.1.2:{WEB}\"\n[metrics]\nlisten = \"off\"\n\
             [webrtc]\nudp_port = 8189\n\
             ice_servers = [{{ urls = [\"turn:198.19.0.1:3478?transport=udp\"], secret = \"{SECRET}\" }}]\n\
             [[camera]]\nname = \"porch\"\nurl = \"rtsp://{rtsp}/main\"\n\
             username = \"{USER}\"\npassword = \"{PASSWORD}\"\n"
        ),
    );
    let mut serve = Proc::spawn(
        "vigil serve",
        lab.exec("h", common::vigil_bin())
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info"),
    );
    let (line, _) = serve.wait_line("setup-url ", 0, Duration::from_secs(60));
    let setup_token = line.rsplit('/').next().unwrap().trim().to_owned();
    serve.wait_line("recording porch/main", 0, Duration::from_secs(60));

    // The viewer reaches the web app only through the home router's port forward.
    let base = format!("https://198.19.0.2:{WEB}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/tests/whep_client.py");
    let out = lab
        .exec("v", "python3")
        .arg(&script)
        .args(["token", &base, &setup_token])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "setup through the NAT: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let url = format!("{base}/api/cameras/porch/whep?stream=main");
    let started = Instant::now();
    let out = lab
        .exec("v", "timeout")
        .args(["60", "python3"])
        .arg(&script)
        .args(["play", &url, &token, "30", "--ice-servers-from-options"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let turn_log = || {
        let lines = turn.lines();
        lines[lines.len().saturating_sub(80)..].join("\n")
    };
    assert!(
        out.status.success(),
        "aiortc: {stdout} {stderr}\n---- coturn (last 80 lines) ----\n{}",
        turn_log()
    );
    let play: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout} / {stderr}"));
    eprintln!(
        "aiortc behind a symmetric NAT, through coturn ({:?}): {play}",
        started.elapsed()
    );
    assert_eq!(play["options"], 204, "{play}");
    assert_eq!(
        play["ice_servers"],
        json!(["turn:198.19.0.1:3478?transport=udp"]),
        "{play}"
    );
    assert_eq!(play["post"], 201, "{play}");
    assert_eq!(play["frames"], 30, "{play}");
    assert_eq!(play["decode_errors"], 0, "{play}");
    assert_eq!(play["size"], json!([320, 180]), "{play}");
    assert_eq!(play["delete"], 204, "{play}");
    // Through the relay (the only path), to the recorder's public address.
    assert_eq!(play["pair"]["local"], "relay", "{play}");
    assert!(
        play["pair"]["remote_addr"]
            .as_str()
            .unwrap_or_default()
            .starts_with("198.19.0.2:"),
        "{play}"
    );
    // The recorder learnt that address from coturn over STUN, and coturn let its relay
    // talk to it (a permission for the home NAT's public address).
    assert!(
        serve.stderr_text().contains("198.19.0.2:8189"),
        "the recorder never logged its server-reflexive address"
    );
    assert!(
        turn.lines().iter().any(|l| l.contains("198.19.0.2")),
        "coturn never saw the recorder's public address:\n{}",
        turn_log()
    );
    serve.stop_gracefully(Duration::from_secs(20));
    turn.terminate();
}
