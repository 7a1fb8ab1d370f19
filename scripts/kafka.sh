#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker+controller) for the test
# suite: no Docker, only Java 17+ and Maven (jars come from Maven Central).
#
# usage: scripts/kafka.sh start|stop|status|fetch
#        scripts/kafka.sh run MAIN_CLASS [ARGS...]   # run a class from the jars
#
#   fetch   download the broker jars once into
#           ${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}/kafka-<version>/libs
#   start   fetch if needed, format a fresh state dir, start the broker in the
#           background, wait until it serves, print the bootstrap address
#           (127.0.0.1:$KAFKA_PORT) on stdout
#   stop    stop the broker (SIGTERM, then SIGKILL) and remove the state dir
#           (kept with KAFKA_KEEP_STATE=1: a later `start` with the same
#           setting brings the same broker back, topics and offsets intact)
#   status  exit 0 and print the bootstrap address if it runs, exit 1 if not
#   run     e.g. run org.apache.kafka.tools.TopicCommand --bootstrap-server
#           127.0.0.1:39092 --list   (ConsoleProducer, consumer.ConsoleConsumer…)
#
# Environment (all optional):
#   SWITCHYARD_CACHE       cache root                  ($HOME/.cache/switchyard)
#   KAFKA_STATE_DIR        config, data, log, pid      (/tmp/switchyard-kafka)
#   KAFKA_PORT             PLAINTEXT listener port     (39092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port       (KAFKA_PORT + 1)
#   KAFKA_START_TIMEOUT    seconds to wait for ready   (90)
#   KAFKA_STOP_TIMEOUT     seconds before SIGKILL      (30)
#   KAFKA_HEAP_OPTS        JVM heap                    (-Xms256m -Xmx1g)
#   KAFKA_AUTO_CREATE_TOPICS  create topics on first use (true)
#   KAFKA_JVM_OPTS         extra JVM options for the broker
#   KAFKA_KEEP_STATE       1: `stop` keeps the state dir, `start` reuses it
#   JAVA_HOME              Java 17+ to use (else `java` on PATH)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
POM="$SCRIPT_DIR/kafka/pom.xml"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { printf 'kafka.sh: error: %s\n' "$*" >&2; exit 1; }

[[ -f "$POM" ]] || die "missing $POM"
# The pom is the single place the version is pinned.
KAFKA_VERSION=$(sed -n 's:.*<kafka\.version>\([^<]*\)</kafka\.version>.*:\1:p' "$POM" | head -n1)
[[ -n "$KAFKA_VERSION" ]] || die "cannot read <kafka.version> from $POM"

CACHE_ROOT=${SWITCHYARD_CACHE:-${HOME:-/tmp}/.cache/switchyard}
KAFKA_DIST="$CACHE_ROOT/kafka-$KAFKA_VERSION"
LIBS="$KAFKA_DIST/libs"
STATE_DIR=${KAFKA_STATE_DIR:-/tmp/switchyard-kafka}
HOST=127.0.0.1
PORT=${KAFKA_PORT:-39092}
CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}
EXTRA_JVM_OPTS=${KAFKA_JVM_OPTS:-}
KEEP_STATE=${KAFKA_KEEP_STATE:-0}

PID_FILE="$STATE_DIR/kafka.pid"
LOG_FILE="$STATE_DIR/kafka.log"
CONFIG="$STATE_DIR/server.properties"
MARKER="$STATE_DIR/.switchyard-kafka"   # only dirs carrying it get rm -rf'd
READY_LINE='Kafka Server started'       # logged by KafkaRaftServer.startup()
BOOTSTRAP="$HOST:$PORT"

# ---------------------------------------------------------------- helpers

java_bin() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    printf '%s\n' "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    command -v java
  else
    die "java not found: install a JDK 17+ (apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
  fi
}

check_java() {
  local java ver major
  java=$(java_bin)
  ver=$("$java" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)
  major=${ver%%.*}
  if [[ "$major" == 1 ]]; then major=$(cut -d. -f2 <<<"$ver"); fi
  [[ "$major" =~ ^[0-9]+$ ]] || die "cannot tell the version of $java ('$ver')"
  ((major >= 17)) || die "Kafka $KAFKA_VERSION needs Java 17+, $java is $ver"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# pid of our broker if it runs, else nothing (a stale pid file is ignored).
broker_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 0
  pid=$(<"$PID_FILE")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  # Guard against pid reuse: it must be a JVM running kafka.Kafka.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 0
  printf '%s\n' "$pid"
}

