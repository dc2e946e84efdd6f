#!/bin/sh
# The rate governor against a SYN policer the scanners are not told about
# (issue 22), and the cost of the governor on an unpoliced lab: prtip (governed
# and --fixed-rate), nmap -T4 and masscan at the same asked rate, in one run, on
# one lab: recall against the ground truth and wall time.
#
#   sudo benches/policed.sh                          # debug build, /20 x 3 ports
#   sudo MASSCAN=0 benches/policed.sh                # without masscan
#   sudo PRTIP=target/release/prtip NET=198.19.0.0/18 POLICERS="20000 40000 100000" \
#        RATE=1000000 benches/policed.sh
#   sudo PRTIP=target/release/prtip POLICERS= COST=3 COST_NET=198.19.0.0/16 benches/policed.sh
#
# COST=N: after the policers, N alternated pairs of prtip governed and
# --fixed-rate scans of COST_NET x 3 ports on the unpoliced lab (the cost of the
# governor on a scan large enough that its slow start is amortised).
#
# Every scan runs inside the lab's scanner namespace; the lab (kernel responder,
# open ports 80 and 443, RST elsewhere, the XDP policer on the target's veth) is
# uniquely named and taken down on exit.
set -eu
P=${PRTIP:-target/debug/prtip}
NET=${NET:-198.19.0.0/20}
COST=${COST:-0}
COST_NET=${COST_NET:-198.19.0.0/16}
MASSCAN=${MASSCAN:-1}
RATE=${RATE:-1000000}
POLICERS=${POLICERS:-"5000 10000 0"}   # 0: no policer (10M/s: never in the way)
PORTS=22,80,443
NAME=gvb$$
W=$(mktemp -d)
WAKERS=
trap '[ -n "$WAKERS" ] && kill $WAKERS 2>/dev/null; "$P" lab down --name $NAME >/dev/null 2>&1; rm -rf "$W"' EXIT
# The lab's target network covers both the policed net and the cost scan's.
LABNET=$(python3 -c "import ipaddress as i; a=i.ip_network('$NET'); b=i.ip_network('$COST_NET'); print(a if $COST == 0 or b.subnet_of(a) else b if a.subnet_of(b) else exit('NET and COST_NET must nest'))")
"$P" lab up --name $NAME --tcp-ports 80,443 --udp-ports none --queues 1 \
    --target-net "$LABNET" --backlog 4096 --policer 10000000 >/dev/null
IF=$NAME-s0
MAC=$(ip netns exec $NAME-tgt cat /sys/class/net/$NAME-t0/address)
SCAN_IP=$(ip -n $NAME-scan -4 -o addr show dev $IF | awk '{print $4}' | cut -d/ -f1)
if [ "$MASSCAN" = 1 ] && ! command -v masscan >/dev/null; then
    echo "masscan not installed (apt-get install masscan): skipping it"; MASSCAN=0
fi
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
# masscan 1.3.2 often does not leave its --wait until one more frame reaches
# its adapter (its receive thread blocks in pcap): as the peer harness does
# (benches/peers), a datagram from the target namespace to the scanner's
# address every 100 ms while it runs wakes it, and a socket in the scanner
# namespace swallows them (no ICMP port unreachables back).
masscan_run() {
    ip netns exec $NAME-scan python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('$SCAN_IP', 9))
while True: s.recv(64)" &
    c=$!
    ip netns exec $NAME-tgt python3 -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while True:
    s.sendto(b'wake', ('$SCAN_IP', 9)); time.sleep(0.1)" &
    WAKERS="$c $!"
    # masscan sends from the scanner's own address: the scanner's kernel
    # answers each SYN-ACK with an RST of its own, and in this lab masscan then
    # saw each open port hundreds of times (1 086 057 SYN-ACKs for 2 048 open
    # ports) and did not finish. As masscan's documentation advises: a fixed
    # source port that the scanner's kernel drops (for the masscan run only).
    ip netns exec $NAME-scan iptables -A INPUT -p tcp --dport 61000 -j DROP
    # Same asked rate; --wait 1 (its default is 10 s) and --retries 2 (it
    # resends each probe, blindly: it has no idea of loss).
    # (-oL lists every SYN-ACK it saw, duplicates too: distinct address:port.)
    run masscan "awk '/^open/ {print \$4, \$3}' $W/m.txt | sort -u | wc -l" \
        timeout 120 masscan "$NET" -p$PORTS --adapter $IF --router-mac "$MAC" --rate "$RATE" \
        --wait 1 --retries 2 --source-port 61000 -oL "$W/m.txt"
    ip netns exec $NAME-scan iptables -F INPUT
    kill $WAKERS 2>/dev/null; wait $WAKERS 2>/dev/null || true; WAKERS=
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
    if [ "$MASSCAN" = 1 ]; then masscan_run; fi
done
[ "$COST" -gt 0 ] && TRUTH=$(( $(python3 -c "import ipaddress; print(ipaddress.ip_network('$COST_NET').num_addresses)") * 2 ))
for i in $(seq "$COST"); do
    # Alternated, so that the machine's drift falls on both alike.
    POL=cost-$i
    for mode in governed fixed; do
        [ $((i % 2)) = 0 ] && mode=$( [ $mode = governed ] && echo fixed || echo governed )
        flag=; [ $mode = fixed ] && flag=--fixed-rate
        rm -rf "$W/c"*
        run "prtip-$mode" "grep -o '/open/' $W/c.gnmap | wc -l" \
            "$P" scan "$COST_NET" -p $PORTS --rate "$RATE" $flag --home "$W/c" --quiet -oG "$W/c.gnmap"
    done
done
