#!/usr/bin/env bash
# Load benchmark of the events API (`POST /events`), side by side with a bare
# axum server that only reads and parses the JSON body
# (host/examples/bare_events.rs). The difference between the two is what
# switchyard adds: validation by the `validate` plugin, producing to Kafka
# and waiting for the broker's acknowledgement before answering 202.
#
# usage: scripts/bench-events-api.sh > result.md
#
# It installs wrk if missing, builds switchyard, the bare server and the
# plugins (release), starts a single-node Apache Kafka (scripts/kafka.sh)
# unless KAFKA_BOOTSTRAP_SERVERS names one, starts both servers, then runs
# wrk against them in turns (baseline, switchyard, baseline, switchyard, ...)
# so that both see the same machine state. It prints a Markdown report
# (per-run table, switchyard/baseline throughput ratio, machine) on stdout;
# progress goes to stderr. Everything it started is stopped on exit.
#
# Environment (all optional):
#   CONNECTIONS   wrk connections, i.e. requests in flight      (32)
#   THREADS       wrk threads                                   (2)
#   DURATION      seconds of each measured run                  (20)
#   WARMUP        seconds of the unmeasured run before each one (5; 0: none)
#   ROUNDS        measured runs per target                      (2)
#   BASELINE_ADDR    address of the bare server                 (127.0.0.1:8090)
#   SWITCHYARD_ADDR  switchyard's --http address                (127.0.0.1:8091)
#   READY_TIMEOUT    seconds to wait for switchyard's /readyz   (60)
#   KAFKA_BOOTSTRAP_SERVERS  use this cluster instead of starting one
#   SKIP_BUILD=1  use the binaries and plugins already in target/
#
# Latency depends on concurrency. wrk is a closed loop: each connection
# sends its next request only once the previous one is answered, so the
# request rate is whatever the server sustains with CONNECTIONS requests in
# flight, and p99 includes the time requests wait in the server's queues.
# With the default 32 connections the CPUs are saturated: requests/s is the
# capacity and p99 the latency at capacity. wrk cannot hold a fixed rate
# (wrk2 can; it is not packaged here); to see p99 under a lighter load,
# lower the concurrency, e.g. CONNECTIONS=4. Quote the connection count with
# any p99 figure. wrk, the servers and Kafka share this machine's CPUs, so
# compare the two targets rather than reading the absolute figures as what
# a server alone on the machine would do.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# Decimal points in wrk's output and in printf/awk, whatever the locale.
export LC_ALL=C

CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
ROUNDS=${ROUNDS:-2}
BASELINE_ADDR=${BASELINE_ADDR:-127.0.0.1:8090}
SWITCHYARD_ADDR=${SWITCHYARD_ADDR:-127.0.0.1:8091}
READY_TIMEOUT=${READY_TIMEOUT:-60}

LUA_SCRIPT="$ROOT/scripts/bench/post-events.lua"
# The same event the Lua script sends, for the smoke test before the load.
EVENT='{"userId":"u1","type":"purchase","data":{"amount":99.9}}'
SWITCHYARD_BIN="$ROOT/target/release/switchyard"
BARE_BIN="$ROOT/target/release/examples/bare_events"
PLUGINS_DIR="$ROOT/target/plugins"
TOPIC="bench.user-events"

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
    printf 'bench: error: %s\n' "$*" >&2
    exit 1
}

for var in CONNECTIONS THREADS DURATION ROUNDS READY_TIMEOUT; do
    [[ "${!var}" =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer, not '${!var}'"
done
[[ "$WARMUP" =~ ^[0-9]+$ ]] || die "WARMUP must be a whole number of seconds, not '$WARMUP'"
if [[ -n "${RATE:-}" ]]; then
    log "warning: RATE is ignored: wrk cannot hold a fixed rate; lower CONNECTIONS for a lighter load"
fi
# wrk refuses fewer connections than threads.
((THREADS <= CONNECTIONS)) || THREADS=$CONNECTIONS

# ---------------------------------------------------------------- helpers

port_open() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

log_tail() {
    [[ -f "$1" ]] || return 0
    printf -- '---- last 40 lines of %s ----\n' "$1" >&2
    tail -n 40 "$1" >&2 || true
    printf -- '---- end of %s ----\n' "$1" >&2
}

# stop_server NAME PID: SIGTERM, then SIGKILL if it is still there after
# 15 s (switchyard drains and commits on SIGTERM, which takes a moment).
stop_server() {
    local name=$1 pid=$2 waited=0
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= 150)); then
            log "$name still running after 15 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    wait "$pid" 2>/dev/null || true
}

