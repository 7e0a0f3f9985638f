#!/usr/bin/env bash
# The main job of `make demo`: apply examples/hello.yaml (boots the real test guest),
# show it, diff (clean: exit 0), and delete it.
set -euo pipefail
cd "$(dirname "$0")/.."
qemuctl=${QEMUCTL:-.build/debug/qemuctl}
run() { printf '\n$ qemuctl %s\n' "$*"; "$qemuctl" "$@"; }

run apply -f examples/hello.yaml
run get
state_dir=$("$qemuctl" describe hello -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["serialLog"])')
printf '\n# waiting for the guest to boot (serial log %s)\n' "$state_dir"
for _ in $(seq 1 300); do
  grep -q QEMUCTL-GUEST-READY "$state_dir" 2>/dev/null && break
  sleep 0.1
done
grep -a -m1 QEMUCTL-GUEST-READY "$state_dir" || { echo "the guest did not boot" >&2; exit 1; }
run diff -f examples/hello.yaml
run delete hello
