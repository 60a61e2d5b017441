#!/usr/bin/env bash
# Requests/s of a page-cache hit against the ceiling (the same page as a pre-built static
# body), against the same static body with a hit's head (the ceiling of any cache that
# answers those fields) and against the peer crate axum-response-cache, with wrk from
# another process.
#
# Installs nothing: wrk comes from Debian's package (`apt-get install -y wrk`). Run from
# anywhere in the workspace:
#
#   benches/page_wrk.sh                  # 6 rounds of wrk -t1 -c32 -d5s per route
#   ROUNDS=10 DURATION=10s benches/page_wrk.sh
#
# Builds `examples/page_server.rs` in release (honouring CARGO_TARGET_DIR), starts it,
# warms every route and checks that all five answer the same body and that the cached
# routes answer hits (`x-cache: HIT` for ours; for the peer, which stamps nothing on a
# hit, that its handler did not run again). Each round runs every route once, starting
# from a different route in each round so that no route always follows the same one.
# After the last round it checks that no handler ran during the load, then prints the
# per-round requests/s, their ratios and the medians. The server is killed on exit.
set -euo pipefail

ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
ADDRESS=${ADDRESS:-127.0.0.1:3001}
ROUTES=(static headed layer macro peer)

cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl not found" >&2; exit 1; }

cargo build -p cachemacro-benches --release --features axum --example page_server
server_binary="${CARGO_TARGET_DIR:-target}/release/examples/page_server"

"$server_binary" "$ADDRESS" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    curl -sf -o /dev/null "http://$ADDRESS/renders" && break
    sleep 0.1
done

scratch=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$scratch"' EXIT

fail() { echo "page_wrk: $*" >&2; exit 1; }
# A server that could not listen (the port taken) must not leave us measuring another.
kill -0 "$server" 2>/dev/null || fail "page_server exited; is $ADDRESS free?"

# The first request of a cached route renders (a miss); the second must be a hit.
for route in "${ROUTES[@]}"; do
    for attempt in 1 2; do
        curl -sf -D "$scratch/$route.headers" -o "$scratch/$route.body" "http://$ADDRESS/$route/312" \
            || fail "/$route/312 did not answer 200"
    done
    cmp -s "$scratch/static.body" "$scratch/$route.body" \
        || fail "/$route/312 answers a different body than /static/312"
done
for route in layer macro; do
    grep -qi '^x-cache: HIT' "$scratch/$route.headers" \
        || fail "/$route/312 is not a hit after warming: $(tr -d '\r' < "$scratch/$route.headers")"
done
renders_warm=$(curl -sf "http://$ADDRESS/renders")
[ "$renders_warm" = "layer=1 macro=1 peer=1" ] \
    || fail "each cached route must have rendered once while warming, got: $renders_warm"
# Connections and the executor warmed too, not only the caches.
for route in "${ROUTES[@]}"; do
    wrk -t"$THREADS" -c"$CONNECTIONS" -d1s "http://$ADDRESS/$route/312" >/dev/null
done

echo "page body: $(wc -c < "$scratch/static.body") bytes; wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds"
echo "load before: $(uptime)"
for round in $(seq "$ROUNDS"); do
    for step in "${!ROUTES[@]}"; do
        route=${ROUTES[$(( (round - 1 + step) % ${#ROUTES[@]} ))]}
        out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "http://$ADDRESS/$route/312")
        if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
            fail "errors under load on /$route/312: $out"
        fi
        rate=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
        echo "$round $route $rate" >> "$scratch/rates"
    done
done
echo "load after:  $(uptime)"

renders_after=$(curl -sf "http://$ADDRESS/renders")
[ "$renders_after" = "$renders_warm" ] \
    || fail "a handler ran during the load (not every request was a hit): $renders_after"

awk -v rounds="$ROUNDS" '
    { rate[$1, $2] = $3 }
    function median(values, n,    i, j, t) {
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && values[j - 1] > values[j]; j--) {
                t = values[j]; values[j] = values[j - 1]; values[j - 1] = t
            }
        return n % 2 ? values[(n + 1) / 2] : (values[n / 2] + values[n / 2 + 1]) / 2
    }
    END {
        # Columns: each route'"'"'s requests/s, then each ratio as "route/base".
        n = split("static headed layer macro peer", routes, " ")
        m = split("headed/static layer/static macro/static peer/static layer/headed macro/headed layer/peer macro/peer", ratios, " ")
        line = "| round"; rule = "|---"
        for (c = 1; c <= n; c++) { line = line " | " routes[c] " req/s"; rule = rule "|---:" }
        for (c = 1; c <= m; c++) { line = line " | " ratios[c]; rule = rule "|---:" }
        print ""; print line " |"; print rule "|"
        for (r = 1; r <= rounds; r++) {
            line = "| " r
            for (c = 1; c <= n; c++) { col[c, r] = rate[r, routes[c]]; line = line sprintf(" | %.0f", col[c, r]) }
            for (c = 1; c <= m; c++) {
                split(ratios[c], pair, "/")
                col[n + c, r] = rate[r, pair[1]] / rate[r, pair[2]]
                line = line sprintf(" | %.2f", col[n + c, r])
            }
            print line " |"
        }
        medians = "| **median**"; spreads = "| spread"
        for (c = 1; c <= n + m; c++) {
            lo = hi = col[c, 1]
            for (r = 1; r <= rounds; r++) {
                v[r] = col[c, r]
                if (v[r] < lo) lo = v[r]
                if (v[r] > hi) hi = v[r]
            }
            format = c <= n ? "%.0f" : "%.2f"
            medians = medians sprintf(" | **" format "**", median(v, rounds))
            spreads = spreads sprintf(" | " format "-" format, lo, hi)
        }
        print medians " |"; print spreads " |"
    }
' "$scratch/rates"
