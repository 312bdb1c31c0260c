#!/usr/bin/env python3
"""PyTorch + cuDNN reference for scripts/bench-gpu.ts (run on the GPU machine, where torch and cuDNN are).

usage: python3 scripts/bench/gpu_ref.py '<json {"layers": [...], "plan", "patch", "batch", "reps", "device", "dtype"}>'
layers: [{"name", "kind": "conv"|"convt", "n", "cin", "cout", "dhw", "kernel", "stride"}] with dhw the input
size of the layer (as src/model/graph.ts lists it).

Per layer: Conv3d / ConvTranspose3d forward, backward-data and backward-weight in bf16 with
channels_last_3d and torch.backends.cudnn.benchmark = True (aten.convolution_backward with one output mask at
a time, so each pass is timed alone), CUDA-event timing, median of `reps` after warm-up.
Network: one RetinaUNetV001 training step (scripts/fixtures/engine_net.py, the same graph as ours): forward
under torch.autocast(bfloat16) with channels_last_3d, backward with fixed upstream gradients, SGD Nesterov
with masked weight decay; median seconds and peak memory (torch.cuda.max_memory_allocated, from a fresh
reset after building the model, + the parameters, gradients and momentum it holds).
Prints one JSON object {"layers": [{"name", "fwd_s", "bwd_data_s", "bwd_weight_s"}], "step_s", "peak_bytes",
"torch", "cudnn", "device_name"}.
"""
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from engine_net import build_params, forward  # noqa: E402


def timer(dev):
    if dev.type == "cuda":
        def run(f, reps):
            f()
            torch.cuda.synchronize()
            ts = []
            for _ in range(reps):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                f()
                b.record()
                b.synchronize()
                ts.append(a.elapsed_time(b) / 1000.0)
            return statistics.median(ts)
    else:
        import time

        def run(f, reps):
            f()
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
            return statistics.median(ts)
    return run


def layer_times(L, dev, reps, run, dt):
    cl = torch.channels_last_3d
    k, s = L["kernel"], L["stride"]
    x = torch.randn(L["n"], L["cin"], *L["dhw"], device=dev, dtype=dt).to(memory_format=cl)
    if L["kind"] == "conv":
        w = torch.randn(L["cout"], L["cin"], *k, device=dev, dtype=dt).to(memory_format=cl)
        pad = [(v - 1) // 2 for v in k]
        y = torch.nn.functional.conv3d(x, w, None, s, pad)
        transposed = False
    else:
        w = torch.randn(L["cin"], L["cout"], *k, device=dev, dtype=dt).to(memory_format=cl)
        pad = [0, 0, 0]
        y = torch.nn.functional.conv_transpose3d(x, w, None, s)
        transposed = True
    dy = torch.randn_like(y).contiguous(memory_format=cl)

    def fwd():
        if transposed:
            torch.nn.functional.conv_transpose3d(x, w, None, s)
        else:
            torch.nn.functional.conv3d(x, w, None, s, pad)

    def bwd(mask):
        return lambda: torch.ops.aten.convolution_backward(dy, x, w, None, s, pad, [1, 1, 1], transposed, [0, 0, 0], 1, mask)

    return {
        "name": L["name"],
        "fwd_s": run(fwd, reps),
        "bwd_data_s": run(bwd([True, False, False]), reps),
        "bwd_weight_s": run(bwd([False, True, False]), reps),
    }


def network(cfg, dev, reps, run, dt):
    plan, patch, batch = cfg["plan"], cfg["patch"], cfg["batch"]
    params, order = build_params(plan, init="torch")
    cl = torch.channels_last_3d
    P = {}
    for n in order:
        t = params[n].detach().to(dev)
        if t.dim() == 5:
            t = t.contiguous(memory_format=cl)
        P[n] = t.requires_grad_()
    groups = [{"params": [P[n] for n in order if ".norm." not in n], "weight_decay": 3e-5},
              {"params": [P[n] for n in order if ".norm." in n], "weight_decay": 0.0}]
    opt = torch.optim.SGD(groups, lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, plan["in_channels"], *patch, device=dev).contiguous(memory_format=cl)

    def step():
        opt.zero_grad(set_to_none=False)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dt == torch.bfloat16):
            cls, reg, seg = forward(plan, P, x)
        torch.autograd.backward([cls, reg, seg], [torch.full_like(cls, 1e-3), torch.full_like(reg, 1e-3), torch.full_like(seg, 1e-3)])
        opt.step()

    step()  # creates the gradients and momentum buffers
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = run(step, reps)
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else 0
    return t, peak


def main():
    cfg = json.loads(sys.argv[1])
    dev = torch.device(cfg.get("device", "cuda"))
    reps = int(cfg.get("reps", 10))
    torch.backends.cudnn.benchmark = True
    run = timer(dev)
    # "dtype": "float32" only for a dry run on a CPU (torch 1.13's CPU bf16 conv_transpose3d is broken)
    dt = getattr(torch, cfg.get("dtype", "bfloat16"))
    layers = [layer_times(L, dev, reps, run, dt) for L in cfg["layers"]]
    step_s, peak = network(cfg, dev, max(3, reps // 2), run, dt) if cfg.get("network", True) else (None, None)
    print(json.dumps({
        "layers": layers, "step_s": step_s, "peak_bytes": peak, "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version() if dev.type == "cuda" else None,
        "device_name": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
    }))


if __name__ == "__main__":
    main()
