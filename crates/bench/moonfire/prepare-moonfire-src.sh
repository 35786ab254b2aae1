#!/usr/bin/env bash
# Reproducibly prepares a buildable Moonfire NVR v0.7.30 source tree with no
# git-only dependencies. Needs: git, cargo (crates.io reachable), the `fetch`
# tool's bare mirrors under /work/.mirror (scottlamb/{moonfire-nvr,coded,mp4-rust}).
# Usage: prepare-moonfire-src.sh [DEST=/tmp/moonfire] [--no-retina-patch]
set -euo pipefail
DEST=${1:-/tmp/moonfire}
RETINA_PATCH=1; [[ "${2:-}" == "--no-retina-patch" ]] && RETINA_PATCH=0
M=/work/.mirror
HERE=$(cd "$(dirname "$0")" && pwd)
MOONFIRE_REV=ffc8bd6b981b1a79f5821ad4e5fca1abd9552dd7   # tag v0.7.30
CODED_REV=2c97994974a73243d5dd12134831814f42cdb0e8
MP4_REV=388fb47653305fb153de4e11d8cbc6f307e02ee5      # branch "moonfire"

rm -rf "$DEST"
git clone -q "$M/scottlamb+moonfire-nvr/repo" "$DEST"
git -C "$DEST" checkout -q "$MOONFIRE_REV"
mkdir -p "$DEST/vendor"
git clone -q "$M/scottlamb+coded/repo" "$DEST/vendor/coded"
git -C "$DEST/vendor/coded" checkout -q "$CODED_REV"
git clone -q "$M/scottlamb+mp4-rust/repo" "$DEST/vendor/mp4-rust"
git -C "$DEST/vendor/mp4-rust" checkout -q "$MP4_REV"

cd "$DEST/server"
python3 - <<'PY'
def sub(path, old, new):
    s = open(path).read()
    assert old in s, (path, old)
    open(path, "w").write(s.replace(old, new))
sub("Cargo.toml",
    'protobuf = { git = "https://github.com/scottlamb/rust-protobuf", rev = "593aa7f26bb5fc736c2e61d410afa34efb914ecb" }',
    'protobuf = "=3.7.2"')
sub("Cargo.toml",
    'protobuf-codegen = { git = "https://github.com/scottlamb/rust-protobuf", rev = "593aa7f26bb5fc736c2e61d410afa34efb914ecb" }',
    'protobuf-codegen = "=3.7.2"')
sub("Cargo.toml",
    'mp4 = { git = "https://github.com/scottlamb/mp4-rust", branch = "moonfire" }',
    'mp4 = { path = "../vendor/mp4-rust" }')
s = open("Cargo.toml").read()
i = s.index("[patch.crates-io]")
s = s[:i] + "[patch.crates-io]\n# (scottlamb/tracing patch removed: crates.io tracing is used instead)\n"
open("Cargo.toml", "w").write(s)
sub("base/Cargo.toml",
    'coded = { git = "https://github.com/scottlamb/coded", rev = "2c97994974a73243d5dd12134831814f42cdb0e8" }',
    'coded = { path = "../../vendor/coded" }')
PY

# Resolve/download everything (network: crates.io only). Re-locks the
# formerly-git packages; all other Cargo.lock entries are kept.
cargo fetch
if [[ $RETINA_PATCH == 1 ]]; then
  REG=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/retina-0.4.17 | head -1)
  cp -r "$REG" "$DEST/vendor/retina-0.4.17"
  patch -d "$DEST/vendor/retina-0.4.17" -p1 < "$HERE/retina-no-range.patch"
  printf '%s\n' '# Vendored retina 0.4.17 with the PLAY `Range: npt=0.000-` header removed.' \
    'retina = { path = "../vendor/retina-0.4.17" }' >> Cargo.toml
fi
# Pin to the lock file recorded when this recipe was made (if present), so the
# re-resolved formerly-git packages don't drift to newer crates.io versions.
# (The upstream Cargo.lock is kept until here so that retina stays at 0.4.17.)
if [[ $RETINA_PATCH == 1 && -f "$HERE/moonfire-v0.7.30.Cargo.lock" ]]; then
  cp "$HERE/moonfire-v0.7.30.Cargo.lock" Cargo.lock
fi
cargo fetch
echo "prepared $DEST"