tmp=""
bare_pid=""
switchyard_pid=""
kafka_owned=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_server bare_events "$bare_pid"
    stop_server switchyard "$switchyard_pid"
    if ((kafka_owned)); then
        scripts/kafka.sh stop >&2 || log "warning: stopping Kafka failed"
    fi
    if [[ -n "$tmp" ]]; then
        if ((rc == 0)); then
            rm -rf -- "$tmp"
        else
            log "logs and wrk outputs kept in $tmp"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
# Turn signals into an ordinary exit so that the EXIT trap cleans up.
trap 'exit 130' INT
trap 'exit 143' TERM

# parse_wrk FILE: wrk's output (with --latency) as one line
#   REQUESTS_PER_S P50_MS P99_MS NON_2XX_3XX SOCKET_ERRORS
# wrk prints times with a unit (us, ms, s, m, h), converted here to ms.
# "Non-2xx or 3xx responses: N" appears only when N > 0; "Socket errors:
# connect N, read N, write N, timeout N" only when any is > 0 (a timeout is
# a request unanswered after 2 s, missing from the latency distribution).
parse_wrk() {
    awk '
        function ms(value,   unit) {
            unit = value
            sub(/^[0-9.]+/, "", unit)
            if (unit == "us") return value / 1000
            if (unit == "ms") return value + 0
            if (unit == "s") return value * 1000
            if (unit == "m") return value * 60000
            if (unit == "h") return value * 3600000
            bad = 1
            return 0
        }
        $1 == "Requests/sec:" { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /^ *Non-2xx or 3xx responses:/ { non2xx = $NF }
        /^ *Socket errors:/ {
            for (i = 4; i <= NF; i += 2) { n = $i; sub(/,$/, "", n); errors += n }
        }
        END {
            if (bad || rps == "" || p50 == "" || p99 == "") exit 1
            printf "%.2f %.3f %.3f %d %d\n", rps, p50, p99, non2xx, errors
        }' "$1"
}

# median: the median of the numbers on stdin, one a line.
median() {
    sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) exit 1
            if (NR % 2) print v[(NR + 1) / 2]
            else print (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}

# ---------------------------------------------------------------- tools

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if ((${#missing[@]} > 0)); then
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]}, and no apt-get to install them"
    log "installing ${missing[*]}"
    sudo=""
    [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---------------------------------------------------------------- build

if [[ "${SKIP_BUILD:-}" == 1 ]]; then
    log "SKIP_BUILD=1: using the binaries and plugins already built"
else
    log "building switchyard and bare_events (release)"
    cargo build --release -p switchyard --bin switchyard --example bare_events >&2
    log "building the plugins into $PLUGINS_DIR"
    # stdout is the report's: build messages go to stderr.
    PLUGINS_OUT="$PLUGINS_DIR" scripts/build-plugins.sh "$SWITCHYARD_BIN" >&2
fi
for f in "$SWITCHYARD_BIN" "$BARE_BIN"; do
    [[ -x "$f" ]] || die "$f is missing: run without SKIP_BUILD"
done
[[ -f "$PLUGINS_DIR/validate.wasm" ]] || die "$PLUGINS_DIR/validate.wasm is missing: run without SKIP_BUILD"

# ---------------------------------------------------------------- servers

for addr in "$BASELINE_ADDR" "$SWITCHYARD_ADDR"; do
    # Otherwise the readiness checks below could be answered by a stranger.
    ! port_open "$addr" || die "$addr is already in use (set BASELINE_ADDR / SWITCHYARD_ADDR)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench.XXXXXX")

if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
    bootstrap=$KAFKA_BOOTSTRAP_SERVERS
    kafka_desc="external cluster at $bootstrap"
else
    # A broker that already runs (e.g. left by the tests) is used as it is
    # and left running; one this script starts is stopped on exit.
    scripts/kafka.sh status >/dev/null 2>&1 || kafka_owned=1
    bootstrap=$(scripts/kafka.sh start) # the bootstrap address on stdout
    kafka_version=$(sed -n 's:.*<kafka\.version>\([^<]*\)</kafka\.version>.*:\1:p' scripts/kafka/pom.xml | head -n1)
    kafka_desc="single-node Apache Kafka ${kafka_version:-?} on this machine (scripts/kafka.sh)"
fi
log "Kafka: $bootstrap"

# TOML basic strings would need escaping for these.
[[ "$PLUGINS_DIR" != *[\"\\]* ]] || die "the checkout's path must not contain '\"' or '\\'"
routes="$tmp/routes.toml"
cat >"$routes" <<EOF
plugins_dir = "$PLUGINS_DIR"
[events_api]
ingest_route = "events-ingest"
recent_buffer = "recent-events"

[[routes]]
name = "events-ingest"
source = { http = true }
sink = { topic = "$TOPIC" }
[[routes.chain]]
plugin = "validate"
config.fields.userId = { required = true, type = "string" }
config.fields.type = { required = true, type = "string", one_of = ["login", "logout", "purchase"] }
config.fields.timestamp = { type = "string", format = "rfc3339", default = "now" }
config.fields.data = { type = "object", nullable = true }

[[routes]]
name = "events-recent"
source = { topics = ["$TOPIC"] }
sink = { buffer = "recent-events", capacity = 1000 }
EOF

switchyard_log="$tmp/switchyard.log"
log "starting switchyard on $SWITCHYARD_ADDR (log $switchyard_log)"
# NO_COLOR: plain text in the log file (tracing-subscriber honours it).
NO_COLOR=1 "$SWITCHYARD_BIN" run --config "$routes" --brokers "$bootstrap" --http "$SWITCHYARD_ADDR" \
    </dev/null >"$switchyard_log" 2>&1 &
switchyard_pid=$!

bare_log="$tmp/bare_events.log"
log "starting bare_events on $BASELINE_ADDR"
"$BARE_BIN" --addr "$BASELINE_ADDR" </dev/null >"$bare_log" 2>&1 &
bare_pid=$!

# wait_ready NAME PID LOG CHECK-COMMAND...: until the check succeeds, failing
# with the log's tail if the server exits or READY_TIMEOUT passes.
wait_ready() {
    local name=$1 pid=$2 logfile=$3 t0=$SECONDS
    shift 3
    until "$@"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log_tail "$logfile"
            die "$name exited during startup (log above)"
        fi
        if ((SECONDS - t0 >= READY_TIMEOUT)); then
            log_tail "$logfile"
            if [[ "$name" == switchyard ]]; then
                log "its /readyz answers: $(curl -s --max-time 2 "http://$SWITCHYARD_ADDR/readyz" || echo '(nothing)')"
            fi
            die "$name was not ready after ${READY_TIMEOUT}s (log above)"
        fi
        sleep 0.2
    done
    log "$name ready after $((SECONDS - t0)) s"
}
wait_ready bare_events "$bare_pid" "$bare_log" port_open "$BASELINE_ADDR"
wait_ready switchyard "$switchyard_pid" "$switchyard_log" \
    curl -sf --max-time 2 -o /dev/null "http://$SWITCHYARD_ADDR/readyz"

# One event by hand first: a wrong answer here is clearer than a wrk run
# full of errors.
for target in baseline switchyard; do
    if [[ $target == baseline ]]; then addr=$BASELINE_ADDR; else addr=$SWITCHYARD_ADDR; fi
    status=$(curl -s --max-time 10 -o "$tmp/smoke-$target.body" -w '%{http_code}' \
        -H 'Content-Type: application/json' --data-binary "$EVENT" "http://$addr/events" || true)
    if [[ "$status" != 202 ]]; then
        [[ $target == switchyard ]] && log_tail "$switchyard_log"
        die "$target answered POST /events with '$status' instead of 202: $(head -c 500 "$tmp/smoke-$target.body" 2>/dev/null)"
    fi
done
log "both targets answer POST /events with 202"

# ---------------------------------------------------------------- load

# Figures by "TARGET:ROUND"; socket errors are not kept: any fails the run.
declare -A rps p50 p99 non2xx

# run_wrk TARGET ADDR SECONDS OUTPUT-FILE
run_wrk() {
    if ! wrk -t"$THREADS" -c"$CONNECTIONS" -d"$3s" --latency -s "$LUA_SCRIPT" \
        "http://$2/events" >"$4" 2>&1; then
        cat "$4" >&2
        die "wrk failed against $1"
    fi
}

for ((round = 1; round <= ROUNDS; round++)); do
    for target in baseline switchyard; do
        if [[ $target == baseline ]]; then
            addr=$BASELINE_ADDR pid=$bare_pid logfile=$bare_log
        else
            addr=$SWITCHYARD_ADDR pid=$switchyard_pid logfile=$switchyard_log
        fi
        if ((WARMUP > 0)); then
            log "round $round/$ROUNDS, $target: ${WARMUP} s warm-up"
            run_wrk "$target" "$addr" "$WARMUP" "$tmp/wrk-$target-$round-warmup.txt"
        fi
        log "round $round/$ROUNDS, $target: ${DURATION} s, $CONNECTIONS connections"
        out="$tmp/wrk-$target-$round.txt"
        run_wrk "$target" "$addr" "$DURATION" "$out"
        kill -0 "$pid" 2>/dev/null || {
            log_tail "$logfile"
            die "$target exited during the run"
        }
        figures=$(parse_wrk "$out") || {
            cat "$out" >&2
            die "cannot read wrk's output (above)"
        }
        read -r r a b n e <<<"$figures"
        key="$target:$round"
        rps[$key]=$r p50[$key]=$a p99[$key]=$b non2xx[$key]=$n
        log "  $r requests/s, p50 $a ms, p99 $b ms, non-2xx $n, socket errors $e"
        # Failed requests make the figures meaningless (an error answer is
        # cheap, a timeout is missing from the latency distribution).
        if ((n > 0 || e > 0)); then
            cat "$out" >&2
            [[ $target == switchyard ]] && log_tail "$switchyard_log"
            die "$target: $n non-2xx responses and $e socket errors in round $round (wrk output above)"
        fi
    done
done

# ---------------------------------------------------------------- report

# fig ARRAY-NAME TARGET: that figure of every round of TARGET, one a line.
fig() {
    local -n values=$1
    local round
    for ((round = 1; round <= ROUNDS; round++)); do
        printf '%s\n' "${values[$2:$round]}"
    done
}

# fmt_ms MS: three significant digits or so (0.212, 1.93, 41.2, 1050).
fmt_ms() { awk -v v="$1" 'BEGIN { printf (v < 1 ? "%.3f" : v < 10 ? "%.2f" : v < 100 ? "%.1f" : "%.0f"), v }'; }

base_rps=$(fig rps baseline | median)
sy_rps=$(fig rps switchyard | median)
sy_p99=$(fig p99 switchyard | median)
sy_p99_max=$(fig p99 switchyard | sort -g | tail -n1)
base_p99=$(fig p99 baseline | median)

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
os=$(awk -F= '$1 == "PRETTY_NAME" { gsub(/"/, "", $2); print $2 }' /etc/os-release 2>/dev/null || true)
revision=$(git describe --always --dirty 2>/dev/null || echo unknown)

cat <<EOF
## Events API under load ($(date -u +%Y-%m-%d))

\`scripts/bench-events-api.sh\` (revision $revision): \`wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency\`
with \`scripts/bench/post-events.lua\` (\`POST /events\`, \`$EVENT\`),
after a ${WARMUP} s warm-up, $ROUNDS rounds, targets alternating. Baseline:
\`bare_events\` (axum, reads and parses the body, answers 202). Switchyard:
release build, route \`events-ingest\` (\`validate\` plugin, sink
\`$TOPIC\`) answering 202 once Kafka acknowledged the record; Kafka:
$kafka_desc.

| target | round | requests/s | p50 ms | p99 ms | non-2xx |
|---|---|---|---|---|---|
EOF
for ((round = 1; round <= ROUNDS; round++)); do
    for target in baseline switchyard; do
        key="$target:$round"
        printf '| %s | %d | %.0f | %s | %s | %d |\n' "$target" "$round" "${rps[$key]}" \
            "$(fmt_ms "${p50[$key]}")" "$(fmt_ms "${p99[$key]}")" "${non2xx[$key]}"
    done
done
printf '\nswitchyard / baseline requests/s (medians over rounds): %.0f / %.0f = **%.2f**\n' \
    "$sy_rps" "$base_rps" "$(awk -v s="$sy_rps" -v b="$base_rps" 'BEGIN { print s / b }')"
printf 'p99 at %d connections (median over rounds): switchyard **%s ms** (worst round %s ms), baseline %s ms\n' \
    "$CONNECTIONS" "$(fmt_ms "$sy_p99")" "$(fmt_ms "$sy_p99_max")" "$(fmt_ms "$base_p99")"
cat <<EOF

- date: $(date -u '+%Y-%m-%d %H:%M UTC')
- CPUs (\`nproc\`): $(nproc), ${cpu_model:-model unknown}
- memory (\`free -g\`): $(free -g | awk '$1 == "Mem:" { print $2 " GiB total, " $7 " GiB available" }')
- ${os:-OS unknown}, kernel $(uname -r)
- wrk, both servers and Kafka share these CPUs
EOF
