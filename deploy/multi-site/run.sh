#!/usr/bin/env bash
# A three-site Kartotek cluster on one machine: 3 voters (one per site) and a learner at
# site C, the `wan` Raft profile, and a delay proxy in front of each node's Raft listener
# (the kernel here has no sch_netem): 5 ms each way into site A, 10 ms into B, 15 ms into C,
# so a Raft round trip into A is 10 ms, into B 20 ms, into C 30 ms. See README.md here.
#
#   deploy/multi-site/run.sh start         # proxies, nodes, init, the learner
#   deploy/multi-site/run.sh status        # kartotek admin status
#   deploy/multi-site/run.sh measure       # write and read latencies, near and far
#   deploy/multi-site/run.sh failover      # cut the leader's site off; how long writes stall
#   deploy/multi-site/run.sh heal          # bring a cut site back
#   deploy/multi-site/run.sh stop          # stop everything (run/ keeps the data; rm -r it)
#
# KARTOTEK_BIN and JEPSEN_BIN pick the binaries (default: target/release, else target/debug,
# of the repository; `cargo build --release --bins` first).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
run="$here/run"
target=${CARGO_TARGET_DIR:-$root/target}
pick() {
  for p in "$target/release/$1" "$target/debug/$1"; do
    if [ -x "$p" ]; then echo "$p"; return; fi
  done
  echo "no $1 under $target/release or $target/debug: cargo build --release --bins" >&2
  exit 1
}
K=${KARTOTEK_BIN:-$(pick kartotek)}
cd "$here"
J=${JEPSEN_BIN:-$(pick kartotek-jepsen)}
ENDPOINTS=127.0.0.1:7411,127.0.0.1:7412,127.0.0.1:7413
# node id, one-way delay into its site (ms)
NODES="1:5 2:10 3:15 4:15"

config_of() { ls "$here"/node-"$1"-site-*.toml; }

start_one() { # id (from $here: data_dir is relative to it)
  local id=$1 cfg
  cfg=$(config_of "$id")
  setsid "$K" node --config "$cfg" >>"$run/node-$id.log" 2>&1 </dev/null &
  echo $! >"$run/node-$id.pid"
}

proxy_one() { # id delay
  local id=$1 delay=$2
  setsid "$J" delay-proxy --listen "127.0.0.1:75$((10 + id))" --to "127.0.0.1:76$((10 + id))" \
    --delay-ms "$delay" >>"$run/proxy-$id.log" 2>&1 </dev/null &
  echo $! >"$run/proxy-$id.pid"
}

wait_api() { # endpoint
  for _ in $(seq 1 100); do
    if "$K" --endpoints "$1" --json admin status 2>/dev/null | grep -q '"node_id"'; then return 0; fi
    sleep 0.2
  done
  echo "no answer from $1" >&2
  return 1
}

leader_id() {
  "$K" --endpoints "$ENDPOINTS" --json admin status | python3 -c '
import json, sys
ids = [e["status"]["leader_id"] for e in json.load(sys.stdin) if e.get("status") and e["status"].get("leader_id")]
print(ids[0] if ids else "")'
}

stop_pid() { # file: SIGTERM (a node drains its audit journal first), SIGKILL after 20 s
  [ -f "$1" ] || return 0
  local pid
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}

case "${1:-}" in
  start)
    mkdir -p "$run"
    fresh=0
    [ -d "$run/node-1-site-a" ] || fresh=1
    for nd in $NODES; do proxy_one "${nd%%:*}" "${nd##*:}"; done
    for nd in $NODES; do start_one "${nd%%:*}"; done
    for p in 7411 7412 7413 7414; do wait_api "127.0.0.1:$p"; done
    if [ $fresh = 1 ]; then
      "$K" --endpoints "$ENDPOINTS" admin init
      # The learner once the first membership is committed (an election first: 1.5-3 s).
      for _ in $(seq 1 50); do
        if "$K" --endpoints "$ENDPOINTS" admin add-learner --node-id 4 --addr 127.0.0.1:7414 2>/dev/null; then
          break
        fi
        sleep 0.5
      done
    fi
    "$K" --endpoints "$ENDPOINTS" admin status
    ;;
  status)
    "$K" --endpoints "$ENDPOINTS,127.0.0.1:7414" admin status
    ;;
  measure)
    n=${2:-200}
    L=$(leader_id)
    echo "leader: node $L (site $(basename "$(config_of "$L")" .toml | sed 's/.*site-//'))"
    echo "writes through the leader's node:"
    "$J" site-probe --endpoints "127.0.0.1:74$((10 + L))" --mode write --requests "$n"
    for id in 1 2 3 4; do
      [ "$id" = "$L" ] && continue
      echo "node $id ($(basename "$(config_of "$id")" .toml)):"
      "$J" site-probe --endpoints "127.0.0.1:74$((10 + id))" --mode linearizable --requests "$n"
      "$J" site-probe --endpoints "127.0.0.1:74$((10 + id))" --mode bounded --requests "$n"
    done
    ;;
  failover)
    L=$(leader_id)
    others=$(for id in 1 2 3; do [ "$id" = "$L" ] || printf '127.0.0.1:74%s,' $((10 + id)); done)
    echo "cutting off the leader's site: node $L (its process and its proxy stopped with SIGSTOP)"
    "$J" site-probe --endpoints "${others%,}" --mode write --seconds 20 &
    probe=$!
    sleep 3
    kill -STOP "$(cat "$run/node-$L.pid")" "$(cat "$run/proxy-$L.pid")"
    echo "$L" >"$run/cut"
    wait $probe   # the longest write is the failover time (plus one write)
    echo "new leader: node $(leader_id); '$0 heal' brings node $L back"
    ;;
  heal)
    if [ -f "$run/cut" ]; then
      L=$(cat "$run/cut")
      kill -CONT "$(cat "$run/node-$L.pid")" "$(cat "$run/proxy-$L.pid")"
      rm -f "$run/cut"
      echo "node $L is back"
    fi
    ;;
  stop)
    "$0" heal || true
    for id in 1 2 3 4; do stop_pid "$run/node-$id.pid"; stop_pid "$run/proxy-$id.pid"; done
    ;;
  *)
    sed -n '2,16p' "$0"
    exit 2
    ;;
esac