is_ready() { [[ -f "$LOG_FILE" ]] && grep -q "$READY_LINE" "$LOG_FILE" && port_open "$PORT"; }

log_tail() {
  local f=${1:-$LOG_FILE}
  [[ -f "$f" ]] || return 0
  printf -- '---- last 40 lines of %s ----\n' "$f" >&2
  tail -n 40 "$f" >&2 || true
  printf -- '---- end of %s ----\n' "$f" >&2
}

remove_state_dir() {
  [[ -e "$STATE_DIR" ]] || return 0
  case "$(cd "$STATE_DIR" && pwd -P)" in
    / | "${HOME:-/}" | /tmp | /root | /home | /usr | /var | /etc) die "refusing to remove $STATE_DIR" ;;
  esac
  if [[ -f "$MARKER" ]] || [[ -z "$(ls -A "$STATE_DIR")" ]]; then
    rm -rf -- "$STATE_DIR"
  else
    die "$STATE_DIR exists and was not made by this script; remove it or set KAFKA_STATE_DIR"
  fi
}

# ---------------------------------------------------------------- fetch

cmd_fetch() {
  if [[ -f "$LIBS/.complete" ]]; then
    [[ "${1:-}" == quiet ]] || log "Kafka $KAFKA_VERSION jars already in $LIBS"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found: install Maven (apt-get install maven)"
  check_java
  mkdir -p "$KAFKA_DIST"

  # Serialize concurrent fetches.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$KAFKA_DIST/.fetch.lock"
    flock 9
    if [[ -f "$LIBS/.complete" ]]; then
      exec 9>&-
      log "Kafka $KAFKA_VERSION jars already in $LIBS"
      return 0
    fi
  fi

  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  local tmp attempt ok=0
  tmp=$(mktemp -d "$KAFKA_DIST/libs.tmp.XXXXXX")
  for attempt in 1 2 3; do
    # -U on retries: Maven otherwise remembers a failed download and does
    # not try it again. (sed: Debian's Maven 3.8 prints bare colour resets
    # even in batch mode.)
    if mvn -B -q $([[ $attempt -gt 1 ]] && echo -U) -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" </dev/null 2>&1 |
        { sed 's/\x1b\[[0-9;]*m//g' | grep -v '^[[:space:]]*$' >&2 || true; }; then
      ok=1
      break
    fi
    log "mvn failed (attempt $attempt of 3)"
    if ((attempt < 3)); then sleep $((attempt * 3)); fi
  done
  if ((ok == 0)) || [[ ! -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
    rm -rf -- "$tmp"
    exec 9>&-
    die "could not download Kafka $KAFKA_VERSION with mvn (is Maven Central reachable?)"
  fi
  touch "$tmp/.complete"
  rm -rf -- "$LIBS"
  mv -- "$tmp" "$LIBS"
  exec 9>&-
  log "Kafka $KAFKA_VERSION: $(find "$LIBS" -name '*.jar' | wc -l) jars, $(du -sh "$LIBS" | cut -f1) in $LIBS"
}

# ---------------------------------------------------------------- start

write_config() {
  cat >"$CONFIG" <<EOF
# Written by scripts/kafka.sh: single-node KRaft (combined broker+controller).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$STATE_DIR/data

num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=${KAFKA_AUTO_CREATE_TOPICS:-true}
delete.topic.enable=true

# Internal topics on a single node: replication factor 1 and few partitions
# (the defaults of 50 partitions make the first group/transaction slow).
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1

group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF

  cat >"$STATE_DIR/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
EOF
}

cmd_start() {
  local pid
  pid=$(broker_pid)
  if [[ -n "$pid" ]]; then
    if is_ready; then
      log "already running (pid $pid)"
      printf '%s\n' "$BOOTSTRAP"
      return 0
    fi
    die "a broker (pid $pid) is starting or unhealthy in $STATE_DIR; run '$0 stop' first"
  fi

  cmd_fetch quiet
  check_java
  local java
  java=$(java_bin)

  local p
  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "port $HOST:$p is already in use (set KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
    fi
  done

  local log4j="-Dlog4j2.configurationFile=$STATE_DIR/log4j2.properties"
  if [[ "$KEEP_STATE" == 1 && -f "$MARKER" && -f "$STATE_DIR/data/meta.properties" ]]; then
    log "reusing the state in $STATE_DIR (KAFKA_KEEP_STATE=1)"
  else
    remove_state_dir
    mkdir -p "$STATE_DIR/data"
    touch "$MARKER"
    write_config

    local cluster_id
    # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding.
    cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')

    log "formatting $STATE_DIR/data (cluster id $cluster_id)"
    if ! "$java" -Xmx256m "$log4j" -cp "$LIBS/*" kafka.tools.StorageTool \
        format -t "$cluster_id" -c "$CONFIG" </dev/null >"$STATE_DIR/format.log" 2>&1; then
      log_tail "$STATE_DIR/format.log"
      die "formatting the KRaft storage failed"
    fi
  fi

  log "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (controller $HOST:$CONTROLLER_PORT, log $LOG_FILE)"
  local t0=$SECONDS t0_ms
  t0_ms=$(date +%s%3N)
  # shellcheck disable=SC2086 # HEAP_OPTS / EXTRA_JVM_OPTS are word lists.
  nohup "$java" $HEAP_OPTS \
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    "$log4j" -Dkafka.logs.dir="$STATE_DIR" $EXTRA_JVM_OPTS \
    -cp "$LIBS/*" kafka.Kafka "$CONFIG" \
    </dev/null >"$LOG_FILE" 2>&1 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"

  # Ready = the broker logged "Kafka Server started" (KafkaRaftServer logs it
  # once the broker has caught up with the metadata log, been unfenced and
  # opened its listeners) and the PLAINTEXT port accepts connections.
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log_tail
      rm -f -- "$PID_FILE"
      die "the broker exited during startup (see $LOG_FILE)"
    fi
    if is_ready; then
      break
    fi
    if ((SECONDS - t0 >= START_TIMEOUT)); then
      log_tail
      kill -KILL "$pid" 2>/dev/null || true
      rm -f -- "$PID_FILE"
      die "the broker was not ready after ${START_TIMEOUT}s (see $LOG_FILE)"
    fi
    sleep 0.2
  done
  local ms=$(($(date +%s%3N) - t0_ms))
  log "ready after $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s (pid $pid)"
  printf '%s\n' "$BOOTSTRAP"
}

# ---------------------------------------------------------------- stop / status

cmd_stop() {
  local pid
  pid=$(broker_pid)
  if [[ -n "$pid" ]]; then
    log "stopping the broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local t0=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS - t0 >= STOP_TIMEOUT)); then
        log "still running after ${STOP_TIMEOUT}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
        break
      fi
      sleep 0.2
    done
    log "stopped"
  else
    log "not running"
  fi
  if [[ "$KEEP_STATE" == 1 ]]; then
    rm -f -- "$PID_FILE"
    log "state kept in $STATE_DIR (KAFKA_KEEP_STATE=1)"
  else
    remove_state_dir
  fi
}

cmd_status() {
  local pid
  pid=$(broker_pid)
  if [[ -z "$pid" ]]; then
    log "not running"
    return 1
  fi
  if is_ready; then
    log "running (pid $pid), Kafka $KAFKA_VERSION, state $STATE_DIR"
    printf '%s\n' "$BOOTSTRAP"
  else
    log "running (pid $pid) but not ready yet; log: $LOG_FILE"
    return 1
  fi
}

# ---------------------------------------------------------------- run

cmd_run() {
  (($# >= 1)) || die "usage: $0 run MAIN_CLASS [ARGS...]"
  cmd_fetch quiet
  local cfg="$KAFKA_DIST/tools-log4j2.properties"
  if [[ ! -f "$cfg" ]]; then
    printf '%s\n' 'status = warn' 'appender.err.type = Console' 'appender.err.name = ERR' \
      'appender.err.target = SYSTEM_ERR' 'appender.err.layout.type = PatternLayout' \
      'appender.err.layout.pattern = [%d] %p %m (%c)%n' 'rootLogger.level = WARN' \
      'rootLogger.appenderRef.err.ref = ERR' >"$cfg"
  fi
  exec "$(java_bin)" -Xmx512m -Dlog4j2.configurationFile="$cfg" -cp "$LIBS/*" "$@"
}

usage() {
  cat >&2 <<EOF
usage: $0 start|stop|status|fetch
       $0 run MAIN_CLASS [ARGS...]
Kafka $KAFKA_VERSION, bootstrap $BOOTSTRAP, state $STATE_DIR, jars $LIBS
EOF
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  run) shift; cmd_run "$@" ;;
  -h | --help | help) usage ;;
  *) usage; exit 2 ;;
esac
