#!/usr/bin/env bash
# Creates a Moonfire NVR database with N cameras recording continuously, no TUI.
# Usage: setup-moonfire-db.sh BIN BASE N URL_TEMPLATE [RETAIN_BYTES_PER_STREAM] [HTTP_PORT] [FLUSH_IF_SEC]
#   BIN          path to moonfire-nvr binary
#   BASE         empty/nonexistent working dir; gets BASE/db, BASE/sample, BASE/moonfire.toml
#   N            number of cameras (one "main" stream each)
#   URL_TEMPLATE printf template with one %d (1..N), e.g. rtsp://127.0.0.1:8554/cam%d
#                (no credentials in the URL; Moonfire rejects them there)
# Moonfire must NOT be running while this runs (the db dir is flock()ed).
set -euo pipefail
BIN=$1; BASE=$2; N=$3; TPL=$4
RETAIN=${5:-1073741824}; PORT=${6:-8080}; FLUSH=${7:-10}
mkdir -p "$BASE"
BASE=$(cd "$BASE" && pwd)
"$BIN" init --db-dir "$BASE/db"
{
  echo "begin;"
  # last_complete_open_id NULL + empty/nonexistent path => `run` creates the
  # directory (one mkdir level) and writes its 'meta' file on first open.
  echo "insert into sample_file_dir (uuid, config, last_complete_open_id)
        values (randomblob(16), json_object('path', '$BASE/sample'), null);"
  for i in $(seq 1 "$N"); do
    url=$(printf "$TPL" "$i")
    echo "insert into camera (uuid, short_name, config)
          values (randomblob(16), 'cam$i', '{}');"
    echo "insert into stream (camera_id, sample_file_dir_id, type, config,
                              cum_recordings, cum_media_duration_90k, cum_runs)
          values (last_insert_rowid(), (select id from sample_file_dir limit 1), 'main',
                  json_object('mode', 'record', 'url', '$url', 'rtspTransport', 'tcp',
                              'retainBytes', $RETAIN, 'flushIfSec', $FLUSH),
                  0, 0, 0);"
  done
  echo "commit;"
} | "$BIN" sql --db-dir "$BASE/db"      # = sqlite3 with foreign_keys=on, under Moonfire's dir lock
cat > "$BASE/moonfire.toml" <<TOML
dbDir = "$BASE/db"
# no UI needed; a missing uiDir only logs a warning
uiDir = "$BASE/no-ui"

[[binds]]
ipv4 = "127.0.0.1:$PORT"
allowUnauthenticatedPermissions = { viewVideo = true, readCameraConfigs = true }
TOML
echo "ready: $BIN run --config $BASE/moonfire.toml"
