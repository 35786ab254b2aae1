#!/usr/bin/env bash
# The Debian package's end-to-end test (scripts/test.sh runs it after `cargo test`):
#
#   packaging/test-package.sh [--profile release|dev] [--no-build]
#
# 1. builds the .deb (packaging/build-deb.sh with the same options) and runs lintian on it;
# 2. dpkg -i: the files, their modes and owners, the `vigil` system user, the conffile;
# 3. systemd-analyze verify on both installed units (the template as vigil-camera@front, and
#    with the V4L2 drop-in), and systemd-analyze security --offline: the exposure figure is
#    printed and must be at most MAX_EXPOSURE ("OK" ends at 4.9; we hold a lower line);
# 4. the installed binary records a GStreamer RTSP camera: `vigil serve` with the packaged
#    /etc/vigil/vigil.toml (web app and metrics moved to 127.0.0.1, one camera added) as the
#    vigil user through runuser (no systemd runs here), until a recording file exists;
#    SIGTERM must stop it cleanly;
#    the example camera instance's command line (ExecStart, %i and its .env expanded) runs
#    as vigil and serves RTSP;
# 5. dpkg -r keeps the configuration, data and user; dpkg --purge removes every one of them.
#
# Runs as root, without a running systemd, on a machine where no `vigil` package or user
# exists yet (it refuses otherwise: purging would delete someone's data). Cleans up on any exit.
set -euo pipefail

cd "$(dirname "$0")/.."
# Everything to stderr: scripts/test.sh keeps cargo test's summary as the last stdout line.
exec >&2

MAX_EXPOSURE=2.0
CAMERA=pkgtest

step() { printf '\n==> package test: %s\n' "$*" >&2; }
fail() { echo "error: package test: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || fail "must run as root (dpkg -i, runuser)"
if dpkg-query -W -f='${Status}' vigil 2>/dev/null | grep -qv 'not-installed'; then
    fail "a vigil package is already on this machine; remove it first (dpkg --purge vigil)"
fi
getent passwd vigil >/dev/null && fail "a user named vigil exists; this test would delete it"
for tool in systemd-analyze runuser dpkg-deb pgrep lintian /usr/bin/python3; do
    command -v "$tool" >/dev/null || fail "$tool not found"
done

work=$(mktemp -d /tmp/vigil-package-test.XXXXXX)
serve_pid=
gst_pid=
dropin=/etc/systemd/system/vigil-camera@webcam.service.d
cleanup() {
    local rc=$?
    # runuser's child first: killing runuser alone would orphan a running vigil.
    if [[ -n "$serve_pid" ]]; then
        kill -KILL $(pgrep -P "$serve_pid") "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    if [[ -n "$gst_pid" ]]; then
        kill -TERM "$gst_pid" 2>/dev/null || true
    fi
    rm -rf "$dropin"
    if dpkg-query -W -f='${Status}' vigil 2>/dev/null | grep -qv 'not-installed'; then
        dpkg --purge vigil >/dev/null 2>&1 || true
    fi
    if ((rc != 0)); then
        for f in "$work"/*.log; do
            [[ -f "$f" ]] || continue
            echo "--- $f (last 40 lines)" >&2
            tail -n 40 "$f" >&2
        done
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
start=$SECONDS

# --- 1. build -----------------------------------------------------------------------------
step "build (packaging/build-deb.sh $*)"
deb=$(packaging/build-deb.sh "$@" | tail -n 1)
[[ -f "$deb" ]] || fail "no .deb built"
echo "package: $deb ($(stat -c %s "$deb") bytes)" >&2
dpkg-deb -f "$deb" Depends | grep -q 'libavcodec' || fail "Depends lacks libavcodec (libav feature not linked?)"
# Debian policy as lintian reads it; the two deliberate exceptions are overridden in
# packaging/lintian-overrides, with the reason.
lintian --fail-on error,warning --tag-display-limit 0 "$deb" 2>&1 | grep -v 'root privileges' \
    || true
lintian --fail-on error,warning "$deb" >/dev/null 2>&1 || fail "lintian finds errors or warnings (above)"

# --- 2. install -----------------------------------------------------------------------------
step "dpkg -i"
dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; fail "dpkg -i failed"; }
dpkg -L vigil >"$work/files"

expect_stat() { # PATH OWNER:GROUP MODE
    local got
    got=$(stat -c '%U:%G %a' "$1") || fail "$1 missing"
    [[ "$got" == "$2 $3" ]] || fail "$1 is $got, expected $2 $3"
}
expect_stat /usr/bin/vigil root:root 755
expect_stat /etc/vigil/vigil.toml root:vigil 640
expect_stat /var/lib/vigil vigil:vigil 700
expect_stat /lib/systemd/system/vigil.service root:root 644
expect_stat /lib/systemd/system/vigil-camera@.service root:root 644
for f in /usr/share/man/man1/vigil.1.gz /usr/share/man/man1/vigil-serve.1.gz \
    /usr/share/man/man1/vigil-camera.1.gz /usr/share/bash-completion/completions/vigil \
    /usr/share/zsh/vendor-completions/_vigil /usr/share/fish/vendor_completions.d/vigil.fish \
    /usr/share/doc/vigil/examples/v4l2.conf /usr/share/doc/vigil/examples/camera-front.env; do
    [[ -s "$f" ]] || fail "$f missing or empty"
done
grep -q 'package-assets' /usr/share/bash-completion/completions/vigil \
    && fail "the hidden package-assets subcommand leaked into the completions"
dpkg-query -W -f='${Conffiles}\n' vigil | grep -q '/etc/vigil/vigil.toml' \
    || fail "/etc/vigil/vigil.toml is not a conffile"
cmp -s /etc/vigil/vigil.toml vigil.example.toml || fail "/etc/vigil/vigil.toml differs from vigil.example.toml"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd vigil) || fail "no vigil user"
((uid < 1000)) || fail "vigil is not a system user (uid $uid)"
[[ "$home" == /var/lib/vigil ]] || fail "vigil's home is $home"
[[ "$shell" == */nologin || "$shell" == /bin/false ]] || fail "vigil has a login shell: $shell"
getent group vigil >/dev/null || fail "no vigil group"
/usr/bin/vigil --version >&2
# Not enabled on install: the shipped configuration names example cameras.
[[ ! -e /etc/systemd/system/multi-user.target.wants/vigil.service ]] \
    || fail "vigil.service was enabled on install"

