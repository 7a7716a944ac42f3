#!/usr/bin/env bash
# Runs every test of the project, installing and starting what the tests need first.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

# Python 3 with venv: pack virtualenvs and Python actions are tested for real.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
  fi
fi
# OpenSSH server: remote-shell runners are tested against a private sshd on 127.0.0.1.
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq openssh-server openssh-client >/dev/null
fi
# setsid (util-linux): runners start actions in their own session.
command -v setsid >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq util-linux >/dev/null; }
# git: pack install tests build real repositories (libgit2 is vendored; the CLI helps debugging).
command -v git >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq git >/dev/null; }

# RabbitMQ: the amqp bus backend is tested against a real broker (guest/guest on 127.0.0.1:5672,
# or ST2_TEST_AMQP_URL). Installed when absent, started when not answering, waited for (bounded).
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq rabbitmq-server >/dev/null
fi
amqp_port_open() { (exec 3<>/dev/tcp/127.0.0.1/5672) >/dev/null 2>&1; }
rabbitmq_up() { rabbitmq-diagnostics -q ping >/dev/null 2>&1 && amqp_port_open; }
if [ -z "${ST2_TEST_AMQP_URL:-}" ] && ! rabbitmq_up; then
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do
    rabbitmq_up && break
    sleep 1
  done
  rabbitmq_up || { echo "RabbitMQ did not start within 60 s" >&2; exit 1; }
fi

# Services started below are stopped on exit.
CLEANUP_PIDS=()
CLEANUP_FILES=()
cleanup() {
  for pid in ${CLEANUP_PIDS[@]+"${CLEANUP_PIDS[@]}"}; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for f in ${CLEANUP_FILES[@]+"${CLEANUP_FILES[@]}"}; do rm -rf "$f"; done
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Mosquitto: the MQTT sensor is tested against a real MQTT v5 broker on a free loopback port
# (anonymous, in memory), unless ST2_TEST_MQTT_URL already names one. Installed when absent.
if [ -z "${ST2_TEST_MQTT_URL:-}" ]; then
  if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null
  fi
  MOSQUITTO_BIN="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
  MQTT_PORT="$(free_port)"
  MQTT_DIR="$(mktemp -d -t st2-mosquitto.XXXXXX)"
  CLEANUP_FILES+=("$MQTT_DIR")
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$MQTT_PORT" \
    >"$MQTT_DIR/mosquitto.conf"
  "$MOSQUITTO_BIN" -c "$MQTT_DIR/mosquitto.conf" >"$MQTT_DIR/log" 2>&1 &
  CLEANUP_PIDS+=($!)
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") >/dev/null 2>&1 && break
    sleep 0.1
  done
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") >/dev/null 2>&1; then
    cat "$MQTT_DIR/log" >&2
    echo "Mosquitto did not start within 10 s" >&2
    exit 1
  fi
  export ST2_TEST_MQTT_URL="mqtt://127.0.0.1:$MQTT_PORT"
fi

# StackStorm's own client (st2client 3.9.0 from PyPI) in a virtualenv: the acceptance test runs
# it against a live st2d. Kept in a cache dir so later runs reuse it.
ST2_TEST_CACHE="${ST2_TEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/st2-rs-tests}"
ST2CLIENT_VENV="$ST2_TEST_CACHE/st2client-venv"
if [ ! -x "$ST2CLIENT_VENV/bin/st2" ] || ! "$ST2CLIENT_VENV/bin/st2" --version >/dev/null 2>&1; then
  rm -rf "$ST2CLIENT_VENV"
  mkdir -p "$ST2_TEST_CACHE"
  python3 -m venv "$ST2CLIENT_VENV"
  "$ST2CLIENT_VENV/bin/pip" install -q --disable-pip-version-check 'st2client==3.9.0'
fi
export ST2CLIENT_BIN="$ST2CLIENT_VENV/bin/st2"

# A MongoDB-wire test server (SecantusDB, in memory) for the MongoDB store's tests, unless
# ST2_TEST_MONGODB_URL already names a server. Only the tests use it; it is stopped on exit.
if [ -z "${ST2_TEST_MONGODB_URL:-}" ]; then
  MONGO_VENV="$ST2_TEST_CACHE/secantusdb-venv"
  if [ ! -x "$MONGO_VENV/bin/secantusd-py" ]; then
    rm -rf "$MONGO_VENV"
    mkdir -p "$ST2_TEST_CACHE"
    python3 -m venv "$MONGO_VENV"
    "$MONGO_VENV/bin/pip" install -q --disable-pip-version-check --pre SecantusDB
  fi
  MONGO_PORT="$(free_port)"
  MONGO_LOG="$(mktemp -t st2-secantusdb.XXXXXX.log)"
  "$MONGO_VENV/bin/secantusd-py" --host 127.0.0.1 --port "$MONGO_PORT" --storage-path :memory: \
    >"$MONGO_LOG" 2>&1 &
  MONGO_PID=$!
  CLEANUP_PIDS+=("$MONGO_PID")
  CLEANUP_FILES+=("$MONGO_LOG")
  # Wait (up to 60 s) until it accepts connections.
  if ! python3 - "$MONGO_PORT" "$MONGO_PID" <<'PY'
import os, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
deadline = time.time() + 60
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the MongoDB-wire test server exited")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit("the MongoDB-wire test server did not start within 60 s")
PY
  then
    cat "$MONGO_LOG" >&2
    exit 1
  fi
  # retryWrites=false: the test server keeps a record of every retryable write for 30 minutes
  # and walks them all on each write, so the suite slowed down as it went (the product keeps
  # the driver's default; this is the test server's cost only).
  export ST2_TEST_MONGODB_URL="mongodb://127.0.0.1:$MONGO_PORT/?directConnection=true&retryWrites=false"
fi

cargo test --workspace --all-targets "$@"
