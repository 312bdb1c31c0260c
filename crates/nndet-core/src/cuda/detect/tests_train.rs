//! ATSS and the losses on every test backend against the CPU kernels (see tests.rs): ATSS matches must be
//! equal (exact and inexact anchor grids, half-voxel GT corners so centre distances tie, empty GT lists,
//! k = whole level); losses and gradients within 1e-5 relative (f64 CPU reference, f32 device reductions).
use super::tests::{boxes, close, down, up, zeros, Rng};
use super::*;
use crate::cpu::detect::{anchors as ca, atss as cat, loss as cl, seg_loss as cs};
use crate::cuda::{test_backends, DevBuf};

fn level(w: [f32; 3], h: [f32; 3], d: [f32; 3], fmap: [usize; 3], stride: usize) -> ca::Level {
    ca::Level { widths: w.to_vec(), heights: h.to_vec(), depths: d.to_vec(), fmap, stride: [stride; 3] }
}

#[test]
fn atss_equals_cpu() {
    let sets = [
        vec![
            level([3.0, 5.0, 8.0], [4.0, 6.0, 9.0], [2.0, 3.0, 5.0], [6, 5, 4], 4),
            level([6.0, 10.0, 16.0], [8.0, 12.0, 18.0], [4.0, 6.0, 10.0], [3, 3, 2], 8),
        ],
        vec![
            level([3.3, 5.0, 8.1], [4.0, 6.7, 9.0], [2.0, 3.0, 5.5], [5, 3, 4], 4),
            level([6.6, 10.0, 16.2], [8.0, 13.4, 18.0], [4.0, 6.0, 11.0], [1, 1, 1], 8),
        ],
    ];
    let mut rng = Rng(99);
    for b in test_backends() {
        for levels in &sets {
            let per_level: Vec<i32> = levels.iter().map(|l| l.count() as i32).collect();
            let na: usize = per_level.iter().map(|&c| c as usize).sum();
            let mut anchors = vec![0f32; na * 6];
            ca::generate(levels, &mut anchors);
            let da = up(b, &anchors);
            for ng in [0usize, 1, 3, 9] {
                // GT corners on a half-voxel grid: centres often equidistant from several anchor centres
                let mut gt = Vec::new();
                for _ in 0..ng {
                    let q = |x: f32| (x * 2.0).round() / 2.0;
                    let (x, y, z) = (q(rng.unit() * 22.0), q(rng.unit() * 18.0), q(rng.unit() * 14.0));
                    let (w, h, d) = (q(1.0 + rng.unit() * 10.0), q(1.0 + rng.unit() * 10.0), q(1.0 + rng.unit() * 6.0));
                    gt.extend_from_slice(&[x, y, x + w, y + h, z, z + d]);
                }
                let dg = up(b, &gt);
                for (nc, cig) in [(4i32, false), (4, true), (1, true)] {
                    let wb = atss_workspace_bytes(ng, na, &per_level, 27, nc).unwrap();
                    let work = zeros(b, wb as usize);
                    let m = zeros(b, na * 4);
                    atss_match(b, dg.ptr(), ng, da.ptr(), na, &per_level, 27, nc, cig, work.ptr(), wb, m.ptr(), 0).unwrap();
                    let mut want = vec![0i32; na];
                    cat::atss_match(&gt, &cat::Flat(&anchors), &per_level.iter().map(|&c| c as usize).collect::<Vec<_>>(), 27, nc as usize, cig, false, &mut want)
                        .unwrap();
                    let got = down::<i32>(b, &m);
                    assert_eq!(got, want, "ng={ng} nc={nc} cig={cig}");
                    assert!(ng == 0 || cig || got.iter().any(|&v| v >= 0), "ng={ng}: no positive anchor");
                }
            }
            assert!(atss_workspace_bytes(1, na, &per_level, 27, 40).is_err(), "k above the device limit");
        }
        // a plan-like pyramid: 27 anchors per position on 8^3 / 4^3 / 2^3 grids (strides 4, 8, 16), several seeds
        let pyramid = vec![
            level([4.0, 6.0, 9.5], [5.0, 7.5, 11.0], [3.0, 4.5, 7.0], [8, 8, 8], 4),
            level([8.0, 12.0, 19.0], [10.0, 15.0, 22.0], [6.0, 9.0, 14.0], [4, 4, 4], 8),
            level([16.0, 24.0, 38.0], [20.0, 30.0, 44.0], [12.0, 18.0, 28.0], [2, 2, 2], 16),
        ];
        let per_level: Vec<i32> = pyramid.iter().map(|l| l.count() as i32).collect();
        let na: usize = per_level.iter().map(|&c| c as usize).sum();
        let mut anchors = vec![0f32; na * 6];
        ca::generate(&pyramid, &mut anchors);
        let da = up(b, &anchors);
        for _seed in 0..3 {
            let ng = 6;
            let gt = boxes(&mut rng, ng, 24.0, false).iter().map(|v| (v * 2.0).round() / 2.0 + 2.0).collect::<Vec<f32>>();
            let dg = up(b, &gt);
            let wb = atss_workspace_bytes(ng, na, &per_level, 27, 4).unwrap();
            let (work, m) = (zeros(b, wb as usize), zeros(b, na * 4));
            atss_match(b, dg.ptr(), ng, da.ptr(), na, &per_level, 27, 4, true, work.ptr(), wb, m.ptr(), 0).unwrap();
            let mut want = vec![0i32; na];
            let pl: Vec<usize> = per_level.iter().map(|&c| c as usize).collect();
            cat::atss_match(&gt, &cat::Flat(&anchors), &pl, 27, 4, true, true, &mut want).unwrap();
            assert_eq!(down::<i32>(b, &m), want, "pyramid");
        }
        // arbitrary anchors (no shared centres: the per-anchor path) on a half-voxel grid, odd level sizes
        let per_level = [200i32, 63, 1];
        let anchors = boxes(&mut rng, 264, 20.0, false).iter().map(|v| (v * 2.0).round() / 2.0).collect::<Vec<f32>>();
        let da = up(b, &anchors);
        for ng in [1usize, 5] {
            let gt = boxes(&mut rng, ng, 16.0, false).iter().map(|v| (v * 2.0).round() / 2.0).collect::<Vec<f32>>();
            let dg = up(b, &gt);
            for (per_loc, nc, cig) in [(3i32, 4i32, false), (1, 9, true), (3, 30, false)] {
                let wb = atss_workspace_bytes(ng, 264, &per_level, per_loc, nc).unwrap();
                let (work, m) = (zeros(b, wb as usize), zeros(b, 264 * 4));
                atss_match(b, dg.ptr(), ng, da.ptr(), 264, &per_level, per_loc, nc, cig, work.ptr(), wb, m.ptr(), 0).unwrap();
                let mut want = vec![0i32; 264];
                cat::atss_match(&gt, &cat::Flat(&anchors), &[200, 63, 1], per_loc as usize, nc as usize, cig, false, &mut want).unwrap();
                assert_eq!(down::<i32>(b, &m), want, "arbitrary anchors ng={ng} per_loc={per_loc} nc={nc}");
            }
        }
    }
}

