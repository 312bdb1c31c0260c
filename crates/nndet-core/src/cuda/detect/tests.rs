//! Device detection kernels (boxes, anchors, coder, NMS, WBC, top-k) against the CPU kernels on every test backend (the emulator always): random
//! inputs with odd counts (1, 63, 64, 65, 200, and one sort above the 1024-key tile), score and distance
//! ties, zero-volume boxes, empty GT lists. Indices (NMS, ATSS, WBC labels) must be equal; IoUs, distances
//! and anchors bit-identical (same f32 operations, no fma); values through logf/expf within 1e-5 relative.
use super::*;
use crate::cpu::detect::{anchors as ca, boxes as cb, nms as cn, select as csel, wbc as cw};
use crate::cuda::{sync, test_backends, DevBuf};

pub(super) use crate::cuda::testutil::{up, zeros, Rng};

pub(super) fn down<T: Copy>(b: Backend, d: &DevBuf) -> Vec<T> {
    sync(b).unwrap();
    d.to_vec::<T>().unwrap()
}

/// Boxes on a quarter-voxel grid (many equal edges), every 7th of zero volume when `degenerate`.
pub(super) fn boxes(rng: &mut Rng, n: usize, extent: f32, degenerate: bool) -> Vec<f32> {
    let mut v = Vec::with_capacity(n * 6);
    for i in 0..n {
        let q = |x: f32| (x * 4.0).round() / 4.0;
        let (x, y, z) = (q(rng.unit() * extent), q(rng.unit() * extent), q(rng.unit() * extent));
        let (w, h, d) = (q(1.0 + rng.unit() * 12.0), q(1.0 + rng.unit() * 12.0), q(1.0 + rng.unit() * 12.0));
        let w = if degenerate && i % 7 == 3 { 0.0 } else { w };
        v.extend_from_slice(&[x, y, x + w, y + h, z, z + d]);
    }
    v
}

pub(super) fn same_bits(d: &[f32], c: &[f32], what: &str) {
    assert_eq!(d.len(), c.len(), "{what}: length");
    for (i, (x, y)) in d.iter().zip(c).enumerate() {
        assert!(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()), "{what}[{i}]: device {x} cpu {y}");
    }
}

/// |d - c| <= rtol * max(|c|, scale) elementwise (scale: the magnitude the value is computed from).
pub(super) fn close(d: &[f32], c: &[f32], rtol: f32, scale: f32, what: &str) {
    assert_eq!(d.len(), c.len(), "{what}: length");
    for (i, (x, y)) in d.iter().zip(c).enumerate() {
        assert!((x - y).abs() <= rtol * y.abs().max(scale), "{what}[{i}]: device {x} cpu {y}");
    }
}

