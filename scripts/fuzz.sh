#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for SECONDS (both at once, one per core).
#
#   scripts/fuzz.sh SECONDS [TARGET...]      TARGET: manifest, qmp-frames (default: both)
#
# `make fuzz` runs it with FUZZ_SECONDS (300), `make test` with 60. Exits non-zero when a
# target crashes, leaks, times out (-timeout=10 s per input) or runs out of memory
# (-rss_limit_mb=2048); the input that did it is saved as fuzz-artifacts/TARGET-crash-…
# (or -leak-, -timeout-, -oom-). Reproduce with: .build-fuzz/release/fuzz-TARGET FILE
#
# The targets are built (release) with -sanitize=fuzzer,address and -DFUZZING in their own scratch
# path (.build-fuzz), so the normal build is untouched. New inputs the fuzzer finds go to
# fuzz-artifacts/corpus/TARGET (not committed); the seeds in fuzz/corpus/TARGET are only read.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(manifest qmp-frames)
swift=${SWIFT:-swift}
scratch=.build-fuzz
artifacts=fuzz-artifacts

runtime=$(dirname "$(readlink -f "$(command -v "$swift")")")/../lib/swift/clang/lib/linux/libclang_rt.fuzzer-x86_64.a
if [ "$(uname -m)" = x86_64 ] && [ ! -e "$runtime" ]; then
  echo "fuzz: libFuzzer is not in this Swift toolchain ($runtime); use a swift.org toolchain" >&2
  exit 1
fi

mkdir -p "$artifacts"
for t in "${targets[@]}"; do
  echo "fuzz: building fuzz-$t (release, -sanitize=fuzzer,address, scratch path $scratch)"
  # --sanitize fuzzer makes SwiftPM link libFuzzer's main; the -Xswiftc flag instruments
  # the Swift code for coverage (SwiftPM passes only address to the compiler). Release:
  # 3-5x the executions per second of a debug build; preconditions and bounds checks stay.
  if ! "$swift" build -c release --scratch-path "$scratch" --sanitize fuzzer --sanitize address \
      -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING --product "fuzz-$t" >"$artifacts/build-$t.log" 2>&1; then
    grep -v "Cannot export local symbol" "$artifacts/build-$t.log" | tail -30 >&2
    echo "fuzz: building fuzz-$t failed" >&2
    exit 1
  fi
done
# Swift's own crash reporter would race libFuzzer's and ASan's handlers (and can hang).
export SWIFT_BACKTRACE=enable=no
# Leaks count as failures: libFuzzer runs LeakSanitizer after an input that allocated more
# than it freed. fuzz/lsan.supp explains the one suppression (Swift's one-time global init).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0}

pids=()
for t in "${targets[@]}"; do
  mkdir -p "$artifacts/corpus/$t"
  dict=()
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  touch "$artifacts/.started-$t"
  echo "fuzz: running fuzz-$t for ${seconds}s (log $artifacts/$t.log)"
  timeout -k 10 $((seconds + 300)) "$scratch/release/fuzz-$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$t-" "${dict[@]}" \
    "$artifacts/corpus/$t" "fuzz/corpus/$t" >"$artifacts/$t.log" 2>&1 &
  pids+=($!)
done

failed=0
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  status=0
  wait "${pids[$i]}" || status=$?
  log="$artifacts/$t.log"
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
  rate=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}' || true)
  rss=$(grep -E '^stat::peak_rss_mb' "$log" | awk '{print $2}' || true)
  if [ "$status" -eq 0 ] && [ -n "$done_line" ]; then
    echo "fuzz-$t: OK  ${execs:-?} runs, ${rate:-?} exec/s, peak RSS ${rss:-?} MB"
    echo "fuzz-$t: $done_line"
  else
    failed=1
    echo "fuzz-$t: FAILED (exit status $status) — end of $log:" >&2
    grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -40 >&2
    find "$artifacts" -maxdepth 1 -name "$t-*" -newer "$artifacts/.started-$t" | sed 's/^/  artifact: /' >&2
  fi
done
exit "$failed"
