#!/bin/bash
# systemd_verify.sh - render the systemd unit templates with this build's
# binaries and check the deployment as shipped:
#   * `systemd-analyze verify` is clean on every unit;
#   * every service's `systemd-analyze security` exposure is <= 2.0;
#   * weft.target starts as many rankers as WEFT_SHARDS says (weft-generator,
#     run on a config of 3, auto and garbage, on given online cores), weft-admin
#     gets that count and each ranker its core as weftctl up pins them, each given the config's
#     memory budget, spill budget and checkpoint interval;
#   * weft-batch.service passes the catalog, inventory and history named
#     in the one config file, which every service reads;
#   * sysusers.d creates the weft user and the weft-clients group, and
#     tmpfiles.d creates /run/weft (0755: clients reach weft.sock) and
#     /var/lib/weft (into a scratch root).
# Exit 77 (skip) when systemd-analyze is not installed.
set -euo pipefail
src=${WEFT_SOURCE_ROOT:?}
bld=${WEFT_BUILD_ROOT:?}
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
mkdir -p "$tmp/bin"
for p in admin/weft-admin ingest/weft-ingest rankers/weft-ranker batch/weft-batch observe/weft-observe; do
	[ -x "$bld/$p" ] || { echo "missing $bld/$p: build first"; exit 1; }
	ln -s "$bld/$p" "$tmp/bin/"
