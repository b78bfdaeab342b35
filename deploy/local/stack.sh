#!/usr/bin/env bash
# Local service stack for rdqc, as plain processes (no Docker): Kafka 4.1 (single-node KRaft),
# Redis and MinIO, all on 127.0.0.1.
#
#   bash deploy/local/stack.sh up      start what is not running, wait until everything answers,
#                                      write $RDQC_STACK_DIR/stack.env
#   bash deploy/local/stack.sh down    stop the processes this script started
#   bash deploy/local/stack.sh status  show what is running
#
# State (data, logs, pid files, credentials) lives in $RDQC_STACK_DIR (default <repo>/.stack).
# Downloads and builds (Kafka jars, the MinIO binary) are cached in $RDQC_CACHE_DIR
# (default ~/.cache/rdqc), so only the first `up` on a machine fetches or builds anything.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO_ROOT/deploy/local
STACK_DIR=${RDQC_STACK_DIR:-$REPO_ROOT/.stack}
CACHE_DIR=${RDQC_CACHE_DIR:-$HOME/.cache/rdqc}
LOG_DIR=$STACK_DIR/logs
RUN_DIR=$STACK_DIR/run
ENV_FILE=$STACK_DIR/stack.env

KAFKA_VERSION=4.1.1
KAFKA_LIB=$CACHE_DIR/kafka-$KAFKA_VERSION/lib
KAFKA_PORT=${RDQC_STACK_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${RDQC_STACK_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_HEAP_OPTS=${RDQC_STACK_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
KAFKA_READY_TIMEOUT=90

REDIS_PORT=${RDQC_STACK_REDIS_PORT:-16379}

# The Go module proxy serves none of MinIO's RELEASE.* tags (they are not semver), so we pin the
# pseudo-version of a commit of github.com/minio/minio instead.
MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_BIN=$CACHE_DIR/bin/minio
MINIO_PORT=${RDQC_STACK_MINIO_PORT:-19000}
MINIO_CONSOLE_PORT=${RDQC_STACK_MINIO_CONSOLE_PORT:-$((MINIO_PORT + 1))}

# An already running service must answer within this many seconds, or it is restarted.
RUNNING_CHECK_TIMEOUT=15
STOP_TIMEOUT=15

SERVICES=(kafka redis minio)

# ---------------------------------------------------------------------------------------------
# helpers

say() { printf 'stack: %s\n' "$*"; }
die() {
    printf 'stack: error: %s\n' "$*" >&2
    exit 1
}

# Path relative to the repo when it is inside it, for shorter messages.
show() { printf '%s' "${1#"$REPO_ROOT"/}"; }

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

service_port() {
    case $1 in
        kafka) echo "$KAFKA_PORT" ;;
        redis) echo "$REDIS_PORT" ;;
        minio) echo "$MINIO_PORT" ;;
    esac
}

service_ports() {
    case $1 in
        kafka) echo "$KAFKA_PORT $KAFKA_CONTROLLER_PORT" ;;
        redis) echo "$REDIS_PORT" ;;
        minio) echo "$MINIO_PORT $MINIO_CONSOLE_PORT" ;;
    esac
}

# A word that the service's command line contains, so a recycled pid is not mistaken for ours.
service_marker() {
    case $1 in
        kafka) echo "kafka.Kafka" ;;
        redis) echo "redis-server" ;;
        minio) echo "minio" ;;
    esac
}

# True when the pid is a live process (a zombie counts as dead).
pid_alive() {
    local pid=$1 stat
    [[ -r /proc/$pid/stat ]] || return 1
    stat=$(<"/proc/$pid/stat") || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Print the pid of the service if its pid file points at a live process of that service.
running_pid() {
    local svc=$1 file pid cmdline
    file=$(pid_file "$svc")
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"$(service_marker "$svc")"* ]] || return 1
    echo "$pid"
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

check_ports_free() {
    local svc=$1 port
    for port in $(service_ports "$svc"); do
        if port_in_use "$port"; then
            die "$svc: port $port on 127.0.0.1 is already taken by a process this stack did not" \
                "start; stop it or pick other ports (RDQC_STACK_KAFKA_PORT, RDQC_STACK_REDIS_PORT," \
                "RDQC_STACK_MINIO_PORT)"
        fi
    done
}

# Start a command detached from this shell (own session), output to the service log.
launch() {
    local svc=$1 log
    shift
    log=$(log_file "$svc")
    [[ -f $log ]] && mv -f "$log" "$log.1"
    printf '=== %s: starting %s\n' "$(date -Is)" "$svc" >"$log"
    # 9>&- : the service must not inherit the stack lock (see take_lock).
    setsid "$@" >>"$log" 2>&1 </dev/null 9>&- &
    echo $! >"$(pid_file "$svc")"
}

