#!/usr/bin/env bash
# conn_memory — memory per idle loopback connection: starts build/hb_server and build/hb_client
# with N connections pinged every second, and reports the server's RSS growth per connection
# and the kernel's slab growth per connection (both ends: socket, file, inode, dentry, epoll
# item).  Needs root for /proc/slabinfo.  Usage: bench/conn_memory.sh [N] (default 5000).
set -euo pipefail
N=${1:-5000}
BUILD=${BUILD:-build}
tmp=$(mktemp -d)
trap 'kill "${client:-}" "${server:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT

slab_bytes() {
  awk 'NR > 2 && ($1 == "TCP" || $1 == "sock_inode_cache" || $1 == "filp" || $1 == "dentry" ||
       $1 ~ /^eventpoll_/ || $1 == "tcp_bind_bucket" || $1 == "skbuff_head_cache" || $1 ~ /^kmalloc-/) {
       s += $2 * $4 } END { print s }' /proc/slabinfo
}
tcp_pages() { awk '/^TCP:/ { print $NF }' /proc/net/sockstat; }
rss_kib() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }

"$BUILD/hb_server" --listen 127.0.0.1:0 --ping-interval-ms 1000 --idle-timeout-ms 30000 2>"$tmp/server" &
server=$!
for _ in $(seq 50); do grep -q 'listening on port' "$tmp/server" && break; sleep 0.1; done
port=$(grep -o 'port [0-9]*' "$tmp/server" | head -1 | cut -d' ' -f2)
slab0=$(slab_bytes); pages0=$(tcp_pages); rss0=$(rss_kib "$server")
"$BUILD/hb_client" --connect "127.0.0.1:$port" --conns "$N" --ping-interval-ms 1000 --idle-timeout-ms 30000 2>"$tmp/client" &
client=$!
for _ in $(seq 120); do grep -q "^open $N " "$tmp/server" && break; sleep 0.5; done
sleep 3  # a few ping rounds, so every connection has sent and received
slab1=$(slab_bytes); pages1=$(tcp_pages); rss1=$(rss_kib "$server")
tail -1 "$tmp/server"
echo "N=$N  server RSS +$(( (rss1 - rss0) * 1024 / N )) B/connection  kernel slab +$(( (slab1 - slab0) / N )) B/connection (both ends)  TCP buffer pages $(( pages1 - pages0 ))"
