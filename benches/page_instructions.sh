#!/usr/bin/env bash
# Instructions the whole server spends per page request (user space: hyper's parsing and
# writing, axum's routing, the page cache), for each route of `examples/page_server.rs`,
# counted by callgrind while wrk drives the route. Unlike requests/s, the count does not
# move with the load other processes put on a shared machine, so it tells small
# differences apart; wrk (`benches/page_wrk.sh`) still gives the throughput itself.
#
#   benches/page_instructions.sh            # wrk -t1 -c8 -d6s per route under callgrind
#   DURATION=10s benches/page_instructions.sh
#
# Needs valgrind and wrk (Debian: apt-get install -y valgrind wrk). The server runs under
# callgrind; after warming, each route's window is bracketed by `callgrind_control --dump`,
# so that a dump holds exactly the instructions of that route's requests.
set -euo pipefail

DURATION=${DURATION:-6s}
ADDRESS=${ADDRESS:-127.0.0.1:3002}
ROUTES=(static headed layer macro peer)

cd "$(dirname "$0")/.."
for tool in valgrind callgrind_control callgrind_annotate wrk curl; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done

cargo build -p cachemacro-benches --release --features axum --example page_server
server_binary="${CARGO_TARGET_DIR:-target}/release/examples/page_server"

scratch=$(mktemp -d)
valgrind --tool=callgrind --callgrind-out-file="$scratch/dump" "$server_binary" "$ADDRESS" \
    >/dev/null 2>"$scratch/valgrind.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$scratch"' EXIT
for _ in $(seq 300); do
    curl -sf -o /dev/null "http://$ADDRESS/renders" && break
    sleep 0.1
done
kill -0 "$server" 2>/dev/null || { echo "page_server did not start; is $ADDRESS free?" >&2; exit 1; }

# Fill every cache (the first request renders) and warm the connections.
for route in "${ROUTES[@]}"; do
    curl -sf -o /dev/null "http://$ADDRESS/$route/312"
    wrk -t1 -c8 -d1s "http://$ADDRESS/$route/312" >/dev/null
done
renders_warm=$(curl -sf "http://$ADDRESS/renders")

dumps=0
total_instructions() {
    callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}
echo "wrk -t1 -c8 -d$DURATION per route, the server under callgrind"
echo
echo "| route | requests | instructions | per request | / static |"
echo "|---|---:|---:|---:|---:|"
callgrind_control --dump >/dev/null 2>&1
dumps=$((dumps + 1))
for route in "${ROUTES[@]}"; do
    out=$(wrk -t1 -c8 -d"$DURATION" "http://$ADDRESS/$route/312")
    callgrind_control --dump >/dev/null 2>&1
    dumps=$((dumps + 1))
    requests=$(awk '/ requests in / { print $1 }' <<<"$out")
    # Dumps are numbered from 1; each holds what ran since the previous one.
    instructions=$(total_instructions "$scratch/dump.$dumps")
    per_request=$((instructions / requests))
    [ "$route" = static ] && ceiling=$per_request
    awk -v r="$route" -v n="$requests" -v i="$instructions" -v p="$per_request" -v c="$ceiling" \
        'BEGIN { printf "| %s | %d | %d | %d | %.2f |\n", r, n, i, p, p / c }'
done

renders_after=$(curl -sf "http://$ADDRESS/renders")
[ "$renders_after" = "$renders_warm" ] \
    || { echo "a handler ran during the count (not every request was a hit): $renders_after" >&2; exit 1; }
