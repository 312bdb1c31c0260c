//! Tests of cuda/conv.rs: every op on every `test_backends()` (the emulator always) against the plain CPU
//! loops of cpu/conv3d/reference.rs on small random shapes, plus the argument checks.
//!
//! Tolerances: the device multiplies bf16 inputs exactly and accumulates in fp32, so we round the CPU inputs
//! (x, dy, w, and the initial y / dx when accumulating) to bf16 first; the CPU oracle then differs only by
//! summation order (f64 vs fp32, ~1e-6 relative here) plus, for bf16 outputs, the final rounding to bf16
//! (at most 2^-8 relative: 0.0039). Hence |d - c| <= 1e-2 * max(1, |c|) for bf16 outputs and
//! 1e-4 * max(1, |c|) for the fp32 gradients (sums of at most a few thousand terms of magnitude <= 1).

use super::*;
use crate::cpu::conv3d::reference::{self, Geom};
use crate::cpu::conv3d::tests::params;
use crate::cuda::testutil::Rng;
use crate::cuda::{test_backends, DevBuf, HAS_CUDA};
use crate::error::Status;

/// Values already representable in bf16 (what the device sees).
trait VecBf {
    fn vec_bf(&mut self, n: usize) -> Vec<f32>;
}
impl VecBf for Rng {
    fn vec_bf(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| unbf(bf(self.f()))).collect()
    }
}

/// f32 -> bf16, round to nearest even (as nd_f2bf; inputs here are finite).
fn bf(f: f32) -> u16 {
    let u = f.to_bits();
    ((u + 0x7fff + ((u >> 16) & 1)) >> 16) as u16
}
fn unbf(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// [N][C][sp] f32 -> [N][sp][C] bf16 words.
fn to_dev(v: &[f32], n: usize, c: usize) -> Vec<u16> {
    let sp = v.len() / (n * c);
    let mut o = vec![0u16; v.len()];
    for b in 0..n {
        for ci in 0..c {
            for s in 0..sp {
                o[(b * sp + s) * c + ci] = bf(v[(b * c + ci) * sp + s]);
            }
        }
    }
    o
}

/// [N][sp][C] bf16 words -> [N][C][sp] f32.
fn from_dev(v: &[u16], n: usize, c: usize) -> Vec<f32> {
    let sp = v.len() / (n * c);
    let mut o = vec![0f32; v.len()];
    for b in 0..n {
        for ci in 0..c {
            for s in 0..sp {
                o[(b * c + ci) * sp + s] = unbf(v[(b * sp + s) * c + ci]);
            }
        }
    }
    o
}

fn close(what: &str, got: &[f32], want: &[f32], rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rtol * w.abs().max(1.0), "{what}[{i}] = {g}, CPU {w} (rtol {rtol})");
    }
}

fn dev<T: Copy>(b: Backend, v: &[T]) -> DevBuf {
    DevBuf::from_slice(b, v).unwrap()
}

