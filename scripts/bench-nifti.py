#!/usr/bin/python3
"""nibabel side of scripts/bench-nifti.ts: times nib.save at gzip levels 6 and 1 and full reads of the given files.

usage: /usr/bin/python3 scripts/bench-nifti.py RAW_F32 NI NJ NK OUTDIR RUNS READ_FILE...
RAW_F32 holds the volume in array order [k][j][i] (C order), as nndet keeps it. Prints one JSON object:
{"write": {"6": median_s, "1": median_s}, "read": {file: median_s}}. nibabel is single-threaded.
Reads use np.asanyarray(img.dataobj): float32 as stored, no float64 conversion (nibabel's fastest full read).
"""
import json
import os
import statistics
import sys
import time

import nibabel as nib
import numpy as np


def main():
    raw, ni, nj, nk, out, runs = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5], int(sys.argv[6])
    files = sys.argv[7:]
    data = np.fromfile(raw, dtype="<f4").reshape(nk, nj, ni).transpose(2, 1, 0)  # (i, j, k), Fortran-contiguous
    img = nib.Nifti1Image(data, np.eye(4))
    res = {"write": {}, "read": {}}
    for level in (6, 1):
        nib.openers.Opener.default_compresslevel = level
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            nib.save(img, os.path.join(out, f"nibabel{level}.nii.gz"))
            ts.append(time.perf_counter() - t0)
        res["write"][str(level)] = statistics.median(ts)
    for f in files:
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            a = np.asanyarray(nib.load(f).dataobj)
            ts.append(time.perf_counter() - t0)
            assert a.shape == (ni, nj, nk) and a.dtype == np.float32
        res["read"][f] = statistics.median(ts)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