#[test]
fn box_ops_equal_cpu() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for b in test_backends() {
        for &(n, m) in &[(1usize, 1usize), (63, 65), (64, 5), (7, 200), (300, 3)] {
            let (ba, bb) = (boxes(&mut rng, n, 20.0, true), boxes(&mut rng, m, 20.0, true));
            let (da, db) = (up(b, &ba), up(b, &bb));
            for kind in [cb::Pairwise::Iou, cb::Pairwise::Giou, cb::Pairwise::CenterDist] {
                let out = zeros(b, n * m * 4);
                pairwise(b, da.ptr(), n, db.ptr(), m, kind as i32, 1e-7, out.ptr(), 0).unwrap();
                let mut want = vec![0f32; n * m];
                cb::pairwise(&ba, &bb, kind, 1e-7, &mut want);
                same_bits(&down::<f32>(b, &out), &want, &format!("pairwise {kind:?} {n}x{m}"));
                let k = n.min(m);
                let out = zeros(b, k * 4);
                elementwise(b, da.ptr(), db.ptr(), k, kind as i32, 1e-7, out.ptr(), 0).unwrap();
                let mut want = vec![0f32; k];
                cb::elementwise(&ba[..k * 6], &bb[..k * 6], kind, 1e-7, &mut want);
                same_bits(&down::<f32>(b, &out), &want, &format!("elementwise {kind:?}"));
            }
            let (areas, centers) = (zeros(b, n * 4), zeros(b, n * 12));
            areas_centers(b, da.ptr(), n, areas.ptr(), centers.ptr(), 0).unwrap();
            let (mut wa, mut wc) = (vec![0f32; n], vec![0f32; n * 3]);
            cb::areas_centers(&ba, &mut wa, &mut wc);
            same_bits(&down::<f32>(b, &areas), &wa, "areas");
            same_bits(&down::<f32>(b, &centers), &wc, "centers");
            let shifted: Vec<f32> = ba.iter().map(|v| v - 4.0).collect();
            let dc = up(b, &shifted);
            clip(b, dc.ptr(), n, [9.5, 12.0, 7.25], 0).unwrap();
            let mut want = shifted.clone();
            cb::clip(&mut want, [9.5, 12.0, 7.25]);
            same_bits(&down::<f32>(b, &dc), &want, "clip");
            for min_size in [0.0f32, 2.0, 6.5, f32::NAN] {
                let (keep, count) = (zeros(b, n * 4), zeros(b, 4));
                remove_small(b, da.ptr(), n, min_size, keep.ptr(), count.ptr(), 0).unwrap();
                let mut wk = vec![0i32; n];
                let wn = cb::remove_small(&ba, min_size, &mut wk);
                let c = down::<i32>(b, &count)[0] as usize;
                assert_eq!(&down::<i32>(b, &keep)[..c], &wk[..wn], "remove_small {min_size}");
            }
        }
        assert!(pairwise(b, 0, 1, 0, 1, 3, 0.0, 0, 0).is_err(), "unknown kind");
    }
}

#[test]
fn anchors_and_coder_equal_cpu() {
    let mut rng = Rng(77);
    // level 0: 2*2*1 anchors per position on a 3x2x5 grid; level 1: 1*1*2 on 2x1x2 (odd sizes: 2.5, 3.3)
    let desc = [2, 2, 1, 3, 2, 5, 4, 5, 3, 1, 1, 2, 2, 1, 2, 8, 10, 6];
    let sizes = [2.5f32, 4.0, 3.0, 7.0, 1.0, 5.0, 6.0, 3.0, 3.3];
    let levels = chk::levels_of(&desc, &sizes).unwrap();
    let total: usize = levels.iter().map(|l| l.count()).sum();
    let mut want = vec![0f32; total * 6];
    ca::generate(&levels, &mut want);
    let w = [1.0f32, 2.0, 1.0, 0.5, 1.5, 1.0];
    let clip_v = ca::default_clip();
    for b in test_backends() {
        let out = zeros(b, total * 24);
        assert_eq!(anchors_generate(b, &desc, &sizes, out.ptr(), total * 6, 0).unwrap(), total);
        let anc = down::<f32>(b, &out);
        same_bits(&anc, &want, "anchors");
        let n = total;
        let gt: Vec<f32> = (0..n)
            .flat_map(|i| {
                let a = &want[i * 6..i * 6 + 6];
                let mut g = [0f32; 6];
                for k in 0..6 {
                    g[k] = a[k] + (rng.unit() - 0.5) * 3.0;
                }
                for (lo, hi) in [(0, 2), (1, 3), (4, 5)] {
                    if g[hi] <= g[lo] {
                        g[hi] = g[lo] + 0.5;
                    }
                }
                g
            })
            .collect();
        let (dg, da) = (up(b, &gt), up(b, &want));
        let enc = zeros(b, n * 24);
        encode(b, dg.ptr(), da.ptr(), n, &w, enc.ptr(), 0).unwrap();
        let mut we = vec![0f32; n * 6];
        ca::encode(&gt, &want, w, &mut we);
        close(&down::<f32>(b, &enc), &we, 1e-5, 1e-3, "encode");
        // deltas include size deltas above the clamp
        let deltas: Vec<f32> = (0..n * 6).map(|i| if i % 13 == 2 { 6.0 } else { (rng.unit() - 0.5) * 2.0 }).collect();
        let dd = up(b, &deltas);
        let dec = zeros(b, n * 24);
        decode(b, dd.ptr(), da.ptr(), n, &w, clip_v, dec.ptr(), 0).unwrap();
        let mut wd = vec![0f32; n * 6];
        ca::decode(&deltas, &want, w, clip_v, &mut wd);
        // |box| up to ~60 and exp's ulps: relative to the box's magnitude
        close(&down::<f32>(b, &dec), &wd, 1e-5, 64.0, "decode");
        assert!(encode(b, dg.ptr(), da.ptr(), n, &[1.0, 0.0, 1.0, 1.0, 1.0, 1.0], enc.ptr(), 0).is_err(), "zero weight");
    }
}

