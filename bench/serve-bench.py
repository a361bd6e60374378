#!/usr/bin/env python3
"""Serving benchmark for an OpenAI-compatible streaming server (issue 19,
acceptance 5): what `vllm bench serve` reports, with the Python standard
library only.

For each concurrency level C, --num-prompts requests (default 4*C, at least
8) go to the server with at most C in flight (a thread pool of C workers,
one http.client connection per request), each a streaming completion of
random prompt text of about --input-len tokens, asking for exactly
--output-len tokens (max_tokens with "ignore_eos": true, as vLLM's
benchmark does) and the usage chunk (stream_options.include_usage).

Reported per level, as vLLM names them:
  request / output / total token throughput over the level's wall time,
  TTFT   time to the first chunk carrying text,
  TPOT   (e2e - TTFT) / (output tokens - 1) per request,
  ITL    gaps between consecutive chunks carrying text,
  E2EL   end-to-end latency,
with mean, median and p99 in ms; errors; requests that ended before
--output-len tokens (a server ignoring ignore_eos). With the model's
parameter count (from GET /props n_params, or --n-params, or
--fp32-flops-per-token) it prints the achieved FP32 TFLOP/s of the output
throughput, approximated as 2 * params * tok/s.

  bench/serve-bench.py --base-url http://127.0.0.1:8080 --concurrency 1,8,32,64 \\
      --input-len 128 --output-len 128 --json-out bench/results/NAME.json
"""
import argparse
import concurrent.futures
import datetime
import http.client
import json
import math
import random
import sys
import time
import urllib.parse

WORDS = (
    "the of and to in is was that for on with as by at from his her they this which "
    "be are were had have has not but all one there their been would will more when who "
    "time year people way day man thing woman life child world school state family group "
    "country problem hand part place case week company system program question work "
    "government number night point home water room mother area money story fact month lot "
    "right study book eye job word business issue side kind head house service friend "
    "father power hour game line end member law car city community name president team "
    "minute idea kid body information back parent face others level office door health "
    "person art war history party result change morning reason research girl guy moment "
    "air teacher force education river mountain garden window table paper music light"
).split()


# ---- HTTP ----

class Client:
    def __init__(self, base_url, api_key, timeout):
        u = urllib.parse.urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"--base-url {base_url!r}: expected http://HOST:PORT")
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port or (443 if self.https else 80)
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    def connect(self):
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def call(self, method, path, body=None):
        """(status, parsed JSON or None) of a small non-streaming call."""
        c = self.connect()
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, self.prefix + path, body=data, headers=self.headers)
            r = c.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw)
            except ValueError:
                return r.status, None
        finally:
            c.close()


def sse_events(resp):
    """Yields the data of each server-sent event ("data: ..." lines)."""
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.rstrip(b"\r\n")
        if line.startswith(b"data:"):
            yield line[5:].lstrip(b" ").decode("utf-8", "replace")


def run_request(client, endpoint, body, chat):
    """One streamed request; returns a dict of its timings and counts."""
    out = {"ok": False, "ttft": None, "itl": [], "chunks": 0, "prompt_tokens": None,
           "completion_tokens": None, "finish_reason": None, "error": None}
    t0 = time.perf_counter()
    c = client.connect()
    try:
        c.request("POST", client.prefix + endpoint, body=json.dumps(body).encode(),
                  headers=client.headers)
        r = c.getresponse()
        if r.status != 200:
            raw = r.read(4096).decode("utf-8", "replace")
            out["error"] = f"HTTP {r.status}: {raw.strip()[:300]}"
            return out
        last = None
        done = False
        for data in sse_events(r):
            if data == "[DONE]":
                done = True
                break
            ev = json.loads(data)
            if "error" in ev:
                out["error"] = f"stream error: {json.dumps(ev['error'])[:300]}"
                return out
            if ev.get("usage"):
                u = ev["usage"]
                out["prompt_tokens"] = u.get("prompt_tokens")
                out["completion_tokens"] = u.get("completion_tokens")
                out["cached_tokens"] = (u.get("prompt_tokens_details") or {}).get("cached_tokens")
            for ch in ev.get("choices") or []:
                text = (ch.get("delta") or {}).get("content") if chat else ch.get("text")
                if ch.get("finish_reason"):
                    out["finish_reason"] = ch["finish_reason"]
                if not text:
                    continue
                now = time.perf_counter()
                if last is None:
                    out["ttft"] = now - t0
                else:
                    out["itl"].append(now - last)
                last = now
                out["chunks"] += 1
        out["e2e"] = time.perf_counter() - t0
        if done:  # read the body's end, so the connection closes cleanly
            if c.sock:
                c.sock.settimeout(5)
            r.read()
        if not done:
            out["error"] = "the stream ended without data: [DONE]"
        else:  # all tokens without text (no TTFT): counted, left out of the latencies
            out["ok"] = True
        return out
    except (OSError, http.client.HTTPException, ValueError) as e:
        out["error"] = f"{type(e).__name__}: {e}"
        return out
    finally:
        c.close()


