#!/usr/bin/env python3
"""Prefix cache through a running server (issue 19, acceptance 3).

Sends a streaming /v1/completions request whose prompt is a shared prefix of
about --prefix-len tokens (random words, sized with POST /tokenize) plus a
short question, then --repeats more requests with the same prefix and other
questions. Prints each request's prompt tokens, cached tokens
(usage.prompt_tokens_details.cached_tokens) and time to first token, and the
ratio of the first TTFT to the median of the others. Standard library only.

  bench/prefix-ttft.py --base-url http://127.0.0.1:8080 --prefix-len 1000 \\
      [--min-ratio 5] [--json-out FILE]

Exit 0 when every later request found the whole prefix (but its last token,
which may merge with the question's first) in
the cache and (with --min-ratio) the TTFT ratio reaches it; 1 otherwise;
2 when the server cannot be used.
"""
import argparse
import json
import random
import statistics
import sys
import time
import urllib.error
import urllib.request

WORDS = ("time year people way day man thing woman life child world school state family "
         "group country problem hand part place case week company system program question "
         "work number night point home water room mother area money story fact month lot").split()


def post(base, path, body, timeout):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=timeout)


def n_tokens(base, text, timeout):
    with post(base, "/tokenize", {"content": text, "add_special": True}, timeout) as r:
        return len(json.load(r)["tokens"])


def make_prefix(base, n, rng, timeout):
    """Random words of exactly about n tokens (bisection on the word count)."""
    words = [rng.choice(WORDS) for _ in range(4 * n)]
    lo, hi = 1, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if n_tokens(base, " ".join(words[:mid]), timeout) <= n:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def timed(base, prompt, max_tokens, timeout):
    """(ttft seconds, usage) of one streaming completion."""
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    ttft, usage = None, None
    with post(base, "/v1/completions", body, timeout) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ev = json.loads(line[6:])
            if ev.get("choices") and ev["choices"][0].get("text") and ttft is None:
                ttft = time.perf_counter() - t0
            if ev.get("usage"):
                usage = ev["usage"]
    return ttft, usage


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8080")
    ap.add_argument("--prefix-len", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=4)
    ap.add_argument("--min-ratio", type=float, default=0.0)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json-out")
    a = ap.parse_args()
    if a.prefix_len < 16 or a.repeats < 1 or a.max_tokens < 1:
        ap.error("--prefix-len must be >= 16, --repeats and --max-tokens >= 1")
    base = a.base_url.rstrip("/")
    rng = random.Random(a.seed)
    try:
        prefix = make_prefix(base, a.prefix_len, rng, a.timeout)
        rows = []
        for i in range(a.repeats + 1):
            q = f" Question {i}: what is the {rng.choice(WORDS)} of the {rng.choice(WORDS)}?"
            ttft, usage = timed(base, prefix + q, a.max_tokens, a.timeout)
            if ttft is None or not usage:
                print(f"request {i}: no text or no usage chunk", file=sys.stderr)
                return 1
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
            rows.append({"prompt_tokens": usage["prompt_tokens"], "cached_tokens": cached,
                         "ttft_ms": ttft * 1e3})
    except (OSError, urllib.error.URLError, ValueError, KeyError) as e:
        print(f"prefix-ttft: {e}", file=sys.stderr)
        return 2
    first = rows[0]["ttft_ms"]
    later = statistics.median(r["ttft_ms"] for r in rows[1:])
    ratio = first / later if later > 0 else float("inf")
    for i, r in enumerate(rows):
        print(f"request {i}: prompt {r['prompt_tokens']} tokens, cached {r['cached_tokens']}, "
              f"TTFT {r['ttft_ms']:.1f} ms")
    print(f"TTFT first / median of the others: {ratio:.1f}x")
    prefix_tokens = n_tokens(base, prefix, a.timeout)
    want = prefix_tokens - 1
    ok = all(r["cached_tokens"] >= want for r in rows[1:])
    if not ok:
        print(f"a later request found fewer than {want} of the prefix's {prefix_tokens} tokens "
              "cached", file=sys.stderr)
    if a.min_ratio and ratio < a.min_ratio:
        print(f"TTFT ratio {ratio:.1f} < {a.min_ratio}", file=sys.stderr)
        ok = False
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"prefix_tokens": prefix_tokens, "requests": rows, "ttft_ratio": ratio,
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