fn run_nms(b: Backend, bx: &[f32], sc: &[f32], labels: Option<&[i32]>, weights: Option<&[f32]>, thr: f32) -> Vec<i32> {
    let n = sc.len();
    let (db, ds) = (up(b, bx), up(b, sc));
    let dl = labels.map(|l| up(b, l));
    let dw = weights.map(|w| up(b, w));
    let wb = nms_workspace_bytes(n);
    let work = zeros(b, wb as usize);
    let (keep, count) = (zeros(b, n * 4), zeros(b, 4));
    nms(b, db.ptr(), ds.ptr(), dl.as_ref().map(|d| d.ptr()), dw.as_ref().map(|d| d.ptr()), n, thr, work.ptr(), wb, keep.ptr(), count.ptr(), 0)
        .unwrap();
    let c = down::<i32>(b, &count)[0] as usize;
    down::<i32>(b, &keep)[..c].to_vec()
}

#[test]
fn nms_equals_cpu() {
    let mut rng = Rng(12345);
    for b in test_backends() {
        for &n in &[1usize, 63, 64, 65, 200] {
            let bx = boxes(&mut rng, n, 30.0, true);
            // scores on a 1/16 grid: many exact ties (kept order: lower index first)
            let sc: Vec<f32> = (0..n).map(|_| (rng.unit() * 16.0).round() / 16.0).collect();
            let lab: Vec<i32> = (0..n).map(|_| (rng.next() % 3) as i32).collect();
            let wt: Vec<f32> = (0..n).map(|_| 0.5 + (rng.unit() * 4.0).round() / 4.0).collect();
            for thr in [0.0f32, 0.1, 0.5, 1.0, -0.5] {
                assert_eq!(run_nms(b, &bx, &sc, None, None, thr), cn::nms(&bx, &sc, None, thr, true), "n={n} thr={thr}");
                assert_eq!(run_nms(b, &bx, &sc, Some(&lab), None, thr), cn::nms(&bx, &sc, Some(&lab), thr, true), "labels n={n} thr={thr}");
            }
            let k = run_nms(b, &bx, &sc, None, None, 0.1).len();
            assert!(k > 0 && (n < 63 || k < n), "n={n}: {k} kept, the test should suppress some boxes");
            let want = cn::weighted_nms(&bx, &sc, &wt, &lab, 0.3, true);
            assert_eq!(run_nms(b, &bx, &sc, Some(&lab), Some(&wt), 0.3), want, "weighted n={n}");
        }
        // above one sort tile (global bitonic steps) and several mask tiles
        let n = 1100;
        let bx = boxes(&mut rng, n, 60.0, false);
        let sc: Vec<f32> = (0..n).map(|_| (rng.unit() * 64.0).round() / 64.0).collect();
        let lab: Vec<i32> = (0..n).map(|_| (rng.next() % 2) as i32).collect();
        assert_eq!(run_nms(b, &bx, &sc, Some(&lab), None, 0.2), cn::nms(&bx, &sc, Some(&lab), 0.2, false), "n=1100");
        assert!(run_nms(b, &[], &[], None, None, 0.5).is_empty());
        // n = 2500: sort length 4096 (two global merge stages), 40 mask tiles
        let n = 2500;
        let bx = boxes(&mut rng, n, 80.0, true);
        let sc: Vec<f32> = (0..n).map(|_| (rng.unit() * 32.0).round() / 32.0).collect();
        let lab: Vec<i32> = (0..n).map(|_| (rng.next() % 4) as i32).collect();
        let wt: Vec<f32> = (0..n).map(|_| 0.5 + (rng.unit() * 4.0).round() / 4.0).collect();
        assert_eq!(run_nms(b, &bx, &sc, Some(&lab), Some(&wt), 0.4), cn::weighted_nms(&bx, &sc, &wt, &lab, 0.4, false), "n=2500");
        let e = nms(b, 0, 0, None, None, NMS_MAX + 1, 0.5, 0, 0, 0, 0, 0).unwrap_err();
        assert!(e.message.contains("at most"), "{e}");
    }
}