# ---- prompts ----

def random_text(rng, n_words, tag):
    return f"{tag} " + " ".join(rng.choice(WORDS) for _ in range(n_words))


def make_prompts(client, args, n, rng, can_tokenize):
    """n distinct prompts of about args.input_len tokens (exact when the
    server's POST /tokenize counts them; add_special as the completion
    route adds BOS). Returns (prompts, how they were sized)."""
    if args.prompt_kind == "ids":
        lo, hi = 0, args.vocab_size
        return [[rng.randrange(lo, hi) for _ in range(args.input_len)] for _ in range(n)], \
            f"{args.input_len} random token ids in [0, {hi})"
    prompts = []
    target = args.input_len
    for i in range(n):
        text = f"{i}: " + " ".join(rng.choice(WORDS) for _ in range(3 * target + 8))
        if not can_tokenize:  # ~1.3 tokens a word of ~5.5 characters
            prompts.append(text[:max(1, round(target * 4.2))])
            continue
        # bisect on the cut (in characters): token counts of prefixes grow
        # with them, one token at a time or nearly, so most cuts are exact
        seen = {}

        def count(c):
            if c not in seen:
                st, doc = client.call("POST", "/tokenize",
                                      {"content": text[:c], "add_special": True})
                if st != 200 or not isinstance(doc, dict) or "tokens" not in doc:
                    raise LookupError
                seen[c] = len(doc["tokens"])
            return seen[c]

        try:
            lo, hi = 1, len(text)
            while hi - lo > 1 and count(lo) != target:
                mid = (lo + hi) // 2
                if count(mid) > target:
                    hi = mid
                else:
                    lo = mid
            best = min(seen, key=lambda c: (abs(seen[c] - target), -c))
            prompts.append(text[:best])
        except LookupError:
            can_tokenize = False
            prompts.append(text[:max(1, round(target * 4.2))])
    how = "random words, sized with POST /tokenize" if can_tokenize else \
        "random words, ~1.3 tokens a word (no POST /tokenize)"
    return prompts, how


# ---- statistics ----

def pct(xs, q):
    """Percentile with linear interpolation (numpy's default)."""
    if not xs:
        return 0.0
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    f = math.floor(k)
    c = min(f + 1, len(s) - 1)
    return s[f] + (s[c] - s[f]) * (k - f)


def summary(xs, scale=1e3):
    xs = [x * scale for x in xs]
    mean = sum(xs) / len(xs) if xs else 0.0
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs)) if xs else 0.0
    return {"mean": mean, "median": pct(xs, 50), "p99": pct(xs, 99), "std": sd}