# --- 3. systemd-analyze -----------------------------------------------------------------------
step "systemd-analyze verify"
# By name: verify loads them from /lib/systemd/system as PID 1 would, with the man pages
# of Documentation= and /usr/bin/vigil checked too.
systemd-analyze verify vigil.service || fail "verify vigil.service"
systemd-analyze verify vigil-camera@front.service || fail "verify vigil-camera@front.service"
install -D -m 644 /usr/share/doc/vigil/examples/v4l2.conf "$dropin/v4l2.conf"
systemd-analyze verify vigil-camera@webcam.service || fail "verify vigil-camera@webcam.service + v4l2.conf"
grep -q '^DeviceAllow=char-video4linux rw' "$dropin/v4l2.conf" || fail "v4l2.conf lost its DeviceAllow"

step "systemd-analyze security --offline=true"
exposure() { # UNIT-FILE... -> the overall exposure figure
    systemd-analyze security --offline=true "$@" 2>&1 | tee "$work/security.log" >/dev/null
    sed -n 's/^→ Overall exposure level for [^:]*: \([0-9.]*\) .*/\1/p' "$work/security.log" | tail -n 1
}
check_exposure() { # LABEL FIGURE
    [[ -n "$2" ]] || { cat "$work/security.log" >&2; fail "no exposure figure for $1"; }
    echo "exposure $1: $2 ($(tail -n 1 "$work/security.log" | sed 's/.*: [0-9.]* //'))" >&2
    awk -v e="$2" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(e <= max) }' \
        || fail "$1 exposure $2 is above $MAX_EXPOSURE"
}
check_exposure vigil.service "$(exposure /lib/systemd/system/vigil.service)"
# The template as an instance, then with the V4L2 drop-in applied (a copy with it appended:
# --offline reads unit files, not drop-in directories).
cp /lib/systemd/system/vigil-camera@.service "$work/vigil-camera@front.service"
check_exposure vigil-camera@front.service "$(exposure "$work/vigil-camera@front.service")"
cat /lib/systemd/system/vigil-camera@.service "$dropin/v4l2.conf" >"$work/vigil-camera@webcam.service"
webcam=$(exposure "$work/vigil-camera@webcam.service")
[[ -n "$webcam" ]] || fail "no exposure figure for the V4L2 instance"
echo "exposure vigil-camera@webcam.service (V4L2 drop-in): $webcam" >&2
rm -rf "$dropin"