#[test]
fn wbc_equals_cpu() {
    let mut rng = Rng(4242);
    for b in test_backends() {
        for &n in &[1usize, 63, 65, 200] {
            let bx = boxes(&mut rng, n, 25.0, true);
            let sc: Vec<f32> = (0..n).map(|_| (rng.unit() * 16.0).round() / 16.0).collect();
            let lab: Vec<i32> = (0..n).map(|_| (rng.next() % 3) as i32 - 1).collect();
            let wt: Vec<f32> = (0..n).map(|_| 0.25 + rng.unit()).collect();
            let ne: Vec<f32> = (0..n).map(|_| (1 + rng.next() % 4) as f32).collect();
            let (db, ds, dl, dw, dn) = (up(b, &bx), up(b, &sc), up(b, &lab), up(b, &wt), up(b, &ne));
            for (thr, sthr) in [(0.1f32, 0.0f32), (0.5, 0.2), (0.9, 0.0)] {
                let wb = nms_workspace_bytes(n);
                let work = zeros(b, wb as usize);
                let (ob, os, ol, oc) = (zeros(b, n * 24), zeros(b, n * 4), zeros(b, n * 4), zeros(b, 4));
                let x = WbcIn { labels: dl.ptr(), weights: dw.ptr(), n_exp: dn.ptr() };
                let out = WbcOut { boxes: ob.ptr(), scores: os.ptr(), labels: ol.ptr(), count: oc.ptr() };
                wbc(b, db.ptr(), ds.ptr(), &x, n, thr, sthr, work.ptr(), wb, &out, 0).unwrap();
                let want = cw::wbc(&bx, &sc, &lab, &wt, &ne, thr, sthr);
                let c = down::<i32>(b, &oc)[0] as usize;
                assert_eq!(c, want.len(), "n={n} thr={thr}: cluster count");
                assert!(n < 63 || (c > 0 && c < n), "n={n}: {c} clusters, the test should merge some boxes");
                let labels: Vec<i32> = down::<i32>(b, &ol)[..c].to_vec();
                assert_eq!(labels, want.iter().map(|w| w.label).collect::<Vec<_>>(), "n={n} thr={thr}: labels");
                let wbx: Vec<f32> = want.iter().flat_map(|w| w.b).collect();
                let wsc: Vec<f32> = want.iter().map(|w| w.score).collect();
                close(&down::<f32>(b, &ob)[..c * 6], &wbx, 1e-5, 1.0, "wbc boxes");
                close(&down::<f32>(b, &os)[..c], &wsc, 1e-5, 1e-6, "wbc scores");
            }
        }
        let e = wbc(b, 0, 0, &WbcIn { labels: 0, weights: 0, n_exp: 0 }, 0, 1.0, 0.0, 0, 0, &WbcOut { boxes: 0, scores: 0, labels: 0, count: 0 }, 0);
        assert!(e.is_err(), "thr >= 1 is refused");
    }
}

fn run_topk(b: Backend, k: usize, f: impl Fn(&TopkOut, u64, u64) -> NdResult<()>) -> Vec<(f32, u32)> {
    let wb = topk_workspace_bytes(k);
    let work = zeros(b, wb as usize);
    let (s, i, c) = (zeros(b, k * 4), zeros(b, k * 4), zeros(b, 4));
    f(&TopkOut { scores: s.ptr(), idx: i.ptr(), count: c.ptr() }, work.ptr(), wb).unwrap();
    let n = down::<i32>(b, &c)[0] as usize;
    let (s, i) = (down::<f32>(b, &s), down::<i32>(b, &i));
    (0..n).map(|j| (s[j], i[j] as u32)).collect()
}

