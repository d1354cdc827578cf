#!/usr/bin/env bash
# scripts/tune-host.sh — kernel and limit settings for a production shardgate
# edge host holding hundreds of thousands of mostly idle WebSockets.
#
#   scripts/tune-host.sh           print current and recommended values, and
#                                  the file --apply would write (changes nothing)
#   scripts/tune-host.sh --apply   as root: write /etc/sysctl.d/60-shardgate.conf
#                                  and load it with `sysctl --system`
#
# Counts are never lowered: where the host already allows more than we
# recommend (systemd raises fs.nr_open at boot, big hosts have a big
# fs.file-max), the current value is kept. The per-process descriptor limit
# is not a sysctl: set LimitNOFILE in the unit (scripts/shardgate.service),
# as printed at the end. Restart shardgate after applying: Go reads
# net.core.somaxconn once, when the process starts, for its listen backlog.
set -euo pipefail

CONF=/etc/sysctl.d/60-shardgate.conf
# Descriptors per gateway process; one per connection plus a small reserve.
NOFILE=1048576
# Kernel slab memory one idle, established TCP socket costs (tcp_sock,
# socket inode and dentry, struct file, epoll item), in bytes. Measured
# figures run 3–3.5 KB; this memory is NOT counted by net.ipv4.tcp_mem.
IDLE_SOCKET_KERNEL_BYTES=3300

usage() {
	cat <<EOF
usage: $0 [--apply]
  (no flag)  print current and recommended settings; change nothing
  --apply    as root: write $CONF and run sysctl --system
EOF
}

apply=false
case "${1:-}" in
"") ;;
--apply) apply=true ;;
-h | --help)
	usage
	exit 0
	;;
*)
	echo "tune-host.sh: unknown argument '$1'" >&2
	usage >&2
	exit 2
	;;
esac
if [ "$#" -gt 1 ]; then
	echo "tune-host.sh: too many arguments" >&2
	usage >&2
	exit 2
fi

if $apply && [ "$(id -u)" -ne 0 ]; then
	echo "tune-host.sh: --apply writes $CONF and changes kernel settings: run it as root (sudo $0 --apply)" >&2
	exit 1
fi

# current KEY prints the running value of a sysctl with its fields separated
# by single spaces, or nothing when this kernel (or container) lacks it.
current() {
	local path="/proc/sys/${1//.//}"
	if [ -r "$path" ]; then
		tr -s ' \t' '  ' <"$path"
	fi
}

# at_least KEY N prints N, or the current value if that is already larger.
at_least() {
	local cur
	cur="$(current "$1")"
	if [[ "$cur" =~ ^[0-9]+$ ]] && [ "$cur" -gt "$2" ]; then
		echo "$cur"
	else
		echo "$2"
	fi
}

page_size="$(getconf PAGESIZE)"
mem_kib="$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
mem_pages=$((mem_kib * 1024 / page_size))

# net.ipv4.tcp_mem (in pages) bounds the memory all TCP sockets together may
# hold in queued data: low (no pressure below), pressure (the kernel starts
# shrinking buffers), high (allocations fail: "TCP: out of memory"). An idle
# socket holds almost none of it; its ~3.3 KB of kernel memory is slab
# (IDLE_SOCKET_KERNEL_BYTES) and comes on top. What fills tcp_mem is a
# broadcast: one 256-byte message to 500,000 subscribers queues ~1 KiB of
# skb per socket (truesize, not payload), about 0.5 GiB at once, and slow
# readers keep theirs. The kernel default (about 4.5/6/9 % of RAM) is sized
# for a general-purpose host; a dedicated edge host gives sockets 1/16, 1/8
# and 1/4 of RAM, leaving the rest for the slab above and the gateway.
tcp_mem_low=$((mem_pages / 16))
tcp_mem_pressure=$((mem_pages / 8))
tcp_mem_high=$((mem_pages / 4))
read -r cur_low cur_pressure cur_high _ <<<"$(current net.ipv4.tcp_mem) 0 0 0"
tcp_mem="$((cur_low > tcp_mem_low ? cur_low : tcp_mem_low)) $((cur_pressure > tcp_mem_pressure ? cur_pressure : tcp_mem_pressure)) $((cur_high > tcp_mem_high ? cur_high : tcp_mem_high))"

# keys and values, in the order printed and written; comments go into the
# file --apply writes.
keys=()
values=()
comments=()
recommend() {
	keys+=("$1")
	values+=("$2")
	comments+=("$3")
}

recommend net.core.somaxconn "$(at_least net.core.somaxconn 65535)" \
	"Accept queue per listening socket: absorbs reconnect storms (every client of a restarted node at once)."
recommend net.ipv4.tcp_max_syn_backlog "$(at_least net.ipv4.tcp_max_syn_backlog 65535)" \
	"Half-open connections waiting for the handshake's final ACK."
recommend net.core.netdev_max_backlog "$(at_least net.core.netdev_max_backlog 16384)" \
	"Packets queued per CPU between the NIC and the TCP stack during bursts."
