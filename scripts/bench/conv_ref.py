#!/usr/bin/python3
"""PyTorch reference timings for scripts/bench-conv.ts: conv3d forward, backward-data and backward-weight
(aten::convolution_backward with output masks, the same kernels autograd runs; oneDNN on CPU).

usage: /usr/bin/python3 scripts/bench/conv_ref.py THREADS REPS '<json list of cases>'
each case: {"name", "n", "cin", "cout", "dhw": [d,h,w], "k": [kd,kh,kw], "s": [sd,sh,sw]}
prints one JSON object {name: {"fwd": s, "bwd_data": s, "bwd_weight": s}} of median seconds.
"""
import json
import statistics
import sys
import time

import torch


def median_time(fn, reps):
    fn()  # warm-up (oneDNN primitive creation)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    threads, reps, cases = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {}
    with torch.no_grad():
        for c in cases:
            k, s = tuple(c["k"]), tuple(c["s"])
            pad = tuple((kk - 1) // 2 for kk in k)
            x = torch.randn((c["n"], c["cin"]) + tuple(c["dhw"]))
            w = torch.randn((c["cout"], c["cin"]) + k) * 0.1
            b = torch.randn(c["cout"])
            y = torch.nn.functional.conv3d(x, w, b, stride=s, padding=pad)
            dy = torch.randn_like(y)
            args = (dy, x, w, [c["cout"]], list(s), list(pad), [1, 1, 1], False, [0, 0, 0], 1)
            out[c["name"]] = {
                "fwd": median_time(lambda: torch.nn.functional.conv3d(x, w, b, stride=s, padding=pad), reps),
                "bwd_data": median_time(lambda: torch.ops.aten.convolution_backward(*args, [True, False, False]), reps),
                "bwd_weight": median_time(lambda: torch.ops.aten.convolution_backward(*args, [False, True, True]), reps),
            }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
