#!/usr/bin/env bash
# long_scan_rss.sh — one long SYN scan (default ~11 min) in a lab of its own,
# with the scanner's RSS sampled every 10 s. Not in CI: it takes minutes and
# needs root (namespaces). Prints a table (elapsed s, probes done, RSS, peak)
# and a verdict: the RSS of the last half of the run against the first.
#
#   sudo benches/long_scan_rss.sh                 # target/release/prtip
#   sudo PRTIP=target/debug/prtip benches/long_scan_rss.sh
#   sudo PORTS=1-100 RATE=10000 benches/long_scan_rss.sh
#
# Network safety: the scan runs inside the lab's scanner namespace (no default
# route) against 198.19.0.0/16, answered by the lab's target namespace.
#
# RSS is reported in its two parts: anonymous memory (heap, stacks: what a
# leak or a growing structure shows in) and file-backed pages (the log's
# memory-mapped segments, which the kernel can drop at any time and which
# follow the segment sizes, not the scan's size).
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
PRTIP=${PRTIP:-target/release/prtip}
PORTS=${PORTS:-1-50}
RATE=${RATE:-5000}
NET=${NET:-198.19.0.0/16}
EVERY=${EVERY:-10}
LAB=rss$(( $$ % 100000 ))
[[ $(id -u) -eq 0 ]] || { echo "run as root (the lab creates namespaces)" >&2; exit 1; }
[[ -x $PRTIP ]] || { echo "no $PRTIP: cargo build --release -p prtip" >&2; exit 1; }
PRTIP=$(readlink -f "$PRTIP")
home=$(mktemp -d /tmp/prtip-rss.XXXXXX)
cleanup() {
  [[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null || true
  "$PRTIP" lab down --name "$LAB" >/dev/null 2>&1 || true
  rm -rf "$home"
}
trap cleanup EXIT
"$PRTIP" lab up --name "$LAB" >/dev/null
ip netns exec "$LAB-scan" "$PRTIP" --home "$home" scan -sS "$NET" -p "$PORTS" \
  --rate "$RATE" --quiet >"$home/out.txt" 2>&1 &
pid=$!
start=$(date +%s)
printf '%8s %10s %10s %10s\n' elapsed_s anon_kib file_kib peak_kib
samples=()
while kill -0 "$pid" 2>/dev/null; do
  st=$(cat "/proc/$pid/status" 2>/dev/null || true)
  rss=$(awk '/^RssAnon/{print $2}' <<<"$st")
  file=$(awk '/^RssFile/{print $2}' <<<"$st")
  hwm=$(awk '/^VmHWM/{print $2}' <<<"$st")
  [[ -n $rss ]] || break
  now=$(( $(date +%s) - start ))
  printf '%8d %10d %10d %10d\n' "$now" "$rss" "$file" "$hwm"
  samples+=("$rss")
  sleep "$EVERY"
done
rc=0
wait "$pid" || rc=$?
pid=
echo "scan exit status $rc after $(( $(date +%s) - start )) s; log $(du -sh "$home/scans" | cut -f1)"
tail -3 "$home/out.txt"
n=${#samples[@]}
if (( n >= 4 )); then
  h=$(( n / 2 ))
  first=$(printf '%s\n' "${samples[@]:1:$((h-1))}" | sort -n | tail -1)
  last=$(printf '%s\n' "${samples[@]:$h}" | sort -n | tail -1)
  echo "max anonymous RSS, first half (after the first sample): $first KiB; second half: $last KiB"
fi