/// Run fwd, bwd-data and bwd-weight of one case on every backend and compare with the CPU reference.
/// `splits`: force these backward-weight split counts (GEMM, bias) instead of the plan.
fn check(kind: Kind, pv: &[i32], seed: u64, splits: Option<(i32, i32)>) {
    let p = parse(kind, pv).unwrap();
    let (n, cin, cout) = (p.n as usize, p.cin as usize, p.cout as usize);
    let g = match kind {
        Kind::Conv => Geom::conv(&p),
        Kind::ConvT => Geom::convt(&p),
    };
    let acc = p.accumulate();
    let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let x = r.vec_bf(p.x_len());
    let w = r.vec(p.w_len(), 1.0, 0.0);
    let wr: Vec<f32> = w.iter().map(|&v| unbf(bf(v))).collect();
    let bias = r.vec(p.b_len(), 1.0, 0.0);
    let dy = r.vec_bf(p.y_len());
    let (y0, dx0) = (r.vec_bf(p.y_len()), r.vec_bf(p.x_len()));
    let (dw0, db0) = (r.vec(p.w_len(), 1.0, 0.0), r.vec(p.b_len(), 1.0, 0.0));

    let (mut y, mut dx, mut dw, mut db) = (y0.clone(), dx0.clone(), dw0.clone(), db0.clone());
    match kind {
        Kind::Conv => {
            reference::corr(&g, &x, &wr, &bias, &mut y, acc);
            reference::adj(&g, &dy, &wr, &[], &mut dx, acc);
            reference::wgrad(&g, &dy, &x, &mut dw, acc);
        }
        Kind::ConvT => {
            reference::adj(&g, &x, &wr, &bias, &mut y, acc);
            reference::corr(&g, &dy, &wr, &[], &mut dx, acc);
            reference::wgrad(&g, &x, &dy, &mut dw, acc);
        }
    }
    if p.has_bias != 0 {
        reference::bias_grad(n, cout, p.out_spatial(), &dy, &mut db, acc);
    }

    let mut geo = ConvGeom::new(kind, &p);
    if let Some((ws, bs)) = splits {
        (geo.wsplits, geo.bsplits) = (ws, bs);
    }
    for b in test_backends() {
        let tag = format!("{} {kind:?} {pv:?}", b.name());
        let (dx_, dw_, dy_) = (dev(b, &to_dev(&x, n, cin)), dev(b, &w), dev(b, &to_dev(&dy, n, cout)));
        let bias_ = dev(b, &bias);
        let bptr = if p.has_bias != 0 { bias_.ptr() } else { 0 };
        let (wf, wb) = (DevBuf::zeroed(b, p.w_len() * 2).unwrap(), DevBuf::zeroed(b, p.w_len() * 2).unwrap());
        pack_weights(b, kind, pv, dw_.ptr(), wf.ptr(), wb.ptr(), 0).unwrap();

        let y_ = dev(b, &to_dev(&y0, n, cout));
        fwd(b, kind, pv, dx_.ptr(), wf.ptr(), bptr, y_.ptr(), 0).unwrap();
        close(&format!("{tag} y"), &from_dev(&y_.to_vec::<u16>().unwrap(), n, cout), &y, 1e-2);

        let gx = dev(b, &to_dev(&dx0, n, cin));
        bwd_data(b, kind, pv, dy_.ptr(), wb.ptr(), gx.ptr(), 0).unwrap();
        close(&format!("{tag} dx"), &from_dev(&gx.to_vec::<u16>().unwrap(), n, cin), &dx, 1e-2);

        let ws = DevBuf::zeroed(b, geo.wgrad_workspace_bytes()).unwrap();
        let mut last: Option<Vec<f32>> = None;
        for _ in 0..if splits.is_some() { 2 } else { 1 } {
            let (gw, gb) = (dev(b, &dw0), dev(b, &db0));
            let dbp = if p.has_bias != 0 { gb.ptr() } else { 0 };
            bwd_weight_geom(b, kind, &p, geo, dx_.ptr(), dy_.ptr(), gw.ptr(), dbp, ws.ptr(), 0).unwrap();
            let got = gw.to_vec::<f32>().unwrap();
            close(&format!("{tag} dw"), &got, &dw, 1e-4);
            close(&format!("{tag} db"), &gb.to_vec::<f32>().unwrap(), &db, 1e-4);
            if let Some(prev) = &last {
                assert!(prev.iter().zip(&got).all(|(a, c)| a.to_bits() == c.to_bits()), "{tag}: dw differs between runs");
            }
            last = Some(got);
        }
    }
}

const C: Kind = Kind::Conv;
const T: Kind = Kind::ConvT;

#[test]
fn conv3d_3x3x3_matches_cpu() {
    check(C, &params(C, 2, 16, 24, [5, 7, 6], [3, 3, 3], [1, 1, 1], true, false), 1, None);
    check(C, &params(C, 1, 3, 8, [5, 4, 6], [3, 3, 3], [1, 1, 1], false, true), 2, None);
    check(C, &params(C, 1, 40, 40, [4, 3, 5], [3, 3, 3], [1, 1, 1], true, true), 3, None);
    // Cout > 64: two N tiles, odd Cout (no paired stores); Cin 1 (element-wise gathers)
    check(C, &params(C, 1, 8, 81, [4, 3, 5], [3, 3, 3], [1, 1, 1], false, false), 4, None);
    check(C, &params(C, 2, 1, 8, [5, 6, 4], [3, 3, 3], [1, 1, 1], true, false), 5, None);
    // several M tiles (1024 voxels), N tiles of the backward-weight (27*32 columns), split-K by the plan
    check(C, &params(C, 2, 32, 64, [8, 8, 8], [3, 3, 3], [1, 1, 1], true, true), 6, None);
}

#[test]
fn conv3d_anisotropic_and_strided_match_cpu() {
    check(C, &params(C, 2, 8, 40, [5, 7, 6], [3, 3, 3], [2, 2, 2], true, true), 11, None);
    check(C, &params(C, 1, 40, 2, [4, 7, 5], [1, 3, 3], [1, 2, 2], true, false), 12, None);
    check(C, &params(C, 2, 3, 8, [6, 5, 4], [3, 3, 1], [2, 1, 1], true, true), 13, None);
    check(C, &params(C, 1, 16, 24, [3, 6, 7], [1, 3, 3], [1, 1, 1], false, false), 14, None);
    // a volume smaller than the stride along one axis: empty parity classes in backward-data
    check(C, &params(C, 2, 16, 8, [1, 3, 2], [3, 3, 3], [2, 2, 2], true, false), 15, None);
}

