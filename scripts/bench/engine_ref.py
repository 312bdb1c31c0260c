#!/usr/bin/python3
"""PyTorch reference for scripts/bench-engine.ts: one RetinaUNetV001 training step (forward, backward with
fixed upstream gradients on the three outputs, torch.optim.SGD Nesterov with masked weight decay) on the
graph of scripts/fixtures/engine_net.py, timed (median of REPS after a warm-up step), and the peak RSS growth
(VmHWM after the steps minus VmRSS before building the model, after a warm-up on a tiny patch).

usage: /usr/bin/python3 scripts/bench/engine_ref.py THREADS REPS '<json {"plan", "patch", "batch"}>'
prints one JSON object {"step_s": median seconds, "peak_bytes": bytes}.
"""
import gc
import json
import os
import re
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from engine_net import build_params, forward  # noqa: E402


def status(key):
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def setup(plan, patch, batch):
    params, order = build_params(plan)
    x = torch.randn(batch, plan["in_channels"], *patch)
    groups = [{"params": [params[n] for n in order if ".norm." not in n], "weight_decay": 3e-5},
              {"params": [params[n] for n in order if ".norm." in n], "weight_decay": 0.0}]
    opt = torch.optim.SGD(groups, lr=0.01, momentum=0.9, nesterov=True)
    return params, x, opt


def step(plan, params, x, opt):
    opt.zero_grad(set_to_none=True)
    cls, reg, seg = forward(plan, params, x)
    torch.autograd.backward([cls, reg, seg], [torch.full_like(cls, 1e-3), torch.full_like(reg, 1e-3), torch.full_like(seg, 1e-3)])
    opt.step()


def main():
    threads, reps, cfg = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    torch.set_num_threads(threads)
    plan, patch, batch = cfg["plan"], cfg["patch"], cfg["batch"]
    tiny = [2, 2, 2]
    for s in plan["strides"]:
        tiny = [a * b for a, b in zip(tiny, s)]
    p, x, opt = setup(plan, tiny, 1)
    step(plan, p, x, opt)
    del p, x, opt
    gc.collect()
    base = status("VmRSS")
    params, x, opt = setup(plan, patch, batch)
    step(plan, params, x, opt)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step(plan, params, x, opt)
        ts.append(time.perf_counter() - t0)
    print(json.dumps({"step_s": statistics.median(ts), "peak_bytes": status("VmHWM") - base}))


if __name__ == "__main__":
    main()
