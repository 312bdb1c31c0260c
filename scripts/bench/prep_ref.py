"""Reference for scripts/bench-prep.ts: nnDetection's preprocessing steps done the way nnDetection / nnU-Net
1.7.1 do them, with Debian's nibabel, NumPy, SciPy and scikit-image, over a multiprocessing pool:

  per case: read NIfTI (float32, SimpleITK axis order), non-zero mask + binary_fill_holes, crop, seg -1
            outside, instance boxes (np.where per instance), foreground samples [::10] and their stats,
            save the cropped case (.npy), GT caches of the raw label (instances, semantic, boxes json)
  plan:     median spacing with nnDetection's anisotropy rule
  per case: resize(order=3, mode='edge', anti_aliasing=False, clip=True) per channel in float64, seg order
            0, normalise (CT: clip + z-score with the foreground stats; else per-image z-score), boxes,
            save data/seg .npy + boxes json

usage: /usr/bin/python3 scripts/bench/prep_ref.py TASK_DIR OUT_DIR NUM_PROCESSES
"""
import json
import os
import sys
from multiprocessing import Pool

import nibabel as nib
import numpy as np
from scipy import ndimage
from skimage.transform import resize


def load(path):
    img = nib.load(path)
    arr = np.asarray(img.dataobj, dtype=np.float32).transpose(2, 1, 0)  # SimpleITK order
    return np.ascontiguousarray(arr), tuple(float(s) for s in img.header.get_zooms()[:3][::-1])


def boxes_of(seg):
    out = {}
    for i in np.unique(seg):
        if i <= 0:
            continue
        w = np.where(seg == i)
        out[int(i)] = [int(w[0].min()) - 1, int(w[1].min()) - 1, int(w[0].max()) + 1, int(w[1].max()) + 1, int(w[2].min()) - 1, int(w[2].max()) + 1]
    return out


def stats(x):
    if x.size == 0:
        return None
    return {"median": float(np.median(x)), "mean": float(np.mean(x)), "sd": float(np.std(x)), "mn": float(np.min(x)), "mx": float(np.max(x)),
            "percentile_99_5": float(np.percentile(x, 99.5)), "percentile_00_5": float(np.percentile(x, 0.5))}


def crop_case(args):
    task, out, case, nmod, modalities = args
    raw = os.path.join(task, "raw_splitted")
    chans = [load(os.path.join(raw, "imagesTr", f"{case}_{m:04d}.nii.gz")) for m in range(nmod)]
    spacing = chans[0][1]
    data = np.stack([c[0] for c in chans])
    seg, _ = load(os.path.join(raw, "labelsTr", f"{case}.nii.gz"))
    seg = np.round(seg).astype(np.int32)
    inst = json.load(open(os.path.join(raw, "labelsTr", f"{case}.json")))["instances"]
    gt = os.path.join(out, "labelsTr")
    np.save(os.path.join(gt, f"{case}_instances_gt.npy"), seg[None])
    sem = np.zeros_like(seg)
    for k, c in inst.items():
        sem[seg == int(k)] = c + 1
    np.save(os.path.join(gt, f"{case}_seg_gt.npy"), sem[None])
    json.dump({"boxes": boxes_of(seg)}, open(os.path.join(gt, f"{case}_boxes_gt.json"), "w"))
    mask = ndimage.binary_fill_holes(np.any(data != 0, axis=0))
    w = np.where(mask)
    bbox = [[int(a.min()), int(a.max()) + 1] for a in w]
    sl = tuple(slice(a, b) for a, b in bbox)
    data = data[(slice(None),) + sl]
    seg = seg[sl]
    seg[(seg == 0) & (~mask[sl])] = -1
    fg = [data[m][seg > 0][::10] for m in range(nmod)]
    props = {"case": case, "spacing": spacing, "bbox": bbox, "boxes": boxes_of(seg), "local": [stats(f) for f in fg], "instances": inst}
    np.save(os.path.join(out, "cropped", f"{case}.npy"), np.concatenate([data, seg[None].astype(np.float32)]))
    np.save(os.path.join(out, "cropped", f"{case}_fg.npy"), np.stack(fg) if fg[0].size else np.zeros((nmod, 0), np.float32))
    json.dump(props, open(os.path.join(out, "cropped", f"{case}.json"), "w"))
    return props


def preprocess_case(args):
    out, case, target, schemes, fgstats = args
    props = json.load(open(os.path.join(out, "cropped", f"{case}.json")))
    arr = np.load(os.path.join(out, "cropped", f"{case}.npy"))
    data, seg = arr[:-1], np.round(arr[-1]).astype(np.int32)
    shape = np.array(seg.shape)
    new_shape = np.round(np.array(props["spacing"]) / np.array(target) * shape).astype(int)
    if np.any(new_shape != shape):
        data = np.stack([resize(data[c].astype(float), new_shape, order=3, mode="edge", anti_aliasing=False, clip=True) for c in range(len(data))]).astype(np.float32)
        seg = resize(seg.astype(float), new_shape, order=0, mode="edge", anti_aliasing=False, clip=True).astype(np.int32)
    seg[seg < -1] = 0
    for c, scheme in enumerate(schemes):
        if scheme == "CT":
            s = fgstats[c]
            data[c] = (np.clip(data[c], s["percentile_00_5"], s["percentile_99_5"]) - s["mean"]) / s["sd"]
        else:
            data[c] = (data[c] - data[c].mean()) / (data[c].std() + 1e-8)
    d = os.path.join(out, "preprocessed")
    np.save(os.path.join(d, f"{case}.npy"), data)
    np.save(os.path.join(d, f"{case}_seg.npy"), seg[None])
    json.dump({"boxes": boxes_of(seg)}, open(os.path.join(d, f"{case}_boxes.json"), "w"))


def main():
    task, out, nproc = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ds = json.load(open(os.path.join(task, "dataset.json")))
    mods = [ds["modalities"][k] for k in sorted(ds["modalities"], key=int)]
    for d in ("cropped", "preprocessed", "labelsTr"):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    cases = sorted({f.split(".")[0][:-5] for f in os.listdir(os.path.join(task, "raw_splitted", "imagesTr"))})
    with Pool(nproc) as pool:
        props = pool.map(crop_case, [(task, out, c, len(mods), mods) for c in cases], chunksize=1)
        sp = np.array([p["spacing"] for p in props])
        sz = np.array([[b - a for a, b in p["bbox"]] for p in props])
        target = np.percentile(sp, 50, axis=0)
        w = int(np.argmax(target))
        o = [i for i in range(3) if i != w]
        tsize = np.percentile(sz, 50, axis=0)
        if target[w] > 3 * min(target[o]) and tsize[w] * 3 < min(tsize[o]):  # the anisotropy rule (spec 3.4)
            t = np.percentile(sp[:, w], 10)
            target[w] = max(min(target[o]), t) + 1e-5 if t < min(target[o]) else t
        fg = [np.load(os.path.join(out, "cropped", f"{c}_fg.npy")) for c in cases]
        fgstats = [stats(np.concatenate([f[m] for f in fg])) for m in range(len(mods))]
        schemes = ["CT" if m == "CT" else "nonCT" for m in mods]
        pool.map(preprocess_case, [(out, c, list(target), schemes, fgstats) for c in cases], chunksize=1)
    print(json.dumps({"cases": len(cases), "target": list(target)}))


if __name__ == "__main__":
    main()
