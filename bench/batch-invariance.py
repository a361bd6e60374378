#!/usr/bin/env python3
"""Batch invariance through a running server (issue 19, acceptance 2).

Sends N greedy /v1/completions requests with different prompts one at a
time, then all N at once, and compares each answer's text. Prints how many
are identical and, for the others, where they first differ; exits 1 when
fewer than --min-identical are identical (default: all).

    bench/batch-invariance.py --base-url http://127.0.0.1:8080 -n 32
"""
import argparse
import concurrent.futures
import json
import random
import sys
import urllib.request


def complete(base, model, prompt, max_tokens, timeout):
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens,
                       "temperature": 0, "ignore_eos": True}).encode()
    req = urllib.request.Request(base + "/v1/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        out = json.load(r)
    return out["choices"][0]["text"], out["usage"]["completion_tokens"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", help="default: the first of GET /v1/models")
    ap.add_argument("-n", "--requests", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--min-identical", type=int, default=-1, help="default: all")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if not a.model:
        with urllib.request.urlopen(a.base_url + "/v1/models", timeout=a.timeout) as r:
            a.model = json.load(r)["data"][0]["id"]
    rng = random.Random(a.seed)
    words = ("the of and to in is was for on that with as by at from his her an "
             "river stone light north market garden winter silver engine signal").split()
    prompts = [" ".join(rng.choice(words) for _ in range(8 + 3 * i)) for i in range(a.requests)]
    alone = [complete(a.base_url, a.model, p, a.max_tokens, a.timeout) for p in prompts]
    with concurrent.futures.ThreadPoolExecutor(a.requests) as ex:
        together = list(ex.map(lambda p: complete(a.base_url, a.model, p, a.max_tokens,
                                                  a.timeout), prompts))
    same = 0
    for i, ((ta, na), (tb, nb)) in enumerate(zip(alone, together)):
        if ta == tb and na == nb:
            same += 1
            continue
        k = next((j for j in range(min(len(ta), len(tb))) if ta[j] != tb[j]),
                 min(len(ta), len(tb)))
        print(f"request {i}: differs at character {k} of {len(ta)} "
              f"({na} vs {nb} tokens): {ta[k:k + 30]!r} vs {tb[k:k + 30]!r}")
    need = a.requests if a.min_identical < 0 else a.min_identical
    print(f"batch invariance: {same}/{a.requests} concurrent greedy answers identical to "
          f"their answer alone ({a.max_tokens} tokens each)")
    return 0 if same >= need else 1


if __name__ == "__main__":
    sys.exit(main())