def run_level(client, args, conc, prompts, flops_per_token):
    chat = args.endpoint.endswith("/chat/completions")

    def body(p):
        b = {"model": args.model, "max_tokens": args.output_len, "temperature": 0,
             "stream": True, "stream_options": {"include_usage": True}}
        if not args.no_ignore_eos:
            b["ignore_eos"] = True
        if chat:
            b["messages"] = [{"role": "user", "content": p}]
        else:
            b["prompt"] = p
        return b

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=conc) as pool:
        res = list(pool.map(lambda p: run_request(client, args.endpoint, body(p), chat), prompts))
    dur = time.perf_counter() - t0
    ok = [r for r in res if r["ok"]]
    errors = [r["error"] for r in res if not r["ok"]]
    n_out = [r["completion_tokens"] if r["completion_tokens"] is not None else r["chunks"]
             for r in ok]
    n_in = [r["prompt_tokens"] for r in ok if r["prompt_tokens"] is not None]
    early = sum(1 for n in n_out if n < args.output_len)
    timed = [(r, n) for r, n in zip(ok, n_out) if r["ttft"] is not None]
    tpot = [(r["e2e"] - r["ttft"]) / (n - 1) for r, n in timed if n > 1]
    itl = [x for r in ok for x in r["itl"]]
    out_tok, in_tok = sum(n_out), sum(n_in)
    lv = {
        "concurrency": conc,
        "num_prompts": len(prompts),
        "completed": len(ok),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "ended_early": early,
        "no_usage": sum(1 for r in ok if r["completion_tokens"] is None),
        "no_text": len(ok) - len(timed),
        "cached_prompt_tokens": sum(r.get("cached_tokens") or 0 for r in ok),
        "duration_s": dur,
        "total_input_tokens": in_tok,
        "total_output_tokens": out_tok,
        "mean_input_tokens": in_tok / len(n_in) if n_in else None,
        "mean_output_tokens": out_tok / len(ok) if ok else 0,
        "request_throughput": len(ok) / dur,
        "output_throughput": out_tok / dur,
        "total_token_throughput": (in_tok + out_tok) / dur,
        "ttft_ms": summary([r["ttft"] for r, _ in timed]),
        "tpot_ms": summary(tpot),
        "itl_ms": summary(itl),
        "e2el_ms": summary([r["e2e"] for r in ok]),
    }
    if flops_per_token:
        lv["output_tflops_fp32"] = flops_per_token * lv["output_throughput"] / 1e12
    return lv


def print_level(lv):
    w = 40
    print(f"{' Serving Benchmark Result (concurrency ' + str(lv['concurrency']) + ') ':=^60}")
    rows = [("Successful requests:", lv["completed"]),
            ("Failed requests:", lv["errors"]),
            ("Ended before --output-len:", lv["ended_early"]),
            ("Without text (not in latencies):", lv["no_text"]),
            ("Benchmark duration (s):", f"{lv['duration_s']:.2f}"),
            ("Total input tokens:", lv["total_input_tokens"]),
            ("Of them from the prefix cache:", lv["cached_prompt_tokens"]),
            ("Mean input tokens:", f"{lv['mean_input_tokens'] or 0:.1f}"),
            ("Total generated tokens:", lv["total_output_tokens"]),
            ("Request throughput (req/s):", f"{lv['request_throughput']:.2f}"),
            ("Output token throughput (tok/s):", f"{lv['output_throughput']:.2f}"),
            ("Total token throughput (tok/s):", f"{lv['total_token_throughput']:.2f}")]
    if "output_tflops_fp32" in lv:
        rows.append(("Output FP32 TFLOP/s (2*params*tok/s):", f"{lv['output_tflops_fp32']:.3f}"))
    for k, v in rows:
        print(f"{k:<{w}}{v:>20}")
    for key, name in (("ttft_ms", "Time to First Token"), ("tpot_ms", "Time per Output Token"),
                      ("itl_ms", "Inter-token Latency"), ("e2el_ms", "End-to-end Latency")):
        print(f"{' ' + name + ' ':-^60}")
        for s in ("mean", "median", "p99"):
            label = f"{s.capitalize() if s != 'p99' else 'P99'} {key.split('_')[0].upper()} (ms):"
            print(f"{label:<{w}}{lv[key][s]:>20.2f}")
    for e in lv["error_samples"]:
        print(f"  error: {e}")
    print("=" * 60)