print_log_tail() {
    local log
    log=$(log_file "$1")
    printf 'stack: --- last 40 lines of %s ---\n' "$(show "$log")" >&2
    tail -n 40 "$log" >&2 2>/dev/null || true
    printf 'stack: --- end of %s ---\n' "$(show "$log")" >&2
}

elapsed_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# Replace @NAME@ tokens in a template with the values given as NAME=value arguments.
render() {
    local template=$1 out=$2 text pair
    shift 2
    text=$(<"$template")
    for pair in "$@"; do
        text=${text//"@${pair%%=*}@"/"${pair#*=}"}
    done
    printf '%s\n' "$text" >"$out.tmp"
    mv -f "$out.tmp" "$out"
}

check_python() {
    if [[ -x $REPO_ROOT/.venv/bin/python ]]; then
        echo "$REPO_ROOT/.venv/bin/python"
    else
        command -v python3 || die "no python: run \`make setup\` first"
    fi
}

as_root() {
    if [[ $(id -u) == 0 ]]; then
        "$@"
    else
        sudo "$@"
    fi
}

# ---------------------------------------------------------------------------------------------
# prerequisites (cached; a warm machine fetches and builds nothing)

kafka_jars_stamp() { printf '%s/.complete' "$KAFKA_LIB"; }

kafka_jars_ready() {
    local stamp
    stamp=$(kafka_jars_stamp)
    [[ -f $stamp && $(<"$stamp") == "$(sha256sum <"$HERE/kafka/pom.xml")" ]]
}

fetch_kafka_jars() {
    local tmp=$KAFKA_LIB.tmp.$$
    command -v mvn >/dev/null || die "kafka: mvn not found (needed once to fetch the Kafka jars)"
    rm -rf "$tmp"
    mvn -q -B -f "$HERE/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$tmp"
    sha256sum <"$HERE/kafka/pom.xml" >"$tmp/.complete"
    rm -rf "$KAFKA_LIB"
    mkdir -p "$(dirname "$KAFKA_LIB")"
    mv "$tmp" "$KAFKA_LIB"
}

minio_ready() {
    [[ -x $MINIO_BIN ]] || return 1
    # The binary records the module version it was built from; rebuild when the pin changes.
    if command -v go >/dev/null; then
        go version -m "$MINIO_BIN" 2>/dev/null | awk -v m="$MINIO_MODULE" -v v="$MINIO_VERSION" '
            $1 == "mod" && $2 == m && $3 == v { found = 1 }
            END { exit !found }'
    fi
}

build_minio() {
    local tmp=$CACHE_DIR/bin.tmp.$$
    command -v go >/dev/null || die "minio: go not found (needed once to build the MinIO binary)"
    rm -rf "$tmp"
    mkdir -p "$tmp" "$(dirname "$MINIO_BIN")"
    GOBIN=$tmp go install "$MINIO_MODULE@$MINIO_VERSION"
    mv -f "$tmp/minio" "$MINIO_BIN"
    rm -rf "$tmp"
}

ensure_redis_server() {
    command -v redis-server >/dev/null && return 0
    say "redis: installing redis-server with apt-get"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server
}

# Fetch/build what the given services need, the slow parts in parallel.
ensure_prereqs() {
    local svc bg_pids=() names=() i failed=0
    for svc in "$@"; do
        case $svc in
            kafka)
                command -v java >/dev/null || die "kafka: java (17+) not found"
                if ! kafka_jars_ready; then
                    say "kafka: fetching Kafka $KAFKA_VERSION jars into $KAFKA_LIB (once)"
                    (fetch_kafka_jars) >"$LOG_DIR/kafka-fetch.log" 2>&1 &
                    bg_pids+=($!) names+=(kafka-fetch)
                fi
                ;;
            minio)
                if ! minio_ready; then
                    say "minio: building $MINIO_MODULE@$MINIO_VERSION into $MINIO_BIN (once, minutes)"
                    (build_minio) >"$LOG_DIR/minio-build.log" 2>&1 &
                    bg_pids+=($!) names+=(minio-build)
                fi
                ;;
            redis) ensure_redis_server ;;
        esac
    done
    for i in "${!bg_pids[@]}"; do
        if ! wait "${bg_pids[$i]}"; then
            failed=1
            print_log_tail "${names[$i]}"
        fi
    done
    ((failed == 0)) || die "could not prepare the services (see the logs above)"
}

