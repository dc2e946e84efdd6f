#!/bin/sh
# The rate governor against a SYN policer the scanners are not told about
# (issue 22), and the cost of the governor on an unpoliced lab: prtip (governed
# and --fixed-rate), nmap -T4 (and masscan) at the same asked rate, in one run, on
# one lab: recall against the ground truth and wall time.
#
#   sudo benches/policed.sh                          # debug build, /20 x 3 ports
#   sudo MASSCAN=1 benches/policed.sh                # with masscan (see below)
#   sudo PRTIP=target/release/prtip NET=198.19.0.0/18 POLICERS="20000 40000 100000" \
#        RATE=1000000 benches/policed.sh
#
# Every scan runs inside the lab's scanner namespace; the lab (kernel responder,
# open ports 80 and 443, RST elsewhere, the XDP policer on the target's veth) is
# uniquely named and taken down on exit.
set -eu
P=${PRTIP:-target/debug/prtip}
NET=${NET:-198.19.0.0/20}
RATE=${RATE:-1000000}
POLICERS=${POLICERS:-"5000 10000 0"}   # 0: no policer (10M/s: never in the way)
PORTS=22,80,443
NAME=gvb$$
W=$(mktemp -d)
trap '"$P" lab down --name $NAME >/dev/null 2>&1; rm -rf "$W"' EXIT
"$P" lab up --name $NAME --tcp-ports 80,443 --udp-ports none --queues 1 \
    --target-net "$NET" --backlog 4096 --policer 10000000 >/dev/null
IF=$NAME-s0
MAC=$(ip netns exec $NAME-tgt cat /sys/class/net/$NAME-t0/address)
HOSTS=$(python3 -c "import ipaddress,sys; print(ipaddress.ip_network('$NET').num_addresses)")
TRUTH=$((HOSTS * 2))
echo "lab $NAME: $NET x $PORTS ($TRUTH open), asked rate $RATE/s, $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %-16s %8s %8s %9s\n' policer scanner open recall wall_s
run() { # name, open-count command, scan command...
    name=$1; count=$2; shift 2
    t0=$(date +%s.%N)
    setsid -w ip netns exec $NAME-scan "$@" >/dev/null 2>"$W/err" || { echo "$name failed: $(tail -2 "$W/err")"; return; }
    t1=$(date +%s.%N)
    n=$(sh -c "$count")
    printf '%-10s %-16s %8s %7.1f%% %9.2f\n' "$POL" "$name" "$n" \
        "$(echo "$n * 100 / $TRUTH" | bc -l)" "$(echo "$t1 - $t0" | bc -l)"
}
for POL in $POLICERS; do
    if [ "$POL" = 0 ]; then "$P" lab policer --name $NAME --set 10000000 >/dev/null; POL=none
    else "$P" lab policer --name $NAME --set "$POL/$((POL / 100))" >/dev/null; fi
    rm -rf "$W/h"*
    run prtip "grep -o '/open/' $W/p.gnmap | wc -l" \
        "$P" scan "$NET" -p $PORTS --rate "$RATE" --home "$W/h1" --quiet -oG "$W/p.gnmap"
    run prtip-fixed "grep -o '/open/' $W/f.gnmap | wc -l" \
        "$P" scan "$NET" -p $PORTS --rate "$RATE" --fixed-rate --home "$W/h2" --quiet -oG "$W/f.gnmap"
    run nmap-T4 "grep -o '/open/' $W/n.gnmap | wc -l" \
        nmap -sS -n -Pn -T4 -p $PORTS -e $IF -oG "$W/n.gnmap" "$NET"
    # masscan 1.3.2 waits for traffic to wake its receive thread in this lab
    # (the peer harness, benches/peers, sends it wake datagrams): opt-in, with
    # a deadline.
    [ "${MASSCAN:-0}" = 1 ] && run masscan "grep -c '^open' $W/m.txt || true" \
        timeout 120 masscan "$NET" -p$PORTS --adapter $IF --router-mac "$MAC" --rate "$RATE" \
        --wait 1 --retries 2 -oL "$W/m.txt"
done