#[test]
fn top_k_and_hnm_pool_equal_cpu() {
    let mut rng = Rng(31337);
    for b in test_backends() {
        for &n in &[1usize, 63, 65, 5000] {
            // coarse values: many ties, negatives, some -0.0 and NaN (never a candidate)
            let vals: Vec<f32> = (0..n)
                .map(|i| match i % 97 {
                    5 => f32::NAN,
                    6 => -0.0,
                    _ => ((rng.next() % 200) as f32 - 100.0) / 16.0,
                })
                .collect();
            let dv = up(b, &vals);
            for k in [1usize, 7, 64, 1500, n + 5] {
                for thr in [f32::NEG_INFINITY, 0.0, 5.0] {
                    let got = run_topk(b, k, |o, w, wb| top_k(b, dv.ptr(), n, k, thr, w, wb, o, 0));
                    let want = csel::top_k(n, k, |i| if vals[i] > thr { Some(vals[i]) } else { None });
                    assert_eq!(got, want, "top_k n={n} k={k} thr={thr}");
                }
            }
            let c = 3usize;
            let logits: Vec<f32> = (0..n * c).map(|i| if i % 41 == 0 { f32::NAN } else { ((rng.next() % 64) as f32) / 8.0 }).collect();
            let labels: Vec<i32> = (0..n).map(|i| if i % 9 == 0 { 1 } else if i % 11 == 0 { -1 } else { 0 }).collect();
            let (dl, dlab) = (up(b, &logits), up(b, &labels));
            let key = |i: usize| logits[i * c..i * c + c].iter().copied().fold(f32::NEG_INFINITY, |m, x| if x > m { x } else { m });
            for k in [1usize, 40, n] {
                let got = run_topk(b, k, |o, w, wb| hnm_pool(b, dl.ptr(), dlab.ptr(), n, c as i32, k, w, wb, o, 0));
                let want = csel::top_k(n, k, |i| if labels[i] == 0 { Some(key(i)) } else { None });
                assert_eq!(got, want, "hnm pool n={n} k={k}");
            }
        }
        assert!(top_k(b, 0, 0, 0, 0.0, 0, 0, &TopkOut { scores: 0, idx: 0, count: 0 }, 0).is_err(), "k = 0");
    }
}

#[test]
fn short_buffers_and_bad_parameters_are_refused_before_launch() {
    use crate::error::Status;
    for b in test_backends() {
        let bx = up(b, &[0f32, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 2.0, 2.0, 0.0, 2.0]);
        let small = zeros(b, 4);
        let e = pairwise(b, bx.ptr(), 2, bx.ptr(), 2, 0, 0.0, small.ptr(), 0).unwrap_err();
        assert_eq!(e.status, Status::BufferSize, "{e}");
        assert!(e.message.starts_with("out:"), "{e}");
        let e = pairwise(b, bx.ptr(), 3, bx.ptr(), 1, 0, 0.0, small.ptr(), 0).unwrap_err();
        assert!(e.message.starts_with("boxes1:"), "{e}");
        let (keep, count) = (zeros(b, 8), zeros(b, 4));
        let sc = up(b, &[0.5f32, 0.25]);
        let wb = nms_workspace_bytes(2);
        let work = zeros(b, wb as usize);
        let e = nms(b, bx.ptr(), sc.ptr(), None, None, 2, 0.5, work.ptr(), wb - 8, keep.ptr(), count.ptr(), 0).unwrap_err();
        assert!(e.message.contains("workspace"), "{e}");
        let e = nms(b, bx.ptr(), sc.ptr(), None, None, 2, f32::NAN, work.ptr(), wb, keep.ptr(), count.ptr(), 0).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument, "{e}");
        let e = atss_match(b, bx.ptr(), 1, bx.ptr(), 2, &[1, 2], 1, 1, false, work.ptr(), wb, keep.ptr(), 0).unwrap_err();
        assert!(e.message.contains("sum to 3"), "{e}");
        let e = decode(b, bx.ptr(), bx.ptr(), 2, &[1.0; 5], 1.0, bx.ptr(), 0).unwrap_err();
        assert_eq!(e.status, Status::BufferSize, "{e}");
        let e = seg_loss(b, bx.ptr(), bx.ptr(), 1, 0, true, 1.0, 1.0, bx.ptr(), work.ptr(), bx.ptr(), 0).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument, "{e}");
    }
}