recommend fs.file-max "$(at_least fs.file-max 2097152)" \
	"Open files, system-wide: every connection is one."
recommend fs.nr_open "$(at_least fs.nr_open 2097152)" \
	"Ceiling for any process's descriptor limit: LimitNOFILE=$NOFILE must not exceed it."
recommend net.ipv4.ip_local_port_range "10240 65535" \
	"Ephemeral ports for outgoing connections (load generators, proxies in front, the broker link): ~55,000 per destination address and port. Starts above 10240 so the gateway's own ports (8080, 9090) are never handed out."
recommend net.ipv4.tcp_tw_reuse 1 \
	"Reuse TIME_WAIT ports for new outgoing connections (load generators, proxies); does not affect accepted connections."
recommend net.ipv4.tcp_mem "$tcp_mem" \
	"Pages (of $page_size bytes) all TCP buffers may use: low, pressure, high = RAM/16, RAM/8, RAM/4 (never below the current value). Each idle socket also costs ~3.3 KB of kernel slab that tcp_mem does not count."
recommend net.ipv4.tcp_rmem "4096 16384 1048576" \
	"Receive buffer min, default, max per socket: clients send little, and a small default keeps the advertised window (and kernel memory) of idle connections small; autotuning still grows a busy one to 1 MiB."
recommend net.ipv4.tcp_wmem "4096 16384 1048576" \
	"Send buffer min, default, max per socket: a slow reader can park at most 1 MiB in the kernel on top of shardgate's -send-queue-bytes before it is disconnected as a slow consumer."
if [ -n "$(current net.netfilter.nf_conntrack_max)" ]; then
	recommend net.netfilter.nf_conntrack_max "$(at_least net.netfilter.nf_conntrack_max 2097152)" \
		"Connection tracking is loaded on this host: every WebSocket is an entry, and a full table drops new connections ('nf_conntrack: table full'). Better still, exempt the public port with a NOTRACK rule."
fi

# conf_file prints the file --apply writes.
conf_file() {
	echo "# Written by shardgate scripts/tune-host.sh on $(date -u +%Y-%m-%d) for a host with $((mem_kib / 1024)) MiB of RAM."
	echo "# Edge host holding many mostly idle WebSockets. Restart shardgate after changing somaxconn."
	local i
	for i in "${!keys[@]}"; do
		echo
		fold -s -w 76 <<<"${comments[$i]}" | sed -e 's/ *$//' -e 's/^/# /'
		echo "${keys[$i]} = ${values[$i]}"
	done
}

if $apply; then
	tmp="$(mktemp "$CONF.XXXXXX")"
	trap 'rm -f "$tmp"' EXIT
	conf_file >"$tmp"
	chmod 0644 "$tmp"
	mv "$tmp" "$CONF"
	trap - EXIT
	echo "==> wrote $CONF"
	sysctl --system
	echo "==> applied. Set LimitNOFILE=$NOFILE in the shardgate unit and restart shardgate."
	exit 0
fi

echo "shardgate host tuning: print only (run with --apply as root to write $CONF)"
echo
printf '%-32s %-28s %-28s %s\n' "setting" "current" "recommended" "state"
for i in "${!keys[@]}"; do
	cur="$(current "${keys[$i]}")"
	state=change
	if [ "$cur" = "${values[$i]}" ]; then
		state=ok
	elif [ -z "$cur" ]; then
		cur="(not present)"
	fi
	printf '%-32s %-28s %-28s %s\n' "${keys[$i]}" "$cur" "${values[$i]}" "$state"
done

echo
echo "Per-process open files (not a sysctl):"
printf '  %-30s soft %s, hard %s\n' "this shell (ulimit -n)" "$(ulimit -Sn)" "$(ulimit -Hn)"
echo "  systemd unit, [Service] section (scripts/shardgate.service has it):"
echo "    LimitNOFILE=$NOFILE"
echo "  load generators run from a shell (cmd/shardbench), /etc/security/limits.d/60-shardgate.conf:"
echo "    *  soft  nofile  $NOFILE"
echo "    *  hard  nofile  $NOFILE"

echo
sockets_mib=$((NOFILE * IDLE_SOCKET_KERNEL_BYTES / 1024 / 1024))
printf 'Memory at %d connections: ~%d MiB of kernel slab (%d bytes per idle socket, outside tcp_mem),\n' \
	"$NOFILE" "$sockets_mib" "$IDLE_SOCKET_KERNEL_BYTES"
printf 'plus the gateway process (shardgate_connections vs process_resident_memory_bytes on the dashboard),\n'
printf 'plus queued data up to tcp_mem high (%d MiB here). This host has %d MiB of RAM.\n' \
	"$((${tcp_mem##* } * page_size / 1024 / 1024))" "$((mem_kib / 1024))"

echo
echo "--apply would write $CONF:"
echo
conf_file | sed 's/^./    &/'