#[test]
fn conv3d_1x1x1_matches_cpu() {
    check(C, &params(C, 2, 24, 16, [4, 5, 3], [1, 1, 1], [1, 1, 1], true, false), 21, None);
    check(C, &params(C, 2, 8, 2, [5, 3, 4], [1, 1, 1], [1, 1, 1], true, true), 22, None);
    // stride 2 with k 1: odd positions get no gradient (classes without taps)
    check(C, &params(C, 1, 16, 8, [5, 4, 3], [1, 1, 1], [2, 2, 2], false, true), 23, None);
}

#[test]
fn convt3d_matches_cpu() {
    check(T, &params(T, 2, 16, 8, [3, 2, 3], [2, 2, 2], [2, 2, 2], true, true), 31, None);
    check(T, &params(T, 1, 40, 24, [2, 3, 3], [1, 2, 2], [1, 2, 2], false, false), 32, None);
    check(T, &params(T, 2, 3, 2, [2, 3, 2], [2, 2, 2], [2, 2, 2], true, false), 33, None);
}

#[test]
fn bwd_weight_split_k_matches_cpu_and_is_deterministic() {
    check(C, &params(C, 2, 8, 16, [5, 7, 6], [3, 3, 3], [1, 1, 1], true, true), 41, Some((3, 2)));
    check(C, &params(C, 1, 3, 24, [4, 5, 6], [3, 3, 3], [2, 2, 2], true, false), 42, Some((7, 5)));
    check(T, &params(T, 2, 8, 16, [2, 3, 3], [2, 2, 2], [2, 2, 2], true, true), 43, Some((4, 3)));
}

/// Beyond ops::conv's kernel sizes {1, 3}: the launchers take any odd kernel up to 7 per axis.
#[test]
fn kernels_take_odd_sizes_up_to_7() {
    let (n, cl, ch) = (2usize, 8usize, 16usize);
    let (k, s, hi) = ([5usize, 3, 7], [1usize, 2, 1], [6usize, 7, 5]);
    let p = k.map(|v| v / 2);
    let lo: [usize; 3] = std::array::from_fn(|a| (hi[a] + 2 * p[a] - k[a]) / s[a] + 1);
    let rg = Geom { n, c_lo: cl, c_hi: ch, lo, hi, k, s, p };
    let i = |v: [usize; 3]| v.map(|x| x as i32);
    let (ni, cli, chi) = (n as i32, cl as i32, ch as i32);
    let g = ConvGeom {
        n: ni, c_lo: cli, c_hi: chi, lo: i(lo), hi: i(hi), k: i(k), s: i(s), p: i(p),
        has_bias: 1, accumulate: 0, wsplits: 2, bsplits: 2, bias_of_hi: 0,
    };
    let (lsp, hsp, taps) = (lo.iter().product::<usize>(), hi.iter().product::<usize>(), k.iter().product::<usize>());
    let mut r = Rng(77);
    let (hv, lv, w, bias) = (r.vec_bf(n * ch * hsp), r.vec_bf(n * cl * lsp), r.vec(cl * ch * taps, 1.0, 0.0), r.vec(cl, 1.0, 0.0));
    let wr: Vec<f32> = w.iter().map(|&v| unbf(bf(v))).collect();
    let (mut lo_ref, mut hi_ref, mut dw_ref, mut db_ref) = (vec![0.0; lv.len()], vec![0.0; hv.len()], vec![0.0; w.len()], vec![0.0; cl]);
    reference::corr(&rg, &hv, &wr, &bias, &mut lo_ref, false);
    reference::adj(&rg, &lv, &wr, &[], &mut hi_ref, false);
    reference::wgrad(&rg, &lv, &hv, &mut dw_ref, false);
    reference::bias_grad(n, cl, lsp, &lv, &mut db_ref, false);
    for b in test_backends() {
        let k = ConvKernels::of(b).unwrap();
        let (hd, ld, wd, bd) = (dev(b, &to_dev(&hv, n, ch)), dev(b, &to_dev(&lv, n, cl)), dev(b, &w), dev(b, &bias));
        let (pc, pa) = (DevBuf::zeroed(b, w.len() * 2).unwrap(), DevBuf::zeroed(b, w.len() * 2).unwrap());
        let (lo_o, hi_o) = (DevBuf::zeroed(b, lv.len() * 2).unwrap(), DevBuf::zeroed(b, hv.len() * 2).unwrap());
        let (dw, db) = (DevBuf::zeroed(b, w.len() * 4).unwrap(), DevBuf::zeroed(b, cl * 4).unwrap());
        let ws = DevBuf::zeroed(b, g.wgrad_workspace_bytes()).unwrap();
        let mut ga = g;
        ga.has_bias = 0;
        let s = std::ptr::null_mut();
        unsafe {
            call(b, (k.conv_pack)(wd.ptr() as _, pc.ptr() as _, pa.ptr() as _, &g, s), "pack").unwrap();
            call(b, (k.conv_corr)(hd.ptr() as _, pc.ptr() as _, bd.ptr() as _, lo_o.ptr() as _, &g, s), "corr").unwrap();
            call(b, (k.conv_adj)(ld.ptr() as _, pa.ptr() as _, std::ptr::null(), hi_o.ptr() as _, &ga, s), "adj").unwrap();
            let wgrad = (k.conv_wgrad)(ld.ptr() as _, hd.ptr() as _, dw.ptr() as _, db.ptr() as _, ws.ptr() as _, &g, s);
            call(b, wgrad, "wgrad").unwrap();
        }
        let tag = format!("{} k {k:?} s {s:?}", b.name(), k = rg.k, s = rg.s);
        close(&format!("{tag} corr"), &from_dev(&lo_o.to_vec::<u16>().unwrap(), n, cl), &lo_ref, 1e-2);
        close(&format!("{tag} adj"), &from_dev(&hi_o.to_vec::<u16>().unwrap(), n, ch), &hi_ref, 1e-2);
        close(&format!("{tag} wgrad"), &dw.to_vec::<f32>().unwrap(), &dw_ref, 1e-4);
        close(&format!("{tag} bias grad"), &db.to_vec::<f32>().unwrap(), &db_ref, 1e-4);
    }
}

