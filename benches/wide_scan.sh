#!/usr/bin/env bash
# wide_scan.sh — memory, end-of-scan time and log size of wide scans (issue 17):
# all-silent SYN scans of ~4 M, ~16 M and ~64 M probes, and a /16 × 4 ports where
# every probe is answered. Each scan runs inside a memory cgroup (v1) limited to
# LIMIT (default 24 MiB), in a lab of its own. Not in CI: root, minutes.
#
#   sudo benches/wide_scan.sh                     # target/release/prtip, all cases
#   sudo CASES="silent4m" RATE=300000 benches/wide_scan.sh
#   sudo PRTIP=target/debug/prtip benches/wide_scan.sh
#
# Printed per case: probes, wall time, send window (start to the end of the
# sender thread `prtip-tx`, which includes the process start), --wait, the
# time after the send window and the wait, peak RssAnon and RssFile (sampled
# every 20 ms from /proc/PID/status), the cgroup's memory.max_usage_in_bytes
# (anonymous + page cache it charged), whether the scan completed inside the
# limit, the log size and the number of Reply events in it.
#
# Network safety: every scan runs inside the lab's scanner namespace (no
# default route). The silent cases scan 198.19.0.0/17 of a sparse network whose
# addresses are all silent (blackhole route in the target namespace; the one
# live address of `--sparse-hosts every:65536` is excluded); the answered case
# scans the lab's target network 198.19.0.0/16, answered by the XDP responder.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
PRTIP=${PRTIP:-target/release/prtip}
RATE=${RATE:-500000}
WAIT_MS=${WAIT_MS:-1000}
LIMIT=${LIMIT:-24M}
CASES=${CASES:-"silent4m silent16m silent64m answered"}
CG=/sys/fs/cgroup/memory
[[ $(id -u) -eq 0 ]] || { echo "run as root (namespaces, cgroups)" >&2; exit 1; }
[[ -x $PRTIP ]] || { echo "no $PRTIP: cargo build --release -p prtip" >&2; exit 1; }
[[ -d $CG ]] || { echo "no cgroup v1 memory controller at $CG" >&2; exit 1; }
PRTIP=$(readlink -f "$PRTIP")
LAB=wide$(( $$ % 100000 ))
home=$(mktemp -d /tmp/prtip-wide.XXXXXX)
group=$CG/prtip-wide-$$
cleanup() {
  [[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null || true
  "$PRTIP" lab down --name "$LAB" >/dev/null 2>&1 || true
  [[ -d $group ]] && rmdir "$group" 2>/dev/null || true
  rm -rf "$home"
}
trap cleanup EXIT

# Each case brings up its lab afresh (the previous case's is taken down first).
lab_silent() {
  "$PRTIP" lab down --name "$LAB" >/dev/null 2>&1 || true
  "$PRTIP" lab up --name "$LAB" --target-net 198.19.255.0/24 \
    --sparse-net 198.19.0.0/17 --sparse-hosts every:65536 --sparse-mode silent \
    --sparse-net6 none >/dev/null
}
lab_answered() {
  "$PRTIP" lab down --name "$LAB" >/dev/null 2>&1 || true
  "$PRTIP" lab up --name "$LAB" --responder xdp --xdp-mode skb >/dev/null
}

# run NAME PROBES ARGS...: one scan in a fresh cgroup, figures on one line.
run() {
  local name=$1 probes=$2; shift 2
  mkdir "$group"
  echo "$LIMIT" >"$group/memory.limit_in_bytes"
  echo 0 >"$group/memory.swappiness" 2>/dev/null || true
  local h=$home/$name
  mkdir -p "$h"
  local t0 t1
  t0=$(date +%s.%N)
  sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$group" \
    ip netns exec "$LAB-scan" "$PRTIP" --home "$h" scan "$@" \
    --rate "$RATE" --wait "${WAIT_MS}ms" --max-retries 0 --quiet >"$h/out.txt" 2>&1 &
  pid=$!
  local anon=0 file=0 a f st sent_end= tx_seen=
  while kill -0 "$pid" 2>/dev/null; do
    # The sender thread (prtip-tx) ends with the walk: the send window's end
    # (once it was seen: the receiver thread may start before it).
    if [[ -z $tx_seen ]] && grep -qx prtip-tx /proc/"$pid"/task/*/comm 2>/dev/null; then
      tx_seen=1
    fi
    if [[ -n $tx_seen && -z $sent_end ]] && [[ -d /proc/$pid/task ]] &&
      ! grep -qx prtip-tx /proc/"$pid"/task/*/comm 2>/dev/null; then
      sent_end=$(date +%s.%N)
    fi
    st=$(cat "/proc/$pid/status" 2>/dev/null || true)
    a=$(awk '/^RssAnon/{print $2}' <<<"$st"); f=$(awk '/^RssFile/{print $2}' <<<"$st")
    [[ -n $a ]] && (( a > anon )) && anon=$a
    [[ -n $f ]] && (( f > file )) && file=$f
    sleep 0.02
  done
  local rc=0
  wait "$pid" || rc=$?
  pid=
  t1=$(date +%s.%N)
  local maxuse failcnt
  maxuse=$(cat "$group/memory.max_usage_in_bytes")
  failcnt=$(cat "$group/memory.failcnt")
  rmdir "$group"
  local log logb replies
  log=$(ls -d "$h"/scans/* | head -1)
  logb=$(du -sb "$log" | cut -f1)
  replies=$("$PRTIP" --home "$h" history show "$log" 2>/dev/null | grep -iE "^ *(events|silent)" | tr -s " " | paste -sd";" - || true)
  local wall window after
  wall=$(echo "$t1 - $t0" | bc)
  # The send window as it ran (start to the sender's end; probes / rate if the
  # sender's end was not seen).
  if [[ -n $sent_end ]]; then window=$(echo "$sent_end - $t0" | bc)
  else window=$(echo "scale=3; $probes / $RATE" | bc); fi
  after=$(echo "scale=3; $wall - $window - $WAIT_MS / 1000" | bc)
  printf '%-10s probes=%-9s exit=%s wall=%6.2fs window=%6.2fs wait=%ss after=%6.2fs rss_anon_peak=%6.1fMiB rss_file_peak=%6.1fMiB cgroup_max=%6.1fMiB failcnt=%s log=%7.1fKiB %s\n' \
    "$name" "$probes" "$rc" "$wall" "$window" "$(echo "scale=1; $WAIT_MS/1000" | bc)" "$after" \
    "$(echo "scale=1; $anon/1024" | bc)" "$(echo "scale=1; $file/1024" | bc)" \
    "$(echo "scale=1; $maxuse/1048576" | bc)" "$failcnt" "$(echo "scale=1; $logb/1024" | bc)" "$replies"
  tail -2 "$h/out.txt" | sed 's/^/    /'
}

ex=(--exclude 198.19.0.1)
for c in $CASES; do
  case $c in
    silent4m) lab_silent; run silent4m $((32767 * 128)) -sS 198.19.0.0/17 "${ex[@]}" -p 1-128 ;;
    silent16m) lab_silent; run silent16m $((32767 * 512)) -sS 198.19.0.0/17 "${ex[@]}" -p 1-512 ;;
    silent64m) lab_silent; run silent64m $((32767 * 2048)) -sS 198.19.0.0/17 "${ex[@]}" -p 1-2048 ;;
    answered) lab_answered; run answered $((65536 * 4)) -sS 198.19.0.0/16 -p 21,22,80,443 ;;
    *) echo "unknown case $c" >&2; exit 2 ;;
  esac
done
