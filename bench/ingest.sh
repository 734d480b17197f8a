#!/usr/bin/env bash
# Analyzer ingest benchmark: OTLP/gRPC spans per second per server core.
#
# Builds release binaries, starts `jvmapm serve` on a fresh data directory and
# free ports pinned to one core, drives it with `otlp-load` pinned to another,
# and reports acknowledged spans/s, the server CPU used during the measured run,
# spans/s per server core, peak RSS and bytes written. With UNPINNED=1 it
# repeats the run with the server allowed on every core. After each run it
# times the viewer's queries on what was stored (the XLog and statistics of
# the last 5 minutes and the last hour, one transaction, one trace).
#
# With CLICKHOUSE=1 the server keeps everything in a ClickHouse server of the
# script's own (Debian's clickhouse-server, unpinned, its data in the work
# folder), whose CPU is reported beside the analyzer's, and the bytes stored
# per span are ClickHouse's (system.parts, bytes on disk after compression).
#
# Usage: bench/ingest.sh            (from the workspace root or anywhere)
# Knobs (environment): DURATION=10 WARMUP=2 CONCURRENCY=8 BATCH=512
#   CONNECTIONS=1 SERVER_CPUS=0 LOAD_CPUS=1 UNPINNED=0 NO_BUILD=0 CLICKHOUSE=0
#   LOAD_ARGS=... (extra otlp-load flags, e.g. --typed) EXTRA_SERVE_ARGS=...
#   SERVER_WRAPPER=... (a prefix that execs the server, e.g.
#   "env LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
#   CARGO_TARGET_DIR=...
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONCURRENCY=${CONCURRENCY:-8}
BATCH=${BATCH:-512}
CONNECTIONS=${CONNECTIONS:-1}
SERVER_CPUS=${SERVER_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
UNPINNED=${UNPINNED:-0}
CLICKHOUSE=${CLICKHOUSE:-0}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
if (( $(nproc) < 2 )); then
    echo "ingest.sh: only one CPU: server and load generator share it; per-core figures are not comparable" >&2
    SERVER_CPUS=0 LOAD_CPUS=0
fi

if [[ ${NO_BUILD:-0} != 1 ]]; then
    # Bounded: a cold build of the dependencies takes minutes; build first, then time.
    cargo build --release --quiet -p jvmapm -p jvmapm-bench
fi
JVMAPM=$TARGET/release/jvmapm
LOAD=$TARGET/release/otlp-load
TICKS=$(getconf CLK_TCK)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/jvmapm-ingest.XXXXXX")
SERVER_PID=
LOAD_PID=
CH_PID=
cleanup() {
    if [[ -n $CH_PID ]]; then kill -TERM "$CH_PID" 2>/dev/null || true; wait "$CH_PID" 2>/dev/null || true; fi
    if [[ -n $LOAD_PID ]]; then kill -TERM "$LOAD_PID" 2>/dev/null || true; fi
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# utime+stime of a process in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Busy clock ticks of the whole machine (all CPUs; idle, iowait and steal
# excluded), and ticks stolen by the hypervisor.
system_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
steal_ticks() { awk '/^cpu / { print $9 }' /proc/stat; }

# ClickHouse of our own on free ports; sets CH_PID and CH_HTTP.
start_clickhouse() {
    local ch=$WORK/clickhouse ports
    mkdir -p "$ch"
    ports=$(python3 -c 'import socket
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    CH_HTTP=$(sed -n 1p <<<"$ports")
    cat >"$ch/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>$ch/server.log</log><errorlog>$ch/error.log</errorlog></logger>
    <http_port>$CH_HTTP</http_port><tcp_port>$(sed -n 2p <<<"$ports")</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>$ch/data/</path><tmp_path>$ch/tmp/</tmp_path>
    <mark_cache_size>536870912</mark_cache_size>
    <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
    <profiles><default></default></profiles><quotas><default></default></quotas>
</yandex>
XML
    (cd "$ch" && exec /usr/sbin/clickhouse-server --config-file="$ch/config.xml" >/dev/null 2>&1) &
    CH_PID=$!
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$CH_HTTP/?query=SELECT%201" >/dev/null && return
        sleep 0.1
    done
    echo "ingest.sh: ClickHouse did not start: $(cat "$ch/error.log" 2>/dev/null)" >&2
    exit 1
}
# Runs a statement on our ClickHouse.
ch_query() { curl -sf "http://127.0.0.1:$CH_HTTP/" --data-binary "$1"; }

# Times the viewer's queries against the server at $1 (its HTTP address).
time_queries() {
    local http=$1 now first ids
    now=$(date +%s%3N)
    seconds() { curl -sf -o "$WORK/answer.json" -w '%{time_total}' "http://$http$1"; }
    for window in "5 min:300000" "1 hour:3600000"; do
        local from=$((now - ${window#*:}))
        printf "          %-7s XLog page (limit 100000) %.3f s, %s points | statistics %.3f s\n" "${window%:*}" \
            "$(seconds "/api/v1/xlog?from=$from&to=$now&limit=100000")" \
            "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["points"]))' "$WORK/answer.json")" \
            "$(seconds "/api/v1/stats?from=$from&to=$now")"
    done
    # The newest point stored: its transaction and its trace.
    seconds "/api/v1/xlog?from=$((now - 300000))&to=$now&limit=100000" >/dev/null
    ids=$(python3 -c 'import json,sys; p = json.load(open(sys.argv[1]))["points"][-1]; print(p["trace_id"], p["span_id"], p["end_ms"])' "$WORK/answer.json")
    read -r trace span first <<<"$ids"
    printf "          one transaction %.3f s | one trace %.3f s\n" \
        "$(seconds "/api/v1/transactions/$trace/$span")" \
        "$(seconds "/api/v1/traces/$trace?around=$first")"
}

# One benchmark: $1 = label, $2 = taskset CPU list for the server ("" = unpinned).
bench() {
    local label=$1 cpus=$2
    local data=$WORK/data-$label out=$WORK/serve-$label.out
    local pin=()
    [[ -n $cpus ]] && pin=(taskset -c "$cpus")
    local wrap=()
    [[ -n ${SERVER_WRAPPER:-} ]] && read -ra wrap <<<"$SERVER_WRAPPER"
    : >"$out" # exists before the background job opens it
    local store=(--data "$data")
    if [[ $CLICKHOUSE == 1 ]]; then
        ch_query "DROP DATABASE IF EXISTS jvmapm" >/dev/null
        store=(--clickhouse "http://127.0.0.1:$CH_HTTP/?database=jvmapm")
    fi
    "${pin[@]}" "${wrap[@]}" "$JVMAPM" --log-level warn serve "${store[@]}" \
        --grpc 127.0.0.1:0 --http 127.0.0.1:0 ${EXTRA_SERVE_ARGS:-} >"$out" 2>"$WORK/serve-$label.err" &
    SERVER_PID=$!
    local grpc=
    for _ in $(seq 1 100); do
        grpc=$(sed -n 's/^jvmapm serve: OTLP\/gRPC on //p' "$out")
        [[ -n $grpc ]] && grep -q '^jvmapm serve: OTLP/HTTP' "$out" && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve-$label.err" >&2; echo "ingest.sh: the server exited" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n $grpc ]] || { echo "ingest.sh: the server did not report its ports within 10 s" >&2; exit 1; }

    local load=(taskset -c "$LOAD_CPUS" "$LOAD" --endpoint "http://$grpc"
        --concurrency "$CONCURRENCY" --batch "$BATCH" --connections "$CONNECTIONS" --json ${LOAD_ARGS:-})
    # In the background and awaited, so a signal to this script acts at once.
    run_load() {
        "${load[@]}" --duration "$1" >"$2" &
        LOAD_PID=$!
        wait "$LOAD_PID"
        LOAD_PID=
    }
    run_load "$WARMUP" "$WORK/warm-$label.json"
    local before after t0 t1 sys0 sys1 steal0 steal1 ch0=0 ch1=0
    before=$(cpu_ticks "$SERVER_PID")
    [[ -n $CH_PID ]] && ch0=$(cpu_ticks "$CH_PID")
    sys0=$(system_ticks)
    steal0=$(steal_ticks)
    t0=$(date +%s.%N)
    local warm result
    run_load "$DURATION" "$WORK/run-$label.json"
    t1=$(date +%s.%N)
    after=$(cpu_ticks "$SERVER_PID")
    [[ -n $CH_PID ]] && ch1=$(cpu_ticks "$CH_PID")
    sys1=$(system_ticks)
    steal1=$(steal_ticks)
    local hwm
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
    local http
    http=$(sed -n 's/^jvmapm serve: OTLP\/HTTP and query API on http:\/\///p' "$out")
    local queries
    queries=$(time_queries "$http")

    kill -TERM "$SERVER_PID"
    for _ in $(seq 1 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    local written
    if [[ $CLICKHOUSE == 1 ]]; then
        written=$(ch_query "SELECT intDiv(sum(bytes_on_disk), 1024) FROM system.parts WHERE active AND database = 'jvmapm'")
    else
        written=$(du -sk "$data" | cut -f1)
    fi

    warm=$(<"$WORK/warm-$label.json")
    result=$(<"$WORK/run-$label.json")
    local rate acked errors client setup wall
    client=$(sed -n 's/.*"client_cpu_s":\([0-9.]*\).*/\1/p' <<<"$result")
    setup=$(sed -n 's/.*"setup_cpu_s":\([0-9.]*\).*/\1/p' <<<"$result")
    wall=$(sed -n 's/.*"wall_s":\([0-9.]*\).*/\1/p' <<<"$result")
    rate=$(sed -n 's/.*"spans_per_s":\([0-9.]*\).*/\1/p' <<<"$result")
    # Everything stored: warm-up and measured run.
    acked=$(printf '%s\n%s\n' "$warm" "$result" | sed -n 's/.*"spans_acked":\([0-9]*\).*/\1/p' | awk '{ n += $1 } END { print n + 0 }')
    errors=$(sed -n 's/.*"errors":\({[^}]*}\).*/\1/p' <<<"$result")
    awk -v label="$label" -v rate="$rate" -v acked="$acked" -v ticks=$((after - before)) \
        -v hz="$TICKS" -v t0="$t0" -v t1="$t1" -v hwm="$hwm" -v kb="$written" -v errors="$errors" \
        -v sys=$((sys1 - sys0)) -v client="${client:-0}" -v setup="${setup:-0}" -v wall="$wall" \
        -v steal=$((steal1 - steal0)) -v ch=$((ch1 - ch0)) 'BEGIN {
        # The server idles while the load generator starts: its CPU is divided
        # by the generator'"'"'s own timed run; the machine'"'"'s by the whole window.
        window = t1 - t0; cores = ticks / hz / wall
        per_core = cores > 0 ? rate / cores : 0
        printf "%-9s %10.0f spans/s acked | server %.2f cores | %9.0f spans/s per core | peak RSS %.1f MiB | data %.1f MiB (%.0f B/span) | errors %s\n",
            label, rate, cores, per_core, hwm / 1024, kb / 1024, (acked > 0 ? kb * 1024 / acked : 0), errors
        # Other processes busy during the run disturb the figures: say so.
        printf "          load generator %.2f cores | rest of the machine %.2f cores | hypervisor steal %.2f cores\n",
            client / wall, (sys / hz - ticks / hz - client - setup - ch / hz) / window, steal / hz / window
        if (ch > 0) printf "          ClickHouse server %.2f cores\n", ch / hz / wall
    }'
    echo "          load: $result"
    echo "$queries"
}

[[ $CLICKHOUSE == 1 ]] && start_clickhouse
echo "ingest.sh: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'); ${DURATION}s runs after ${WARMUP}s warm-up; concurrency $CONCURRENCY, batch $BATCH, $CONNECTIONS connection(s)"
bench pinned "$SERVER_CPUS"
if [[ $UNPINNED == 1 ]]; then
    bench unpinned ""
fi
