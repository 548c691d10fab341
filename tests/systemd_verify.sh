#!/bin/bash
# systemd_verify.sh - render the systemd unit templates with this build's
# binaries and run `systemd-analyze verify` on them. Exit 77 (skip) when
# systemd-analyze is not installed.
set -euo pipefail
src=${WEFT_SOURCE_ROOT:?}
bld=${WEFT_BUILD_ROOT:?}
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"
for p in admin/weft-admin ingest/weft-ingest rankers/weft-ranker batch/weft-batch; do
	[ -x "$bld/$p" ] || { echo "missing $bld/$p: build first"; exit 1; }
	ln -s "$bld/$p" "$tmp/bin/"
done
for f in "$src"/systemd/*.in; do
	sed -e "s|@bindir@|$tmp/bin|g" -e "s|@sysconfdir@|/etc|g" "$f" > "$tmp/$(basename "${f%.in}")"
done
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
