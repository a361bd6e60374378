#!/usr/bin/env bash
# Issue 19, acceptance 5 in one command on a GPU machine:
#
#   bench/device-serve.sh BUILD_DIR MODEL OUT_DIR
#
# MODEL is made when missing (m40-synth --preset mistral-7b --type q4_0).
# Runs, writing JSON into OUT_DIR:
#   bench-tg.json     m40-llm bench -p 512 -n 128 -r 3 (the tg128 single-stream baseline)
#   bench-batch.json  m40-llm bench --batch 1,8,32,64 -n 128 (engine-level aggregate decode)
#   serve-bench.json  bench/serve-bench.py at concurrency 1,8,32,64, 128 tokens out,
#                     against m40-llm serve --max-seqs 128 on loopback
#   prefix-ttft.json  bench/prefix-ttft.py: TTFT of a 1,000-token prefix cold, then cached
#   summary.json      the issue's targets, met or not
# then prints the summary. KV f16 everywhere (the engine's and server's default).
# Exit status: 0 when every step ran (targets missed or not), 1 otherwise.
#
# Sizes and device come from the environment (defaults: the issue's):
#   DEVICE=cuda THREADS= TG_P=512 N=128 R=3 BATCHES=1,8,32,64 BATCH_P=128
#   CONC=1,8,32,64 INPUT_LEN=128 OUTPUT_LEN=128 NUM_PROMPTS= MAX_SEQS=128
#   PREFIX_LEN=1000 PORT= (free port) STEP_TIMEOUT=300 LOAD_TIMEOUT=300 SERVE_ARGS= PRESET=mistral-7b TYPE=q4_0
# e.g. the CPU path with a tiny model:
#   DEVICE=cpu THREADS=2 TG_P=16 N=8 R=1 BATCHES=1,4 BATCH_P=16 CONC=1,4 INPUT_LEN=16 \
#   OUTPUT_LEN=8 MAX_SEQS=8 PRESET=tiny TYPE=q8_0 bench/device-serve.sh build /tmp/t.gguf /tmp/o
set -uo pipefail
if [ $# -ne 3 ]; then
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build=$1 model=$2 out=$3
bin=$build/m40-llm
DEVICE=${DEVICE:-cuda} TG_P=${TG_P:-512} N=${N:-128} R=${R:-3}
BATCHES=${BATCHES:-1,8,32,64} BATCH_P=${BATCH_P:-128} CONC=${CONC:-1,8,32,64}
INPUT_LEN=${INPUT_LEN:-128} OUTPUT_LEN=${OUTPUT_LEN:-128} MAX_SEQS=${MAX_SEQS:-128}
STEP_TIMEOUT=${STEP_TIMEOUT:-300} LOAD_TIMEOUT=${LOAD_TIMEOUT:-300}
threads=(${THREADS:+--threads "$THREADS"})
[ -x "$bin" ] || { echo "device-serve: $bin is not built" >&2; exit 1; }
mkdir -p "$out" || exit 1
log=$out/device-serve.log
: >"$log"
say() { echo "device-serve: $*" | tee -a "$log" >&2; }

srv_pid=
stop_server() { # SIGTERM (the server's grace period), then SIGKILL
    [ -n "$srv_pid" ] || return 0
    kill -TERM "$srv_pid" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$srv_pid" 2>/dev/null
    wait "$srv_pid" 2>/dev/null
    srv_pid=
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

failed=0
step() { # NAME OUTFILE CMD...: runs under the step timeout, stdout to OUTFILE
    local name=$1 file=$2 t0 rc
    shift 2
    say "$name: $*"
    t0=$(date +%s)
    timeout -k 10 "$STEP_TIMEOUT" "$@" >"$file" 2>>"$log"
    rc=$?
    say "$name: exit $rc in $(($(date +%s) - t0)) s"
    [ $rc -eq 0 ] || { failed=1; tail -5 "$log" >&2; }
    return $rc
}

if [ ! -s "$model" ]; then
    say "making $model (m40-synth --preset ${PRESET:-mistral-7b} --type ${TYPE:-q4_0})"
    "$build/m40-synth" --preset "${PRESET:-mistral-7b}" --type "${TYPE:-q4_0}" -q -o "$model" \
        2>>"$log" || { say "m40-synth failed"; exit 1; }
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null
    "$bin" --version
} >"$out/device.txt" 2>&1

step tg "$out/bench-tg.json" "$bin" bench "$model" -p "$TG_P" -n "$N" -r "$R" \
    --device "$DEVICE" --kv f16 "${threads[@]}" --json
step batch "$out/bench-batch.json" "$bin" bench "$model" --batch "$BATCHES" -p "$BATCH_P" \
    -n "$N" -r "$R" --device "$DEVICE" --kv f16 "${threads[@]}" --json

port=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
url=http://127.0.0.1:$port
say "serve on $url"
# shellcheck disable=SC2086 # SERVE_ARGS: extra words on purpose
"$bin" serve --model "$model" --addr "127.0.0.1:$port" --max-seqs "$MAX_SEQS" \
    --device "$DEVICE" --kv f16 "${threads[@]}" ${SERVE_ARGS:-} >"$out/serve.log" 2>&1 &
srv_pid=$!
ready=0
for _ in $(seq 1 $((LOAD_TIMEOUT * 5))); do
    kill -0 "$srv_pid" 2>/dev/null || break
    if python3 - "$url/health" <<'PY' 2>/dev/null; then ready=1; break; fi
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
PY
    sleep 0.2
done
if [ $ready -eq 1 ]; then
    step serve-bench "$out/serve-bench.txt" python3 "$root/bench/serve-bench.py" \
        --base-url "$url" --concurrency "$CONC" --input-len "$INPUT_LEN" \
        --output-len "$OUTPUT_LEN" ${NUM_PROMPTS:+--num-prompts "$NUM_PROMPTS"} \
        --json-out "$out/serve-bench.json"
    cat "$out/serve-bench.txt" >>"$log"
    # acceptance 3: a 1,000-token shared prefix, TTFT cold vs cached
    step prefix "$out/prefix-ttft.txt" python3 "$root/bench/prefix-ttft.py" --base-url "$url" \
        --prefix-len "${PREFIX_LEN:-1000}" --json-out "$out/prefix-ttft.json"
    cat "$out/prefix-ttft.txt" | tee -a "$log"
else
    failed=1
    say "the server did not answer GET /health with 200 within ${LOAD_TIMEOUT} s:"
    tail -20 "$out/serve.log" >&2
fi
stop_server
say "server stopped"

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
tg, batch, serve = load("bench-tg.json"), load("bench-batch.json"), load("serve-bench.json")
tg_ts = next((t["avg_ts"] for t in (tg or {}).get("tests", []) if t["n_gen"]), None)
eng = {b["batch"]: b for b in (batch or {}).get("batches", [])}
srv = {lv["concurrency"]: lv for lv in (serve or {}).get("levels", [])}
def srv_stream(c):  # per-stream decode speed inside the server: 1000 / mean TPOT
    lv = srv.get(c)
    return 1e3 / lv["tpot_ms"]["mean"] if lv and lv["tpot_ms"]["mean"] > 0 else None
dev = (batch or {}).get("engine", {}).get("device_name") or "?"
print(f"\n== issue 19 acceptance 5: {(batch or {}).get('model', '?')} on {dev} ==")
if tg_ts:
    print(f"tg{tg['tests'][-1]['n_gen']} (m40-llm bench, single stream): {tg_ts:.1f} tok/s")
print("engine: aggregate decode with all B decoding, and B*N / whole run (prefill included);")
print("server: output tok/s over the whole run (prefill included), C/TPOT: C x 1000 / mean TPOT")
print("|    C | engine decode | engine e2e | TFLOP/s | server out | TFLOP/s | C/TPOT "
      "| out/decode | out/e2e | TTFT p50 ms | TPOT p50 ms | err | early |")
print("|------|---------------|------------|---------|------------|---------|--------"
      "|------------|---------|-------------|-------------|-----|-------|")
f = lambda v, w, d=1: f"{v:{w}.{d}f}" if v is not None else " " * (w - 1) + "-"
for c in sorted(set(eng) | set(srv)):
    e, s = eng.get(c), srv.get(c)
    ed, ee = (e["avg_decode_ts"], e["avg_e2e_ts"]) if e else (None, None)
    so = s["output_throughput"] if s else None
    ps = srv_stream(c)
    print(f"| {c:4d} | {f(ed, 13)} | {f(ee, 10)} | {f(e and e['avg_tflops'], 7, 3)} "
          f"| {f(so, 10)} | {f(s and s.get('output_tflops_fp32'), 7, 3)} | {f(ps and ps * c, 6, 0)} "
          f"| {f(so / ed if so and ed else None, 9, 2)}x | {f(so / ee if so and ee else None, 6, 2)}x "
          f"| {f(s and s['ttft_ms']['median'], 11)} | {f(s and s['tpot_ms']['median'], 11, 2)} "
          f"| {s['errors'] if s else '-':>3} | {s['ended_early'] if s else '-':>5} |")
targets = []
def target(name, got, need, ok):
    targets.append({"target": name, "value": got, "need": need,
                    "met": None if got is None else bool(ok)})
s32 = srv.get(32, {}).get("output_throughput")
target("server: 32 streams >= 3000 tok/s aggregate", s32, 3000, s32 and s32 >= 3000)
s1, s8 = srv.get(1, {}).get("output_throughput"), srv.get(8, {}).get("output_throughput")
r81 = s8 / s1 if s1 and s8 else None
target("server: 8 streams >= 5x 1 stream (output tok/s)", r81, 5, r81 and r81 >= 5)
p1 = srv_stream(1)
r1 = p1 / tg_ts if p1 and tg_ts else None
target("server: 1 stream (1000/TPOT) within 10% of tg (>= 0.9x)", r1, 0.9, r1 and r1 >= 0.9)
for c in sorted(set(eng) & set(srv)):
    so, e = srv[c]["output_throughput"], eng[c]
    r = so / e["avg_decode_ts"] if e["avg_decode_ts"] else None
    target(f"server out >= 90% of engine --batch decode at {c}", r, 0.9, r and r >= 0.9)
    r = so / e["avg_e2e_ts"] if e["avg_e2e_ts"] else None
    target(f"  like for like, both with prefill: server out / engine e2e at {c}", r, 0.9,
           r and r >= 0.9)
pre = load("prefix-ttft.json")
pr = pre["ttft_ratio"] if pre else None
target("prefix cache: TTFT of a cached 1,000-token prefix >= 5x lower", pr, 5, pr and pr >= 5)
for t in targets:
    mark = {True: "MET ", False: "MISS", None: "n/a "}[t["met"]]
    v = "-" if t["value"] is None else f"{t['value']:.2f}"
    print(f"  [{mark}] {t['target']}: {v} (need {t['need']})")
errors = sum(lv["errors"] for lv in srv.values()) + sum(lv["ended_early"] for lv in srv.values())
if errors:
    print(f"  note: {errors} server requests failed or ended before their output length")
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump({"tg_ts": tg_ts, "targets": targets, "device": dev}, f, indent=2)
PY
[ $failed -eq 0 ] || say "some steps failed (see $log)"
exit $failed