# --- 4. record a GStreamer camera as the vigil user --------------------------------------------
step "vigil serve (packaged config, as vigil) records a GStreamer RTSP camera"
: >"$work/gst.log" # Debian's python3: python3-gi and the GStreamer RTSP server bindings
/usr/bin/python3 scripts/gst-rtsp-server.py --port 0 --testsrc 320x240@15 >>"$work/gst.log" 2>&1 &
gst_pid=$!
addr=
for _ in $(seq 100); do
    addr=$(sed -n 's/^listening rtsp \(.*\)$/\1/p' "$work/gst.log" || true)
    [[ -n "$addr" ]] && break
    kill -0 "$gst_pid" 2>/dev/null || fail "gst-rtsp-server.py exited"
    sleep 0.2
done
[[ -n "$addr" ]] || fail "gst-rtsp-server.py did not listen"

# The test binds loopback only: the web app and metrics move to free loopback ports.
sed -i -e 's/^listen = "0.0.0.0:8443"$/listen = "127.0.0.1:0"/' \
    -e 's/^listen = "127.0.0.1:9464"$/listen = "127.0.0.1:0"/' /etc/vigil/vigil.toml
grep -q '^listen = "0.0.0.0' /etc/vigil/vigil.toml && fail "could not move [web] listen to loopback"
printf '\n[[camera]]\nname = "%s"\nurl = "rtsp://%s/main"\n' "$CAMERA" "$addr" >>/etc/vigil/vigil.toml

: >"$work/serve.log" # created before the background job opens it, for the grep below
runuser -u vigil -- /usr/bin/vigil serve --config /etc/vigil/vigil.toml \
    >"$work/serve.log" 2>"$work/serve-stderr.log" </dev/null &
serve_pid=$!
recording=
for _ in $(seq 300); do
    kill -0 "$serve_pid" 2>/dev/null || fail "vigil serve exited"
    if grep -q "^recording $CAMERA/main\$" "$work/serve.log"; then
        recording=$(find "/var/lib/vigil/recordings/$CAMERA" -type f -name '*.mp4' -size +0 2>/dev/null | head -n 1 || true)
        [[ -n "$recording" ]] && break
    fi
    sleep 0.2
done
[[ -n "$recording" ]] || fail "no 'recording $CAMERA/main' line and file within 60 s"
echo "recorded: $recording ($(stat -c '%U:%G %a %s bytes' "$recording"))" >&2
[[ $(stat -c %U "$recording") == vigil ]] || fail "$recording is not owned by vigil"
# SIGTERM to vigil itself (runuser's child, as systemd would send it); runuser passes on its
# exit status.
vigil_pid=$(pgrep -P "$serve_pid" -x vigil) || fail "no vigil process under runuser"
[[ $(ps -o user= -p "$vigil_pid") == vigil ]] || fail "vigil serve does not run as the vigil user"
kill -TERM "$vigil_pid"
rc=0
wait "$serve_pid" || rc=$?
serve_pid=
((rc == 0)) || fail "vigil serve exited with $rc on SIGTERM"
kill -TERM "$gst_pid" 2>/dev/null || true
wait "$gst_pid" 2>/dev/null || true
gst_pid=

