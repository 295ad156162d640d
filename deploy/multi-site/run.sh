#!/usr/bin/env bash
# A three-site Kartotek cluster on one machine: 3 voters (one per site) and a learner at
# site C, the `wan` Raft profile. Each site is a network namespace (ksite-a, -b, -c at
# 10.214.0.1, .2, .3) on one bridge (in namespace ksite-wan); this shell's namespace reaches
# them as 10.214.0.254. The kernel here has no sch_netem, so a delay proxy in each site holds
# every chunk into that site's Raft listener 5 ms (A), 10 ms (B) or 15 ms (C) each way: a Raft
# round trip into A is 10 ms, into B 20 ms, into C 30 ms. Cutting a site off takes its link
# off the bridge: a real partition, packets dropped both ways. Needs root (ip netns).
# See README.md here.
#
#   deploy/multi-site/run.sh start         # namespaces, proxies, nodes, init, the learner
#   deploy/multi-site/run.sh status        # kartotek admin status
#   deploy/multi-site/run.sh measure       # write and read latencies, near and far
#   deploy/multi-site/run.sh failover      # cut the leader's site off; how long writes stall
#   deploy/multi-site/run.sh cut a|b|c     # cut one site off the WAN (and `heal` it)
#   deploy/multi-site/run.sh heal          # bring a cut site back
#   deploy/multi-site/run.sh stop          # stop everything, remove the namespaces
#                                          # (run/ keeps the data; rm -r it for a new cluster)
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
NET=10.214.0
ENDPOINTS=$NET.1:7411,$NET.2:7412,$NET.3:7413
# node id : site : one-way delay into its site (ms)
NODES="1:a:5 2:b:10 3:c:15 4:c:15"

config_of() { ls "$here"/node-"$1"-site-*.toml; }
site_of() {
  local nd
  for nd in $NODES; do
    if [ "${nd%%:*}" = "$1" ]; then nd=${nd#*:}; echo "${nd%%:*}"; fi
  done
}
ip_of() { case $1 in a) echo $NET.1 ;; b) echo $NET.2 ;; c) echo $NET.3 ;; esac; }
api_of() { echo "$(ip_of "$(site_of "$1")"):74$((10 + $1))"; }

net_up() { # the bridge namespace, this namespace's link to it, one namespace per site
  ip netns list | grep -qw ksite-wan && return 0
  ip netns add ksite-wan
  ip -n ksite-wan link set lo up
  ip -n ksite-wan link add br0 type bridge
  ip -n ksite-wan link set br0 up
  ip link add ksite-host type veth peer name host netns ksite-wan
  ip addr add $NET.254/24 dev ksite-host
  ip link set ksite-host up
  ip -n ksite-wan link set host master br0
  ip -n ksite-wan link set host up
  for s in a b c; do
    ip netns add "ksite-$s"
    ip -n "ksite-$s" link set lo up
    ip -n ksite-wan link add "site-$s" type veth peer name eth0 netns "ksite-$s"
    ip -n ksite-wan link set "site-$s" master br0
    ip -n ksite-wan link set "site-$s" up
    ip -n "ksite-$s" addr add "$(ip_of $s)/24" dev eth0
    ip -n "ksite-$s" link set eth0 up
  done
}

net_down() {
  for ns in ksite-a ksite-b ksite-c ksite-wan; do ip netns del "$ns" 2>/dev/null || true; done
  ip link del ksite-host 2>/dev/null || true
}

start_one() { # id (from $here: data_dir is relative to it)
  local id=$1 cfg
  cfg=$(config_of "$id")
  ip netns exec "ksite-$(site_of "$id")" env -u KARTOTEK_BIN setsid "$K" node --config "$cfg" \
    >>"$run/node-$id.log" 2>&1 </dev/null &
  echo $! >"$run/node-$id.pid"
}

proxy_one() { # id site delay: in the site's namespace, the site's address -> its loopback
  local id=$1 s=$2 delay=$3
  ip netns exec "ksite-$s" setsid "$J" delay-proxy --listen "$(ip_of "$s"):75$((10 + id))" \
    --to "127.0.0.1:76$((10 + id))" --delay-ms "$delay" >>"$run/proxy-$id.log" 2>&1 </dev/null &
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

cut() { # site: its link off the bridge; nothing goes in or out, nothing is refused
  ip -n ksite-wan link set "site-$1" down
  echo "$1" >"$run/cut"
}

case "${1:-}" in
  start)
    [ "$(id -u)" = 0 ] || { echo "run.sh needs root (ip netns)" >&2; exit 1; }
    mkdir -p "$run"
    fresh=0
    [ -d "$run/node-1-site-a" ] || fresh=1
    net_up
    for nd in $NODES; do
      id=${nd%%:*} rest=${nd#*:}
      proxy_one "$id" "${rest%%:*}" "${rest#*:}"
    done
    for nd in $NODES; do start_one "${nd%%:*}"; done
    for id in 1 2 3 4; do wait_api "$(api_of $id)"; done
    if [ $fresh = 1 ]; then
      "$K" --endpoints "$ENDPOINTS" admin init
      # The learner once the first membership is committed (an election first: 1.5-3 s).
      for _ in $(seq 1 50); do
        if "$K" --endpoints "$ENDPOINTS" admin add-learner --node-id 4 --addr "$(api_of 4)" 2>/dev/null; then
          break
        fi
        sleep 0.5
      done
    fi
    "$K" --endpoints "$ENDPOINTS" admin status
    ;;
  status)
    "$K" --endpoints "$ENDPOINTS,$(api_of 4)" admin status
    ;;
  measure)
    n=${2:-200}
    L=$(leader_id)
    echo "leader: node $L (site $(site_of "$L"))"
    echo "writes through the leader's node:"
    "$J" site-probe --endpoints "$(api_of "$L")" --mode write --requests "$n"
    for id in 1 2 3 4; do
      [ "$id" = "$L" ] && continue
      echo "node $id ($(basename "$(config_of "$id")" .toml)):"
      "$J" site-probe --endpoints "$(api_of "$id")" --mode linearizable --requests "$n"
      "$J" site-probe --endpoints "$(api_of "$id")" --mode bounded --requests "$n"
    done
    ;;
  failover)
    L=$(leader_id)
    s=$(site_of "$L")
    others=$(for id in 1 2 3; do [ "$(site_of "$id")" = "$s" ] || printf '%s,' "$(api_of "$id")"; done)
    echo "cutting off the leader's site $s (node $L): its link off the bridge"
    "$J" site-probe --endpoints "${others%,}" --mode write --seconds "${2:-20}" &
    probe=$!
    sleep 3
    cut "$s"
    echo "site $s cut off at $(date -u +%T.%3N) UTC (elections: grep 'vote is changing' run/node-*.log)"
    wait $probe   # the longest write is the failover time (plus one write)
    echo "new leader: node $(leader_id); '$0 heal' brings site $s back"
    ;;
  cut)
    case "${2:-}" in a | b | c) cut "$2"; echo "site $2 is cut off" ;; *) echo "cut a|b|c" >&2; exit 2 ;; esac
    ;;
  heal)
    if [ -f "$run/cut" ]; then
      s=$(cat "$run/cut")
      ip -n ksite-wan link set "site-$s" up
      rm -f "$run/cut"
      echo "site $s is back"
    fi
    ;;
  stop)
    "$here/run.sh" heal || true
    for id in 1 2 3 4; do stop_pid "$run/node-$id.pid"; stop_pid "$run/proxy-$id.pid"; done
    net_down
    ;;
  *)
    sed -n '2,21p' "$0"
    exit 2
    ;;
esac