/// Tensors at 2-byte offsets inside larger allocations (an arena): the launchers fall back to element-wise
/// gathers and single-channel stores, with the same results.
#[test]
fn unaligned_arena_offsets_take_the_scalar_paths() {
    let pv = params(C, 2, 16, 24, [3, 4, 5], [3, 3, 3], [2, 1, 2], true, true);
    let p = parse(C, &pv).unwrap();
    let g = Geom::conv(&p);
    let mut r = Rng(5);
    let (x, w, bias, y0, dy) = (r.vec_bf(p.x_len()), r.vec(p.w_len(), 1.0, 0.0), r.vec(24, 1.0, 0.0), r.vec_bf(p.y_len()), r.vec_bf(p.y_len()));
    let wr: Vec<f32> = w.iter().map(|&v| unbf(bf(v))).collect();
    let (mut y, mut dw) = (y0.clone(), vec![0f32; w.len()]);
    reference::corr(&g, &x, &wr, &bias, &mut y, true);
    reference::wgrad(&g, &dy, &x, &mut dw, true);
    for b in test_backends() {
        // one arena, every tensor at an odd bf16 index (2 mod 4 bytes): [pad][x][pad][y][pad][dy]
        let (xb, yb, dyb) = (to_dev(&x, 2, 16), to_dev(&y0, 2, 24), to_dev(&dy, 2, 24));
        let (xo, yo) = (1, xb.len() + 3);
        let dyo = yo + yb.len() + 2;
        assert!(xo % 2 == 1 && yo % 2 == 1 && dyo % 2 == 1);
        let mut arena = vec![0u16; dyo + dyb.len()];
        arena[xo..xo + xb.len()].copy_from_slice(&xb);
        arena[yo..yo + yb.len()].copy_from_slice(&yb);
        arena[dyo..dyo + dyb.len()].copy_from_slice(&dyb);
        let ar = dev(b, &arena);
        let at = |o: usize| ar.ptr() + 2 * o as u64;
        let (wd, bd) = (dev(b, &w), dev(b, &bias));
        let wf = DevBuf::zeroed(b, w.len() * 2).unwrap();
        pack_weights(b, C, &pv, wd.ptr(), wf.ptr(), 0, 0).unwrap();
        fwd(b, C, &pv, at(xo), wf.ptr(), bd.ptr(), at(yo), 0).unwrap();
        let out = ar.to_vec::<u16>().unwrap();
        close(&format!("{} y at an odd offset", b.name()), &from_dev(&out[yo..yo + yb.len()], 2, 24), &y, 1e-2);
        assert_eq!(&out[xo..xo + xb.len()], &xb[..], "x untouched");
        let gw = DevBuf::zeroed(b, w.len() * 4).unwrap();
        let gb = DevBuf::zeroed(b, 24 * 4).unwrap();
        let ws = DevBuf::zeroed(b, wgrad_workspace_bytes(C, &pv).unwrap()).unwrap();
        bwd_weight(b, C, &pv, at(xo), at(dyo), gw.ptr(), gb.ptr(), ws.ptr(), 0).unwrap();
        close(&format!("{} dw from odd offsets", b.name()), &gw.to_vec::<f32>().unwrap(), &dw, 1e-4);
    }
}

