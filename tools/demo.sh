#!/usr/bin/env bash
# demo.sh - the appliance end to end on a generated store (./dev demo).
#
# Generates a store, builds its nightly snapshot, starts every process with
# `weftctl up`, and with redis-cli as the store app: shows a returning
# shopper's recommendations, sends live session events (browsing a new
# category, adding to cart, a size selling out), shows the recommendations
# again with the reasons, defines a cart-abandonment segment and shows its
# push arriving on its own (and TRIGGERS), then shuts the appliance down
# cleanly.
set -euo pipefail
BUILD=${1:?usage: demo.sh BUILD_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WEFT_DEMO_DIR:-$ROOT/.demo}
STORE=$WORK/store
RUN=$WORK/run
SNAP=$STORE/night.snap
CLI=(redis-cli -s "$RUN/weft.sock")
bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }

mkdir -p "$WORK"
bold "1. A synthetic store (weft-gen): catalog, shoppers, two weeks of sessions"
"$BUILD/tools/weft-gen" --out "$STORE" --users 2000 --items 3000 --days 14 --seed 42
wc -l "$STORE"/*.csv | sed 's/^/   /'

bold "2. The nightly batch (weft-batch build)"
"$BUILD/batch/weft-batch" build --events "$STORE/events.csv" --catalog "$STORE/catalog.csv" --out "$SNAP"

bold "3. Start the appliance (weftctl up: admin, 2 rankers, ingest)"
rm -rf "$RUN"
UPLOG=$WORK/up.log
# --sessions: the demo store's routing table (the default holds 4M live sessions)
"$BUILD/admin/weftctl" up --dir "$RUN" --shards 2 --snapshot "$SNAP" --sessions 262144 > "$WORK/up.out" 2> "$UPLOG" &
UP=$!
cleanup() { kill "$UP" 2>/dev/null || true; wait "$UP" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 200); do
	grep -q ready "$WORK/up.out" 2>/dev/null && break
	kill -0 "$UP" 2>/dev/null || { cat "$UPLOG"; echo "weftctl up failed" >&2; exit 1; }
	sleep 0.1
done
grep -q ready "$WORK/up.out" || { cat "$UPLOG"; echo "weftctl up did not become ready" >&2; exit 1; }
sed 's/^/   /' "$WORK/up.out"

# Catalog lookups for display: item -> "category brand price".
declare -A CAT
while IFS=, read -r id cat brand price _; do CAT[$id]="$cat $brand $price"; done < <(tail -n +2 "$STORE/catalog.csv")
show() {
	local i=1
	while read -r it; do
		[ -n "$it" ] || continue
		printf '   %2d. %-10s %s\n' "$i" "$it" "${CAT[$it]:-?}"
		i=$((i + 1))
	done
}

USER=$(awk -F, 'NR > 1 && $2 != "" { n[$2]++ } END { for (u in n) if (n[u] > 40) { print u; exit } }' "$STORE/events.csv")
SESSION="demo-$(date +%s)"
TOPCAT=$(awk -F, -v u="$USER" 'NR > 1 && $2 == u { print $5 }' "$STORE/events.csv" |
	while read -r it; do echo "${CAT[$it]%% *}"; done | sort | uniq -c | sort -rn | head -3 | awk '{printf "%s(%s) ", $2, $1}')
bold "4. Shopper $USER arrives. History says they like: $TOPCAT"
echo "   RECS $SESSION $USER 10 PAGE home  -> the nightly set, reranked by an empty session:"
"${CLI[@]}" RECS "$SESSION" "$USER" 10 PAGE home | show

# A category this shopper has never browsed, and a few of its items.
NEWCAT=$(awk -F, -v u="$USER" 'NR > 1 && $2 == u { print $5 }' "$STORE/events.csv" |
	while read -r it; do echo "${CAT[$it]%% *}"; done | sort -u > "$WORK/seen.txt"
	tail -n +2 "$STORE/catalog.csv" | cut -d, -f2 | sort | uniq -c | sort -rn | awk '{print $2}' |
	grep -vxF -f "$WORK/seen.txt" | head -1)
mapfile -t NEWITEMS < <(awk -F, -v c="$NEWCAT" 'NR > 1 && $2 == c { print $1 }' "$STORE/catalog.csv" | head -4)
bold "5. In this visit they browse something new: $NEWCAT"
for it in "${NEWITEMS[@]:0:3}"; do
	printf '   EVENT pdp %-8s -> %s\n' "$it" "$("${CLI[@]}" EVENT "$SESSION" "$USER" pdp "$it")"
	"${CLI[@]}" EVENT "$SESSION" "$USER" dwell "$it" ms 9000 > /dev/null
done
printf '   EVENT cart_add %s -> %s\n' "${NEWITEMS[0]}" "$("${CLI[@]}" EVENT "$SESSION" "$USER" cart_add "${NEWITEMS[0]}")"

bold "6. Recommendations now (carted item gone, the new intent and its complements up):"
"${CLI[@]}" RECS "$SESSION" "$USER" 10 PAGE home | tee "$WORK/after.txt" | show

TOP=$(head -1 "$WORK/after.txt")
bold "7. Why is $TOP first?  RECS ... EXPLAIN (score and its parts)"
"${CLI[@]}" RECS "$SESSION" "$USER" 3 PAGE home EXPLAIN | paste - - - - - - - - - - - - - - |
	awk -F'\t' '{ printf "   %-8s score %s =", $1, $2; for (i = 3; i < NF; i += 2) printf " %s %s", $i, $(i + 1); print "" }'

bold "8. $TOP sells out in every size (STOCK), and disappears at once:"
sizes=$(awk -F, -v i="$TOP" '$1 == i { print $2 }' "$STORE/inventory.csv")
[ -n "$sizes" ] || sizes="-"
for s in $sizes; do
	if [ "$s" = "-" ]; then "${CLI[@]}" STOCK "$TOP" "" 0 > /dev/null; else "${CLI[@]}" STOCK "$TOP" "$s" 0 > /dev/null; fi
done
"${CLI[@]}" RECS "$SESSION" "$USER" 10 PAGE home | show

bold "9. The session as recorded (HISTORY), and the appliance's state (weftctl status)"
"${CLI[@]}" --no-raw HISTORY "$SESSION" | head -24 | sed 's/^/   /'
"$BUILD/admin/weftctl" --dir "$RUN" status | sed 's/^/   /'

bold "10. A real-time segment: cart abandonment, pushed on its own"
RULE='did(cart_add, 1h) and idle(3s) and not did(purchase, 1h)'
echo "   weftctl segment define abandon '$RULE'"
"$BUILD/admin/weftctl" --dir "$RUN" segment define abandon "$RULE" | sed 's/^/   /'
"${CLI[@]}" SUBSCRIBE abandon > "$WORK/pushes.txt" &
SUB=$!
sleep 0.3
CART="cart-$(date +%s)"
T0=$(date +%s.%N)
printf '   EVENT %s - cart_add %s -> %s   (then nothing more is sent)\n' "$CART" "${NEWITEMS[1]:-${NEWITEMS[0]}}" \
	"$("${CLI[@]}" EVENT "$CART" - cart_add "${NEWITEMS[1]:-${NEWITEMS[0]}}")"
for _ in $(seq 100); do
	grep -q "\"session\":\"$CART\"" "$WORK/pushes.txt" && break
	sleep 0.1
done
printf '   redis-cli SUBSCRIBE abandon received, %.1f s after the cart_add:\n' "$(echo "$(date +%s.%N) - $T0" | bc)"
grep "\"session\":\"$CART\"" "$WORK/pushes.txt" | sed 's/^/     /'
kill "$SUB" 2>/dev/null || true
wait "$SUB" 2>/dev/null || true
echo "   and a consumer that was down catches up with TRIGGERS 0 SEGMENT abandon:"
"${CLI[@]}" TRIGGERS 0 SEGMENT abandon | sed 's/^/     /'

bold "11. Stop (weftctl shutdown)"
"$BUILD/admin/weftctl" --dir "$RUN" shutdown
wait "$UP"
trap - EXIT
echo "   stopped cleanly; logs in $UPLOG"