#[test]
fn losses_equal_cpu() {
    let mut rng = Rng(2024);
    for b in test_backends() {
        let work = zeros(b, LOSS_WORKSPACE_BYTES as usize);
        for &(rows, c) in &[(1usize, 1i32), (65, 3), (200, 2)] {
            let logits: Vec<f32> = (0..rows * c as usize).map(|i| if i % 11 == 0 { 18.0 } else { (rng.unit() - 0.5) * 12.0 }).collect();
            let t: Vec<i32> = (0..rows).map(|_| (rng.next() % (c as u64 + 1)) as i32).collect();
            let (dl, dt, g, loss) = (up(b, &logits), up(b, &t), zeros(b, logits.len() * 4), zeros(b, 4));
            bce_loss(b, dl.ptr(), dt.ptr(), rows, c, g.ptr(), work.ptr(), loss.ptr(), 0).unwrap();
            let mut wg = vec![0f32; logits.len()];
            let wl = cl::bce_onehot(&logits, &t, c as usize, &mut wg) as f32;
            close(&down::<f32>(b, &loss), &[wl], 1e-5, 0.0, "bce loss");
            close(&down::<f32>(b, &g), &wg, 1e-5, 0.0, "bce grad");
        }
        for &n in &[1usize, 63, 200] {
            let p = boxes(&mut rng, n, 10.0, false);
            // targets share some edges with the predictions (tie rules of min/max)
            let t: Vec<f32> = p.iter().enumerate().map(|(i, &v)| if i % 5 == 0 { v } else { v + (rng.unit() - 0.5) * 4.0 }).collect();
            let t = fix_order(t);
            let (dp, dt, gi, gr, loss) = (up(b, &p), up(b, &t), zeros(b, n * 4), zeros(b, n * 24), zeros(b, 4));
            giou_loss(b, dp.ptr(), dt.ptr(), n, 1e-7, gi.ptr(), gr.ptr(), work.ptr(), loss.ptr(), 0).unwrap();
            let (mut wgi, mut wgr) = (vec![0f32; n], vec![0f32; n * 6]);
            let wl = cl::giou_loss(&p, &t, 1e-7, &mut wgi, &mut wgr) as f32;
            close(&down::<f32>(b, &loss), &[wl], 1e-5, 1.0, "giou loss");
            close(&down::<f32>(b, &gi), &wgi, 1e-6, 1e-6, "giou");
            close(&down::<f32>(b, &gr), &wgr, 1e-6, 1e-6, "giou grad");
        }
        head_loss_case(b, &mut rng, &work);
        for &(batch, v) in &[(2usize, 1000usize), (1, 63)] {
            let logits: Vec<f32> = (0..batch * 2 * v).map(|_| (rng.unit() - 0.5) * 8.0).collect();
            let t: Vec<i32> = (0..batch * v).map(|i| if i % 3 == 0 { 1 } else if i % 7 == 0 { -1 } else { 0 }).collect();
            let (dl, dt, g) = (up(b, &logits), up(b, &t), zeros(b, logits.len() * 4));
            let sw = zeros(b, seg_workspace_bytes(batch) as usize);
            for bd in [true, false] {
                let losses = zeros(b, 8);
                seg_loss(b, dl.ptr(), dt.ptr(), batch, v, bd, 1.0, 1.0, g.ptr(), sw.ptr(), losses.ptr(), 0).unwrap();
                let mut wg = vec![0f32; logits.len()];
                let (ce, dice) = cs::seg_loss(&logits, &t, batch, bd, 1.0, 1.0, &mut wg);
                close(&down::<f32>(b, &losses), &[ce as f32, dice as f32], 1e-5, 0.0, "seg losses");
                let gmax = wg.iter().fold(0f32, |m, v| m.max(v.abs()));
                close(&down::<f32>(b, &g), &wg, 1e-5, gmax * 1e-2, "seg grad");
            }
        }
    }
}