# ---------------------------------------------------------------------------------------------
# services

start_kafka() {
    local dir=$STACK_DIR/kafka data=$STACK_DIR/kafka/data props cluster_id
    # KAFKA_HEAP_OPTS is split into words on purpose. TieredStopAtLevel=1 (C1 JIT only) halves
    # the broker's start time on a small machine; peak throughput does not matter here.
    # shellcheck disable=SC2206
    local java_opts=(
        $KAFKA_HEAP_OPTS
        -XX:TieredStopAtLevel=1
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
        -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=$HERE/kafka/log4j2.properties"
        -cp "$KAFKA_LIB/*"
    )
    props=$dir/server.properties
    mkdir -p "$dir"
    render "$HERE/kafka/server.properties.template" "$props" \
        "KAFKA_PORT=$KAFKA_PORT" "CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT" "DATA_DIR=$data"

    if [[ ! -f $data/meta.properties ]]; then
        # A data dir without meta.properties is an interrupted format: start over.
        rm -rf "$data"
        # Kafka cluster ids are 16 random bytes, base64url without padding (like
        # `kafka-storage random-uuid`), and must not start with '-'.
        cluster_id=-
        while [[ $cluster_id == -* ]]; do
            cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
        done
        # Static quorum (controller.quorum.voters), so no --standalone / --initial-controllers.
        if ! java "${java_opts[@]}" kafka.tools.StorageTool format \
            --cluster-id "$cluster_id" --config "$props" >"$LOG_DIR/kafka-format.log" 2>&1; then
            print_log_tail kafka-format
            die "kafka: formatting the storage in $(show "$data") failed"
        fi
    fi
    launch kafka java "${java_opts[@]}" kafka.Kafka "$props"
}

start_redis() {
    local data=$STACK_DIR/redis
    mkdir -p "$data"
    launch redis redis-server \
        --bind 127.0.0.1 --port "$REDIS_PORT" \
        --save '' --appendonly no --daemonize no \
        --dir "$data" --logfile ''
}

minio_credentials_file() { printf '%s/minio/credentials.env' "$STACK_DIR"; }

# Generated once per stack dir and reused, so restarts keep the same keys.
ensure_minio_credentials() {
    local file
    file=$(minio_credentials_file)
    if [[ ! -f $file ]]; then
        mkdir -p "$(dirname "$file")"
        (
            umask 077
            printf 'MINIO_ROOT_USER=rdqc-%s\nMINIO_ROOT_PASSWORD=%s\n' \
                "$(random_hex 6)" "$(random_hex 20)" >"$file.tmp"
        )
        mv -f "$file.tmp" "$file"
    fi
    # shellcheck disable=SC1090
    source "$file"
    export MINIO_ROOT_USER MINIO_ROOT_PASSWORD
}

start_minio() {
    local data=$STACK_DIR/minio/data
    mkdir -p "$data"
    launch minio env MINIO_UPDATE=off \
        "$MINIO_BIN" server "$data" \
        --address "127.0.0.1:$MINIO_PORT" --console-address "127.0.0.1:$MINIO_CONSOLE_PORT"
}

# Wait until the given services answer: wait_ready TIMEOUT verbose|quiet SERVICE...
# Reports each service (failures always) and leaves the failed ones in the global FAILED array.
wait_ready() {
    local timeout=$1 verbose=$2 svc pid status name rest targets=()
    shift 2
    FAILED=()
    for svc in "$@"; do
        pid=$(running_pid "$svc") || pid=0
        targets+=("$svc=$pid:$(service_port "$svc")")
    done
    while read -r status name rest; do
        if [[ $status == ok ]]; then
            [[ $verbose == quiet ]] || say "$name: ready ($rest)"
        else
            say "$name: NOT ready: $rest"
            FAILED+=("$name")
        fi
    done < <("$(check_python)" "$HERE/check.py" --wait "$timeout" "${targets[@]}" || true)
}

