#!/usr/bin/env bash
# A real local farm on the embedded default: a master (gunicorn, SQLite) and one agent on
# loopback, a two-rung ladder transcode of a generated test pattern, and its result.
# Everything lives in .demo/ and stops when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh

demo=$PWD/.demo
rm -rf "$demo"
mkdir -p "$demo/media/out" "$demo/worker"
py=.venv/bin/python
ffrtmp=.venv/bin/ffrtmp
port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
token() { "$py" -c 'import secrets; print(secrets.token_urlsafe(32))'; }
(umask 077; token > "$demo/api-token"; token > "$demo/enroll-token")

export FFRTMP_MASTER_BIND=127.0.0.1:$(port) FFRTMP_METRICS_BIND=127.0.0.1:$(port)
export FFRTMP_AGENT_BIND=127.0.0.1:$(port)
export FFRTMP_MASTER_URL=http://$FFRTMP_MASTER_BIND
export FFRTMP_DATABASE=sqlite:///$demo/master.db
export FFRTMP_API_TOKEN_FILE=$demo/api-token FFRTMP_ENROLL_TOKEN_FILE=$demo/enroll-token
export FFRTMP_MEDIA_ROOTS=$demo/media FFRTMP_LOG_DIR=$demo/log
export FFRTMP_STATE_DIR=$demo/worker FFRTMP_WORK_DIR=$demo/worker/work FFRTMP_SLOTS=2

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

wait_ready() {  # URL WHAT
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "demo: $2 did not become ready; its log:" >&2
    cat "$demo/$2.out" >&2
    exit 1
}

echo "== starting the master on $FFRTMP_MASTER_BIND (SQLite: $demo/master.db)"
"$ffrtmp" master >"$demo/master.out" 2>&1 & pids+=($!)
wait_ready "http://$FFRTMP_MASTER_BIND/ready" master
echo "== starting an agent with 2 slots (health on $FFRTMP_AGENT_BIND)"
"$ffrtmp" agent >"$demo/agent.out" 2>&1 & pids+=($!)
wait_ready "http://$FFRTMP_AGENT_BIND/ready" agent
"$ffrtmp" nodes list

echo "== submitting a 10 s 1280x720 test pattern, transcoded to 720p and 480p in one ffmpeg"
job=$("$ffrtmp" jobs submit --input 'testsrc://?duration=10&size=1280x720&rate=30' \
      --output "file://$demo/media/out/demo-720p.mp4" --preset h264-720p \
      --output "file://$demo/media/out/demo-480p.mp4" --preset h264-480p --intent demo)
echo "job $job"
"$ffrtmp" jobs watch "$job"

echo "== outputs (ffprobe)"
for f in "$demo"/media/out/*.mp4; do
    printf '%s: ' "$(basename "$f")"
    ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height \
        -show_entries format=duration -of default=noprint_wrappers=1 "$f" | tr '\n' ' '
    echo
done
echo "== wrapper counters (agent /wrapper/metrics)"
curl -fsS "http://$FFRTMP_AGENT_BIND/wrapper/metrics" | grep -v '^#'
echo "== the wrapper's summary line"
grep "JOB $job" "$demo/log/wrapper/wrapper.log"