/// Make every box's hi >= lo after perturbation.
fn fix_order(mut t: Vec<f32>) -> Vec<f32> {
    for r in t.chunks_exact_mut(6) {
        for (lo, hi) in [(0, 2), (1, 3), (4, 5)] {
            if r[hi] < r[lo] {
                r.swap(lo, hi);
            }
        }
    }
    t
}

fn head_loss_case(b: Backend, rng: &mut Rng, work: &DevBuf) {
    let (a, c) = (300usize, 2usize);
    let anchors = boxes(rng, a, 30.0, false);
    let matched = fix_order(anchors.iter().map(|v| v + (rng.unit() - 0.5) * 3.0).collect());
    let logits: Vec<f32> = (0..a * c).map(|_| (rng.unit() - 0.5) * 6.0).collect();
    let deltas: Vec<f32> = (0..a * 6).map(|i| if i % 17 == 5 { 5.0 } else { (rng.unit() - 0.5) * 0.6 }).collect();
    let labels: Vec<i32> = (0..a).map(|i| if i % 10 == 0 { 1 + (i % 20 == 0) as i32 } else if i % 13 == 0 { -1 } else { 0 }).collect();
    let all_pos: Vec<i32> = (0..a as i32).filter(|&i| labels[i as usize] > 0).collect();
    let all_neg: Vec<i32> = (0..a as i32).filter(|&i| labels[i as usize] == 0).take(40).collect();
    let w = [1.0f64, 1.0, 1.0, 1.0, 1.0, 1.0];
    let clip = (1000.0f64 / 16.0).ln();
    let bufs = [up(b, &logits), up(b, &deltas), up(b, &anchors), up(b, &labels), up(b, &matched)];
    for (np, nn) in [(all_pos.len(), all_neg.len()), (1, 0), (0, 40), (0, 0)] {
        let (pos, neg) = (&all_pos[..np], &all_neg[..nn]);
        let (dp, dn) = (up(b, pos), up(b, neg));
        let (gl, gd, losses) = (zeros(b, a * c * 4), zeros(b, a * 24), zeros(b, 8));
        let x = HeadLossArgs {
            a,
            c: c as i32,
            logits: bufs[0].ptr(),
            deltas: bufs[1].ptr(),
            anchors: bufs[2].ptr(),
            labels: bufs[3].ptr(),
            matched_gt: bufs[4].ptr(),
            pos: dp.ptr(),
            n_pos: np,
            neg: dn.ptr(),
            n_neg: nn,
            weights: w,
            clip,
            grad_logits: gl.ptr(),
            grad_deltas: gd.ptr(),
            work: work.ptr(),
            losses: losses.ptr(),
        };
        head_loss(b, &x, 0).unwrap();
        let inp = cl::HeadLossInput { logits: &logits, deltas: &deltas, anchors: &anchors, labels: &labels, matched_gt: &matched, pos, neg, c, weights: w, clip };
        let (mut wgl, mut wgd) = (vec![0f32; a * c], vec![0f32; a * 6]);
        let (cls, reg) = cl::head_loss(&inp, &mut wgl, &mut wgd);
        let got = down::<f32>(b, &losses);
        for (k, (g, w)) in got.iter().zip([cls as f32, reg as f32]).enumerate() {
            assert!((g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-5 * w.abs().max(1e-3), "head loss {k} pos={np} neg={nn}: {g} vs {w}");
        }
        close(&down::<f32>(b, &gl), &wgl, 1e-5, 1e-9, "head grad logits");
        close(&down::<f32>(b, &gd), &wgd, 1e-5, 1e-7, "head grad deltas");
    }
}

