#!/usr/bin/env bash
# Whole-system benchmarks: builds release binaries, then runs the fan-out (Vigil vs GStreamer's RTSP
# server), latency and recorder (vigil serve vs one ffmpeg -f segment per camera) benchmarks,
# printing to the terminal and to target/bench-results.txt.
# Needs: ffmpeg, /usr/bin/python3 with python3-gi and gir1.2-gst-rtsp-server-1.0, GStreamer
# plugins good/bad (h264parse, rtph264pay, qtdemux). Takes about 8-10 minutes. Not part of CI.
# Extra arguments are passed to the fanout binary (e.g. --clients 1,10 --window 5).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p vigil -p vigil-bench
out=target/bench-results.txt
{
  echo "# vigil benchmarks $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  ./target/release/fanout "$@"
  echo
  ./target/release/latency
  echo
  ./target/release/record
} 2>&1 | tee "$out"
echo "results written to $out"
