#!/usr/bin/env bash
# Builds the Debian package of vigil: target/debian/vigil_<version>-1_<arch>.deb.
#
#   packaging/build-deb.sh [--profile release|dev] [--no-build]
#
# 1. cargo build -p vigil --features v4l2,libav (the features a Debian user can have: V4L2
#    webcams, motion decoding with libavcodec; needs libclang-dev and libav*-dev).
# 2. `vigil package-assets` writes the man pages and completions into
#    target/<profile>/package-assets/.
# 3. cargo deb -p vigil --no-build packages what [package.metadata.deb] in
#    crates/vigil/Cargo.toml lists (cargo-deb installed, pinned, when missing).
#
# --profile release (default) is what users run. --profile dev packages the debug-profile
# binary that `cargo test --workspace --features vigil/v4l2,vigil/libav` already built, so
# that CI (packaging/test-package.sh) tests the packaging without a second, 10-minute
# release build; cargo-deb warns that it is meant for releases, which is right.
# --no-build skips step 1 (the binary must exist).
# Prints the path of the .deb as its last stdout line.
set -euo pipefail

cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
profile=release
build=1
while (($# > 0)); do
    case "$1" in
        --profile) profile=${2:?--profile needs release or dev}; shift 2 ;;
        --no-build) build=0; shift ;;
        *) echo "usage: $0 [--profile release|dev] [--no-build]" >&2; exit 2 ;;
    esac
done
case "$profile" in
    release) profile_dir=release ;;
    dev) profile_dir=debug ;;
    *) echo "error: --profile must be release or dev, not $profile" >&2; exit 2 ;;
esac

export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

if [[ "$(cargo deb --version 2>/dev/null || true)" != *"$CARGO_DEB_VERSION"* ]]; then
    echo "==> cargo install cargo-deb $CARGO_DEB_VERSION" >&2
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >&2
fi

target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
binary="$target_dir/$profile_dir/vigil"

if ((build)); then
    echo "==> cargo build -p vigil --profile $profile --features v4l2,libav" >&2
    cargo build -p vigil --profile "$profile" --features v4l2,libav >&2
fi
[[ -x "$binary" ]] || { echo "error: $binary missing (build it, or drop --no-build)" >&2; exit 1; }

# Beside the binary, where [package.metadata.deb] looks for them ("target/release/…" there
# means the profile's directory). Fresh each time: a page of a removed subcommand must not
# linger in the package.
assets="$target_dir/$profile_dir/package-assets"
rm -rf "$assets"
"$binary" package-assets --out "$assets" >/dev/null
# Debian policy 12.1: man pages compressed with gzip -9; -n keeps the package reproducible.
gzip -9n "$assets"/man/*.1

echo "==> cargo deb -p vigil --no-build --profile $profile" >&2
out=$(cargo deb -p vigil --no-build --profile "$profile")
deb=$(printf '%s\n' "$out" | tail -n 1)
[[ -f "$deb" ]] || { echo "error: cargo deb printed no package path: $out" >&2; exit 1; }
echo "$deb"