#[test]
fn split_plan_bounds_the_workspace() {
    // nnDetection-sized layers: a big full-resolution layer, a deep one, the first layer.
    for (cin, cout, dhw, min_splits) in [(32, 32, [96, 128, 128], 2), (320, 320, [6, 8, 8], 1), (1, 32, [96, 128, 128], 500)] {
        let pv = params(C, 2, cin, cout, dhw, [3, 3, 3], [1, 1, 1], true, false);
        let p = parse(C, &pv).unwrap();
        let g = ConvGeom::new(C, &p);
        assert!((1..=1024).contains(&g.wsplits) && g.bsplits >= 1, "{g:?}");
        assert!(g.wgrad_workspace_bytes() <= (64 << 20) + 4 * 1024 * 320, "{g:?}");
        assert_eq!(wgrad_workspace_bytes(C, &pv).unwrap(), g.wgrad_workspace_bytes());
        assert!(g.wsplits >= min_splits, "{g:?}: too few blocks for the GPU");
    }
}

#[test]
fn arguments_are_checked() {
    let pv = params(C, 1, 8, 8, [3, 3, 3], [3, 3, 3], [1, 1, 1], true, false);
    let b = Backend::Emu;
    let x = DevBuf::zeroed(b, 27 * 8 * 2).unwrap();
    let w = DevBuf::zeroed(b, 8 * 8 * 27 * 2).unwrap();
    let bias = DevBuf::zeroed(b, 8 * 4).unwrap();
    let y = DevBuf::zeroed(b, 27 * 8 * 2).unwrap();
    fwd(b, C, &pv, x.ptr(), w.ptr(), bias.ptr(), y.ptr(), 0).unwrap();
    // the same message as ops::conv
    let mut bad = pv.clone();
    bad[7] = 2;
    let e = fwd(b, C, &bad, x.ptr(), w.ptr(), bias.ptr(), y.ptr(), 0).unwrap_err();
    assert_eq!(e.message, Conv3dParams::from_slice(&bad).unwrap_err().message);
    // y one voxel short
    let short = DevBuf::zeroed(b, 26 * 8 * 2).unwrap();
    let e = fwd(b, C, &pv, x.ptr(), w.ptr(), bias.ptr(), short.ptr(), 0).unwrap_err();
    assert_eq!(e.status, Status::BufferSize, "{e}");
    assert!(e.message.starts_with("y:"), "{e}");
    // a misaligned address, a missing bias, a host address
    let e = fwd(b, C, &pv, x.ptr() + 1, w.ptr(), bias.ptr(), y.ptr(), 0).unwrap_err();
    assert!(e.message.contains("aligned"), "{e}");
    assert!(fwd(b, C, &pv, x.ptr(), w.ptr(), 0, y.ptr(), 0).is_err());
    let host = vec![0u16; 27 * 8];
    assert!(fwd(b, C, &pv, host.as_ptr() as u64, w.ptr(), bias.ptr(), y.ptr(), 0).is_err());
    // workspace too small
    let ws = DevBuf::zeroed(b, 16).unwrap();
    let dw = DevBuf::zeroed(b, 8 * 8 * 27 * 4).unwrap();
    let e = bwd_weight(b, C, &pv, x.ptr(), y.ptr(), dw.ptr(), bias.ptr(), ws.ptr(), 0).unwrap_err();
    assert_eq!(e.status, Status::BufferSize, "{e}");
    // the GPU backend without a GPU build
    if !HAS_CUDA {
        assert_eq!(ConvKernels::of(Backend::Cuda).err().unwrap().status, Status::NoCuda);
    }
}

#[test]
fn params_slice_round_trips() {
    let pv = params(T, 2, 3, 4, [2, 3, 4], [1, 2, 2], [1, 2, 2], true, true);
    assert_eq!(params_slice(&parse(T, &pv).unwrap()).to_vec(), pv);
    assert_eq!(std::mem::size_of::<ConvGeom>(), 23 * 4);
}