# Stop services: TERM, wait up to STOP_TIMEOUT seconds, then KILL. Only pids from our pid files.
stop_services() {
    local svc pid i deadline pids=() names=()
    for svc in "$@"; do
        if pid=$(running_pid "$svc"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid") names+=("$svc")
        else
            rm -f "$(pid_file "$svc")"
        fi
    done
    deadline=$((SECONDS + STOP_TIMEOUT))
    for i in "${!pids[@]}"; do
        while pid_alive "${pids[$i]}" && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if pid_alive "${pids[$i]}"; then
            say "${names[$i]}: did not stop within ${STOP_TIMEOUT}s, killing pid ${pids[$i]}"
            kill -KILL "${pids[$i]}" 2>/dev/null || true
            while pid_alive "${pids[$i]}"; do sleep 0.1; done
        fi
        rm -f "$(pid_file "${names[$i]}")"
        say "${names[$i]}: stopped (pid ${pids[$i]})"
    done
}

write_env_file() {
    ensure_minio_credentials
    (
        umask 077
        cat >"$ENV_FILE.tmp" <<EOF
RDQC_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
RDQC_REDIS__URL=redis://127.0.0.1:$REDIS_PORT/0
RDQC_S3__ENDPOINT=http://127.0.0.1:$MINIO_PORT
RDQC_S3__ACCESS_KEY=$MINIO_ROOT_USER
RDQC_S3__SECRET_KEY=$MINIO_ROOT_PASSWORD
EOF
    )
    mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

# Serialise up/down between concurrent callers (several make targets, several terminals).
take_lock() {
    mkdir -p "$RUN_DIR"
    exec 9>"$RUN_DIR/stack.lock"
    if ! flock -n 9; then
        say "waiting for another stack.sh in $(show "$STACK_DIR") to finish"
        flock -w 600 9 || die "timed out waiting for the stack lock"
    fi
}

# ---------------------------------------------------------------------------------------------
# commands

cmd_up() {
    local started_at=$EPOCHREALTIME svc pid running=() to_start=() failed=()
    take_lock
    mkdir -p "$LOG_DIR" "$RUN_DIR"
    ensure_minio_credentials

    for svc in "${SERVICES[@]}"; do
        if running_pid "$svc" >/dev/null; then
            running+=("$svc")
        else
            to_start+=("$svc")
        fi
    done

    # Already running: leave alone if it answers, restart if it does not.
    if ((${#running[@]})); then
        wait_ready "$RUNNING_CHECK_TIMEOUT" quiet "${running[@]}"
        for svc in "${running[@]}"; do
            pid=$(running_pid "$svc") || pid="?"
            if [[ " ${FAILED[*]} " == *" $svc "* ]]; then
                say "$svc: running (pid $pid) but not answering, restarting it"
                stop_services "$svc"
                to_start+=("$svc")
            else
                say "$svc: already running (pid $pid, 127.0.0.1:$(service_port "$svc"))"
            fi
        done
    fi

    if ((${#to_start[@]})); then
        ensure_prereqs "${to_start[@]}"
        for svc in "${to_start[@]}"; do
            check_ports_free "$svc"
        done
        for svc in "${to_start[@]}"; do
            "start_$svc"
            say "$svc: started (pid $(<"$(pid_file "$svc")"), 127.0.0.1:$(service_port "$svc"))"
        done
        wait_ready "$KAFKA_READY_TIMEOUT" verbose "${to_start[@]}"
        failed=("${FAILED[@]}")
        for svc in "${failed[@]}"; do
            print_log_tail "$svc"
        done
        if ((${#failed[@]})); then
            stop_services "${failed[@]}"
            die "failed to start: ${failed[*]} (logs in $(show "$LOG_DIR"))"
        fi
    else
        say "nothing to start"
    fi

    write_env_file
    say "connection settings: $(show "$ENV_FILE")"
    say "logs: $(show "$LOG_DIR")/{kafka,redis,minio}.log"
    say "up in $(elapsed_since "$started_at")s"
}

cmd_down() {
    take_lock
    stop_services "${SERVICES[@]}"
    local svc port
    for svc in "${SERVICES[@]}"; do
        for port in $(service_ports "$svc"); do
            if port_in_use "$port"; then
                say "warning: port $port is still in use by a process this stack did not start"
            fi
        done
    done
    say "down"
}

cmd_status() {
    local svc pid
    for svc in "${SERVICES[@]}"; do
        if pid=$(running_pid "$svc"); then
            printf '%-6s running  pid %-8s 127.0.0.1:%s\n' "$svc" "$pid" "$(service_port "$svc")"
        elif [[ -f $(pid_file "$svc") ]]; then
            printf '%-6s stopped  (stale pid file, cleaned up by the next up/down)\n' "$svc"
        else
            printf '%-6s stopped\n' "$svc"
        fi
    done
    if [[ -f $ENV_FILE ]]; then
        printf 'env    %s\n' "$(show "$ENV_FILE")"
    fi
    printf 'logs   %s\n' "$(show "$LOG_DIR")"
}

main() {
    case ${1:-} in
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        *)
            echo "usage: $0 up|down|status" >&2
            exit 2
            ;;
    esac
}

main "$@"