done
# weft-kafka is built only with librdkafka; its unit is checked either way.
if [ -x "$bld/kafka/weft-kafka" ]; then ln -s "$bld/kafka/weft-kafka" "$tmp/bin/"; else ln -s /bin/true "$tmp/bin/weft-kafka"; fi
for f in "$src"/systemd/*.in; do
	sed -e "s|@bindir@|$tmp/bin|g" -e "s|@sysconfdir@|/etc|g" -e "s|@unitdir@|$tmp|g" "$f" > "$tmp/$(basename "${f%.in}")"
done
mv "$tmp/weft-generator" "$tmp/bin/weft-generator"
chmod +x "$tmp/bin/weft-generator"
cp "$src"/systemd/*.target "$src"/systemd/*.timer "$tmp/"
cd "$tmp"
# verify prints problems on stderr and exits non-zero on errors; an instance
# of the template stands in for it.
cp weft-ranker@.service weft-ranker@0.service
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no ./*.service ./*.socket ./*.timer ./*.target 2>&1) || {
	echo "$out"; exit 1; }
# Warnings are failures too, except the host lacking our service user.
bad=$(printf '%s\n' "$out" | grep -v -e '^$' -e "User=weft" -e "Group=weft" -e "weft-clients" || true)
if [ -n "$bad" ]; then echo "$bad"; exit 1; fi
echo "systemd units verify clean"

# Exposure (needs --offline, systemd >= 250).
if systemd-analyze security --offline=yes ./weft-admin.service >/dev/null 2>&1; then
	for u in weft-admin.service weft-ingest.service weft-ranker@0.service weft-batch.service weft-observe.service \
		weft-kafka.service; do
		level=$(systemd-analyze security --offline=yes "./$u" 2>&1 |
			sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
		[ -n "$level" ] || fail "no exposure level for $u"
		awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' || fail "$u exposure $level > 2.0"
		echo "$u exposure $level"
	done
else
	echo "systemd-analyze security --offline unsupported here: exposure not checked"
fi

# What the units say. The rankers: the generator's wants for WEFT_SHARDS=3,
# verified through the unit path systemd would read them from.
printf 'WEFT_SHARDS=3\n' > "$tmp/three.conf"
WEFT_CONF="$tmp/three.conf" WEFT_CPU_ONLINE=0-7 "$tmp/bin/weft-generator" "$tmp/gen"
[ "$(ls "$tmp/gen/weft.target.wants" | tr '\n' ' ')" = "weft-ranker@0.service weft-ranker@1.service weft-ranker@2.service " ] ||
	fail "weft-generator did not make weft.target want weft-ranker@0..2 for WEFT_SHARDS=3"
# What weft-admin and each ranker are told (drop-ins): the count, and the
# cores weftctl up would choose; shards: "rankers admin cpus" for a config
# and the online cores.
layout() {
	local d="$tmp/lay" cpus=""
	rm -rf "$d"
	printf '%s\n' "$1" > "$tmp/lay.conf"
	WEFT_CONF="$tmp/lay.conf" WEFT_CPU_ONLINE="$2" "$tmp/bin/weft-generator" "$d" 2>"$tmp/lay.err"
	for i in $(seq 0 $(($(ls "$d/weft.target.wants" | wc -l) - 1))); do
		cpus="$cpus$(sed -n 's/^Environment=WEFT_RANKER_CPU=//p' "$d/weft-ranker@$i.service.d/50-weft-cpu.conf"),"
	done
	echo "$(ls "$d/weft.target.wants" | wc -l) $(sed -n 's/^Environment=WEFT_SHARDS_RESOLVED=//p' "$d/weft-admin.service.d/50-weft-shards.conf") ${cpus%,}"
}
[ "$(layout WEFT_SHARDS=3 0-7)" = "3 3 1,2,3" ] || fail "WEFT_SHARDS=3 on 8 cores: $(layout WEFT_SHARDS=3 0-7)"
[ "$(layout WEFT_SHARDS=auto 0-1)" = "1 1 1" ] || fail "auto on 2 cores: $(layout WEFT_SHARDS=auto 0-1)"
[ "$(layout WEFT_SHARDS=auto 0,2-3,6)" = "3 3 2,3,6" ] || fail "auto on cores 0,2,3,6: $(layout WEFT_SHARDS=auto 0,2-3,6)"
[ "$(layout '# no WEFT_SHARDS' 0)" = "1 1 0" ] || fail "unset on 1 core: $(layout '# no WEFT_SHARDS' 0)"
[ "$(layout WEFT_SHARDS=2 0-1)" = "2 2 0,1" ] || fail "WEFT_SHARDS=2 on 2 cores: $(layout WEFT_SHARDS=2 0-1)"
[ "$(layout WEFT_SHARDS=99 0-3)" = "3 3 1,2,3" ] && grep -q "outside 1..64" "$tmp/lay.err" ||
	fail "WEFT_SHARDS=99: not auto with a message"
grep -q '^ExecStart=.*weft-admin .*--shards ${WEFT_SHARDS_RESOLVED}' weft-admin.service || fail "weft-admin does not take the generator's count"
grep -q '^ExecStart=.*weft-ranker .*--cpu ${WEFT_RANKER_CPU}' weft-ranker@.service || fail "weft-ranker@ does not take the generator's core"
echo "weft-generator: the count and cores weftctl up would choose, told to weft-admin and each ranker"
rm -f weft-ranker@0.service
out=$(SYSTEMD_UNIT_PATH="$tmp/gen:$tmp:" SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no \
	weft.target 2>&1) || { echo "$out"; fail "weft.target with the generated rankers does not verify"; }
bad=$(printf '%s\n' "$out" | grep -v -e '^$' -e "User=weft" -e "Group=weft" -e "weft-clients" || true)
[ -z "$bad" ] || { echo "$bad"; fail "weft.target with the generated rankers: warnings"; }
printf 'WEFT_SHARDS=lots\n' > "$tmp/bad.conf"
WEFT_CONF="$tmp/bad.conf" WEFT_CPU_ONLINE=0-4 "$tmp/bin/weft-generator" "$tmp/gen2" 2>"$tmp/gen2.err"
[ "$(ls "$tmp/gen2/weft.target.wants" | wc -l)" = 4 ] && grep -q "not a number or auto" "$tmp/gen2.err" ||
	fail "weft-generator on a bad WEFT_SHARDS: not auto's 4 rankers on 5 cores with a message"
echo "weft-generator: WEFT_SHARDS=3 starts 3 rankers; a bad value auto's count, said"
for k in MEMORY_BUDGET SESSION_TTL SPILL_BUDGET CHECKPOINT_INTERVAL; do
	grep -q "^ExecStart=.*weft-ranker .*\${WEFT_$k}" weft-ranker@.service || fail "weft-ranker@ does not pass WEFT_$k"
	grep -q "^WEFT_$k=" "$src/systemd/weft.conf" || fail "weft.conf does not name WEFT_$k"
done
grep -q "^ExecStart=.*weft-batch nightly .*--journal-retention \${WEFT_JOURNAL_RETENTION}" weft-batch.service ||
	fail "weft-batch.service does not pass --journal-retention"
for o in catalog inventory history; do
	u=$(echo "$o" | tr a-z A-Z)
	grep -q "^ExecStart=.*weft-batch nightly .*--$o \${WEFT_$u}" weft-batch.service ||
		fail "weft-batch.service does not pass --$o"
	grep -q "^WEFT_$u=" "$src/systemd/weft.conf" || fail "weft.conf does not name WEFT_$u"
done
for u in weft-admin.service weft-ingest.service weft-ranker@.service weft-batch.service weft-observe.service; do
	grep -q '^EnvironmentFile=-/etc/weft/weft.conf$' "$u" || fail "$u does not read /etc/weft/weft.conf"
done

# sysusers.d and tmpfiles.d, applied to a scratch root.
root="$tmp/root"
mkdir -p "$root/etc"
if command -v systemd-sysusers >/dev/null; then
	systemd-sysusers --root="$root" "$src/systemd/weft.sysusers" 2>&1 | grep -v '^Creating' || true
	grep -q '^weft:' "$root/etc/passwd" || fail "sysusers.d did not create user weft"
	grep -q '^weft-clients:' "$root/etc/group" || fail "sysusers.d did not create group weft-clients"
	if command -v systemd-tmpfiles >/dev/null; then
		systemd-tmpfiles --root="$root" --create "$src/systemd/weft.tmpfiles"
		uid=$(awk -F: '$1 == "weft" { print $3 }' "$root/etc/passwd")
		[ "$(stat -c '%a %u' "$root/run/weft")" = "755 $uid" ] || fail "/run/weft is not 0755 weft"
		[ "$(stat -c '%a %u' "$root/var/lib/weft/input")" = "750 $uid" ] || fail "/var/lib/weft/input"
	fi
	echo "sysusers.d and tmpfiles.d apply"
fi
echo "systemd deployment checks pass"