#[test]
fn postprocess_equals_cpu() {
    use crate::cpu::detect::postprocess as cp;
    let mut rng = Rng(555);
    for b in test_backends() {
        let (a, c) = (300usize, 3usize);
        let anchors = boxes(&mut rng, a, 40.0, false);
        let decoded = boxes(&mut rng, a, 40.0, true);
        let deltas: Vec<f32> = (0..a * 6).map(|_| (rng.unit() - 0.5) * 0.8).collect();
        // probabilities on a 1/32 grid: ties across anchors and classes; a few NaN (never candidates)
        let probs: Vec<f32> = (0..a * c).map(|i| if i % 101 == 7 { f32::NAN } else { (rng.unit() * 32.0).round() / 32.0 }).collect();
        let (dp, dd, dx, da) = (up(b, &probs), up(b, &decoded), up(b, &deltas), up(b, &anchors));
        let w = [1.0f32, 1.0, 1.0, 1.0, 1.0, 1.0];
        let clip_v = ca::default_clip();
        let shape = [36.0f32, 30.0, 33.0];
        for (topk, dpi, thr, min_size, nms_t) in [(50usize, 20usize, 0.3f32, 2.0f32, 0.3f32), (1000, 1000, 0.0, 0.0, 0.5), (7, 3, 0.5, 1.0, 0.0), (0, 5, 0.1, 1.0, 0.2)] {
            let p = cp::PostParams { topk, score_thresh: thr, detections_per_img: dpi, min_size, nms_thresh: nms_t };
            for decoded_src in [true, false] {
                let (src, dsrc) = if decoded_src {
                    (cp::BoxSource::Decoded(&decoded), DevBoxSource::Decoded(dd.ptr()))
                } else {
                    (
                        cp::BoxSource::Deltas { deltas: &deltas, anchors: &anchors, weights: w, clip: clip_v },
                        DevBoxSource::Deltas { deltas: dx.ptr(), anchors: da.ptr(), weights: w, clip: clip_v },
                    )
                };
                let want = cp::postprocess(&src, &probs, c, shape, &p);
                let cap = dpi.min(a * c);
                let wb = postprocess_workspace_bytes(a, topk);
                let work = zeros(b, wb as usize);
                let (ob, os, ol, oc) = (zeros(b, cap * 24), zeros(b, cap * 4), zeros(b, cap * 4), zeros(b, 4));
                let out = WbcOut { boxes: ob.ptr(), scores: os.ptr(), labels: ol.ptr(), count: oc.ptr() };
                postprocess(b, dp.ptr(), a, c as i32, &dsrc, shape, &p, work.ptr(), wb, &out, cap, 0).unwrap();
                let n = down::<i32>(b, &oc)[0] as usize;
                let what = format!("topk={topk} dpi={dpi} decoded={decoded_src}");
                assert_eq!(n, want.scores.len(), "{what}: count");
                assert!(topk == 0 || n > 0, "{what}: no detection");
                assert_eq!(&down::<i32>(b, &ol)[..n], &want.labels[..], "{what}: labels");
                same_bits(&down::<f32>(b, &os)[..n], &want.scores, &format!("{what}: scores"));
                // decoded boxes through expf: within its ulps on a GPU
                close(&down::<f32>(b, &ob)[..n * 6], &want.boxes, 1e-5, 64.0, &format!("{what}: boxes"));
            }
        }
    }
}