step "vigil camera, run as vigil-camera@front.service would run it"
# The example instance, on loopback and free ports; ExecStart taken from the installed unit,
# with %i and $VIGIL_CAMERA_ARGS expanded as systemd does (whitespace-split words).
sed -e 's/0\.0\.0\.0:[0-9]*/127.0.0.1:0/g' /usr/share/doc/vigil/examples/camera-front.env \
    >/etc/vigil/camera-front.env
camera_args=$(sed -n 's/^VIGIL_CAMERA_ARGS=//p' /etc/vigil/camera-front.env)
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/vigil-camera@.service)
exec_start=${exec_start//%i/front}
exec_start=${exec_start//\$VIGIL_CAMERA_ARGS/$camera_args}
read -ra camera_cmd <<<"$exec_start"
# As docs/install.md says: the data directory, then a user (the camera refuses to start
# without one).
install -d -o vigil -g vigil -m 0700 /var/lib/vigil/camera-front
echo 'package-test-password-7' \
    | runuser -u vigil -- /usr/bin/vigil user add admin --password-stdin --data /var/lib/vigil/camera-front \
        >"$work/user-add.log" 2>&1 || fail "vigil user add as vigil failed"
: >"$work/camera.log"
runuser -u vigil -- "${camera_cmd[@]}" >"$work/camera.log" 2>"$work/camera-stderr.log" </dev/null &
serve_pid=$!
listening=
for _ in $(seq 150); do
    kill -0 "$serve_pid" 2>/dev/null || fail "vigil camera exited: ${camera_cmd[*]}"
    listening=$(sed -n 's/^listening rtsp \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$work/camera.log" || true)
    [[ -n "$listening" ]] && break
    sleep 0.2
done
[[ -n "$listening" ]] || fail "vigil camera did not listen within 30 s: ${camera_cmd[*]}"
echo "camera instance: ${camera_cmd[*]} -> rtsp $listening" >&2
vigil_pid=$(pgrep -P "$serve_pid" -x vigil) || fail "no vigil process under runuser"
kill -TERM "$vigil_pid"
rc=0
wait "$serve_pid" || rc=$?
serve_pid=
((rc == 0)) || fail "vigil camera exited with $rc on SIGTERM"

# --- 5. remove, purge -----------------------------------------------------------------------
step "dpkg -r: configuration, data and user stay"
dpkg -r vigil >"$work/dpkg-r.log" 2>&1 || { cat "$work/dpkg-r.log" >&2; fail "dpkg -r failed"; }
[[ ! -e /usr/bin/vigil ]] || fail "/usr/bin/vigil left after dpkg -r"
[[ ! -e /lib/systemd/system/vigil.service ]] || fail "vigil.service left after dpkg -r"
[[ -f /etc/vigil/vigil.toml ]] || fail "dpkg -r removed the configuration"
[[ -n "$(find /var/lib/vigil/recordings -name '*.mp4' 2>/dev/null)" ]] || fail "dpkg -r removed the recordings"
getent passwd vigil >/dev/null || fail "dpkg -r removed the vigil user"
dpkg-query -W -f='${Status}\n' vigil | grep -q 'config-files' || fail "not in config-files state after dpkg -r"

step "dpkg --purge: nothing left"
dpkg --purge vigil >"$work/dpkg-purge.log" 2>&1 || { cat "$work/dpkg-purge.log" >&2; fail "dpkg --purge failed"; }
for p in /etc/vigil /var/lib/vigil; do
    [[ ! -e "$p" ]] || fail "$p left after purge"
done
getent passwd vigil >/dev/null && fail "vigil user left after purge"
getent group vigil >/dev/null && fail "vigil group left after purge"
while read -r f; do
    [[ -d "$f" ]] && continue # shared directories (/usr/share/man/man1 …) stay
    [[ ! -e "$f" ]] || fail "$f left after purge"
done <"$work/files"
leftovers=$(find /etc/systemd /var/lib/systemd -name '*vigil*' 2>/dev/null || true)
[[ -z "$leftovers" ]] || fail "systemd state left after purge: $leftovers"
dpkg-query -W -f='${Status}\n' vigil 2>/dev/null | grep -qv 'not-installed' \
    && fail "dpkg still knows vigil after purge"

echo "==> package test passed in $((SECONDS - start)) s" >&2