def parse_levels(s):
    try:
        v = [int(x) for x in s.split(",")]
    except ValueError:
        v = []
    if not v or any(x < 1 or x > 4096 for x in v):
        raise argparse.ArgumentTypeError(f"{s!r}: expected positive integers, e.g. 1,8,32,64")
    return v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default="http://127.0.0.1:8080")
    ap.add_argument("--endpoint", default="/v1/completions",
                    help="/v1/completions (default) or /v1/chat/completions")
    ap.add_argument("--model", default=None, help="model id sent (default: GET /v1/models' first)")
    ap.add_argument("--concurrency", type=parse_levels, default=[1, 8, 32, 64])
    ap.add_argument("--num-prompts", type=int, default=0, help="per level (default max(8, 4*C))")
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--prompt-kind", choices=("text", "ids"), default="text",
                    help="random words (default) or random token ids (needs n_vocab)")
    ap.add_argument("--vocab-size", type=int, default=0, help="for --prompt-kind ids "
                    "(default: GET /props n_vocab)")
    ap.add_argument("--no-ignore-eos", action="store_true", help="do not send ignore_eos")
    ap.add_argument("--warmup", type=int, default=1, help="untimed requests first (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--timeout", type=float, default=600, help="per request, seconds")
    ap.add_argument("--n-params", type=float, default=0,
                    help="model parameters (default: GET /props n_params)")
    ap.add_argument("--fp32-flops-per-token", type=float, default=0,
                    help="FLOPs per generated token (default 2 * params)")
    ap.add_argument("--json-out", default=None, help="write every figure here")
    args = ap.parse_args(argv)
    if args.input_len < 1 or args.output_len < 1 or args.num_prompts < 0:
        ap.error("--input-len and --output-len must be >= 1, --num-prompts >= 0")

    try:
        client = Client(args.base_url, args.api_key, args.timeout)
    except ValueError as e:
        ap.error(str(e))
    try:
        st, props = client.call("GET", "/props")
    except OSError as e:
        print(f"serve-bench: cannot reach {args.base_url}: {e}", file=sys.stderr)
        return 1
    props = props if st == 200 and isinstance(props, dict) else None
    if args.model is None:
        st, models = client.call("GET", "/v1/models")
        data = models.get("data") if st == 200 and isinstance(models, dict) else None
        args.model = data[0]["id"] if data else "default"
    n_params = args.n_params or (props or {}).get("n_params") or 0
    flops = args.fp32_flops_per_token or 2 * n_params
    if args.prompt_kind == "ids" and not args.vocab_size:
        args.vocab_size = int((props or {}).get("n_vocab") or 0)
        if not args.vocab_size:
            ap.error("--prompt-kind ids needs --vocab-size (the server has no /props n_vocab)")

    rng = random.Random(args.seed)
    chat = args.endpoint.endswith("/chat/completions")
    can_tok = not chat  # a chat template adds tokens /tokenize cannot count
    levels = []
    for i, conc in enumerate(args.concurrency):
        n = args.num_prompts or max(8, 4 * conc)
        prompts, how = make_prompts(client, args, n + (args.warmup if i == 0 else 0), rng,
                                    can_tok)
        if i == 0:
            print(f"prompts: {how}; model {args.model!r}; {args.endpoint}", file=sys.stderr)
            for _ in range(args.warmup):
                w = run_level(client, args, 1, [prompts.pop()], 0)
                if w["errors"]:
                    print(f"serve-bench: warm-up failed: {w['error_samples'][0]}",
                          file=sys.stderr)
                    return 1
        lv = run_level(client, args, conc, prompts, flops)
        levels.append(lv)
        print_level(lv)
        sys.stdout.flush()

    print(f"\n| conc |  req/s | out tok/s | TFLOP/s | TTFT p50/p99 ms | TPOT p50/p99 ms "
          f"| ITL p50/p99 ms | err | early |")
    print("|------|--------|-----------|---------|-----------------|-----------------"
          "|----------------|-----|-------|")
    for lv in levels:
        tf = f"{lv['output_tflops_fp32']:.3f}" if "output_tflops_fp32" in lv else "-"
        print(f"| {lv['concurrency']:4d} | {lv['request_throughput']:6.2f} "
              f"| {lv['output_throughput']:9.2f} | {tf:>7} "
              f"| {lv['ttft_ms']['median']:7.1f}/{lv['ttft_ms']['p99']:7.1f} "
              f"| {lv['tpot_ms']['median']:7.2f}/{lv['tpot_ms']['p99']:7.2f} "
              f"| {lv['itl_ms']['median']:6.2f}/{lv['itl_ms']['p99']:7.2f} "
              f"| {lv['errors']:3d} | {lv['ended_early']:5d} |")
    if args.json_out:
        doc = {"tool": "serve-bench", "date": datetime.datetime.now(datetime.timezone.utc)
               .isoformat(timespec="seconds"), "command": sys.argv, "base_url": args.base_url,
               "endpoint": args.endpoint, "model": args.model, "input_len": args.input_len,
               "output_len": args.output_len, "prompt_kind": args.prompt_kind,
               "ignore_eos": not args.no_ignore_eos, "n_params": n_params,
               "fp32_flops_per_token": flops, "props": props, "levels": levels}
        with open(args.json_out, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 1 if any(lv["errors"] for lv in levels) else 0


if __name__ == "__main__":
    sys.exit(main())
