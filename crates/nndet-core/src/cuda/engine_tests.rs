//! Tests of cuda/engine.rs on every test backend (the emulator always, the GPU where there is one) against
//! the CPU kernels of cpu/{norm,act}.rs on small odd shapes. Inputs are bf16-rounded first, so both
//! sides see the same values; the device layout (NDHWC) is transposed on the host for the CPU (NCDHW).
//! Tolerances: bf16 outputs 4e-3 * max(1, |ref|) (one bf16 rounding is <= 2^-9 relative; the rest differs
//! at fp32 level), fp32 statistics and parameter gradients 1e-4 / 1e-3 relative; exact where the device does
//! the CPU's arithmetic (activations, add, scale, permute, conversions).
use super::*;
use crate::cpu::act::{self as cact, Permute};
use crate::cpu::norm::{norm_act_fwd, norm_act_bwd, Act, NormShape, XDx};
use crate::cuda::testutil::{down, up, Rng};
use crate::cuda::{test_backends, DevBuf};
use crate::error::Status;

/// bf16 bits of random values and their f32 values.
trait VecBf {
    fn bf(&mut self, n: usize, scale: f32, shift: f32) -> (Vec<u16>, Vec<f32>);
}
impl VecBf for Rng {
    fn bf(&mut self, n: usize, scale: f32, shift: f32) -> (Vec<u16>, Vec<f32>) {
        let h: Vec<u16> = self.vec(n, scale, shift).into_iter().map(bf16_bits).collect();
        let v = h.iter().map(|&x| bf16_value(x)).collect();
        (h, v)
    }
}

/// Guard words around the bf16 buffers of the tests (`off` before, GUARD_N after): a write out of bounds
/// shows as a changed guard (the emulator's guard zones only catch writes outside a whole allocation).
const GUARD: u16 = 0xdead;
const GUARD_N: usize = 8;

fn guarded(h: &[u16], off: usize) -> Vec<u16> {
    let mut v = vec![GUARD; off];
    v.extend_from_slice(h);
    v.extend_from_slice(&[GUARD; GUARD_N]);
    v
}

/// The elements between the guards of a downloaded buffer, after checking the guards.
fn body(d: &DevBuf, off: usize) -> Vec<u16> {
    let v = down::<u16>(d);
    let n = v.len() - off - GUARD_N;
    assert!(v[..off].iter().chain(&v[off + n..]).all(|&g| g == GUARD), "a kernel wrote outside its buffer");
    v[off..off + n].to_vec()
}

fn body_bf(d: &DevBuf, off: usize) -> Vec<f32> {
    body(d, off).into_iter().map(bf16_value).collect()
}

/// [n][s][c] -> [n][c][s] on the host.
fn nsc_to_ncs_host<T: Copy>(x: &[T], n: usize, c: usize, s: usize) -> Vec<T> {
    let mut y = x.to_vec();
    for i in 0..n {
        for j in 0..c {
            for k in 0..s {
                y[(i * c + j) * s + k] = x[(i * s + k) * c + j];
            }
        }
    }
    y
}

fn close(got: &[f32], want: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for i in 0..got.len() {
        let ok = (got[i] - want[i]).abs() <= atol + rtol * want[i].abs();
        assert!(ok, "{what}[{i}]: device {} vs cpu {}", got[i], want[i]);
    }
}

fn bf_close(got: &[f32], want: &[f32], what: &str) {
    for i in 0..got.len() {
        let tol = 4e-3 * want[i].abs().max(1.0);
        assert!((got[i] - want[i]).abs() <= tol, "{what}[{i}]: device {} vs cpu {}", got[i], want[i]);
    }
}

/// Exact bf16 equality with the CPU's fp32 result rounded once.
fn bf_exact(got: &[u16], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for i in 0..got.len() {
        assert_eq!(got[i], bf16_bits(want[i]), "{what}[{i}]: device {} vs cpu {}", bf16_value(got[i]), want[i]);
    }
}

fn act_code(a: Act) -> (i32, f32) {
    match a {
        Act::None => (0, 0.0),
        Act::Relu => (1, 0.0),
        Act::Leaky(s) => (2, s),
    }
}

/// One norm forward + backward on the device vs the CPU engine's fused kernels. `variant`: 0 dx separate,
/// 1 dx separate and accumulated, 2 dx over x, 3 dx over dy; `off` elements of offset make every activation pointer
/// misaligned (the one-channel-at-a-time path).
#[allow(clippy::too_many_arguments)]
fn norm_case(b: Backend, r: &mut Rng, n: usize, c: usize, groups: usize, dhw: [usize; 3], act: Act, variant: u32, acc_dp: bool, off: usize, shift: f32) {
    let s = dhw[0] * dhw[1] * dhw[2];
    let sh = NormShape { n, c, groups, s };
    let ne = sh.numel();
    let what = format!("{b:?} n={n} c={c} g={groups} s={s} {act:?} variant={variant} off={off}");
    let (code, slope) = act_code(act);
    let p = NormParams {
        n: n as i32, c: c as i32, d: dhw[0] as i32, h: dhw[1] as i32, w: dhw[2] as i32, groups: groups as i32,
        act: code, acc_dx: (variant == 1) as i32, acc_dparam: acc_dp as i32,
    };
    let (xh, xv) = r.bf(ne, 2.0, shift);
    let gamma = r.vec(c, 0.5, 1.0);
    let beta = r.vec(c, 0.5, 0.0);
    let eps = 1e-5;
    // device buffers, `off` bf16 elements into their allocation
    let pad = |h: &[u16]| guarded(h, off);
    let at = |d: &DevBuf| d.ptr() + 2 * off as u64;
    let dx_ = up(b, &pad(&xh));
    let (dg, dbt) = (up(b, &gamma), up(b, &beta));
    let dy_buf = up(b, &pad(&vec![0u16; ne]));
    let (dm, dr) = (up(b, &vec![0f32; n * groups]), up(b, &vec![0f32; n * groups]));
    let ws = DevBuf::zeroed(b, norm_ws_bytes(&p).unwrap() as usize).unwrap();
    if off == 0 {
        assert_eq!(at(&dx_) % 16, 0, "{what}: the vectorised path needs 16-byte aligned buffers");
    }
    norm_fwd(b, &p, eps, slope, at(&dx_), dg.ptr(), dbt.ptr(), at(&dy_buf), dm.ptr(), dr.ptr(), ws.ptr(), 0).unwrap();
    let first = down::<u16>(&dy_buf);
    // deterministic: a second run gives the same bits
    norm_fwd(b, &p, eps, slope, at(&dx_), dg.ptr(), dbt.ptr(), at(&dy_buf), dm.ptr(), dr.ptr(), ws.ptr(), 0).unwrap();
    assert!(first == down::<u16>(&dy_buf), "{what}: two forward runs differ");
    let y_dev = nsc_to_ncs_host(&body_bf(&dy_buf, off), n, c, s);
    let (m_dev, r_dev) = (down::<f32>(&dm), down::<f32>(&dr));

    let x_ncs = nsc_to_ncs_host(&xv, n, c, s);
    let mut y = vec![0f32; ne];
    let (mut m, mut rs) = (vec![0f32; n * groups], vec![0f32; n * groups]);
    norm_act_fwd(sh, &x_ncs, &gamma, &beta, eps, act, &mut y, &mut m, &mut rs);
    for i in 0..n * groups {
        let spread = 1.0 / rs[i];
        assert!((m_dev[i] - m[i]).abs() <= 1e-4 * (m[i].abs() + spread), "{what}: mean[{i}] {} vs {}", m_dev[i], m[i]);
        assert!((r_dev[i] - rs[i]).abs() <= 1e-4 * rs[i], "{what}: rstd[{i}] {} vs {}", r_dev[i], rs[i]);
    }
    bf_close(&y_dev, &y, &format!("{what}: y"));

    // backward with the device's statistics on both sides (the same activation masks)
    let (dyh, dyv) = r.bf(ne, 1.0, 0.1);
    let (dx0h, dx0v) = r.bf(ne, 1.0, 0.0);
    let (mut dgam, mut dbet) = (r.vec(c, 1.0, 0.0), r.vec(c, 1.0, 0.0));
    let (dgd, dbd) = (up(b, &dgam), up(b, &dbet));
    let dyd = up(b, &pad(&dyh));
    let dxd = if variant >= 2 { None } else { Some(up(b, &pad(&if variant == 1 { dx0h.clone() } else { vec![0u16; ne] }))) };
    let dx_buf = dxd.as_ref().unwrap_or(if variant == 3 { &dyd } else { &dx_ });
    norm_bwd(b, &p, slope, at(&dx_), at(&dyd), dg.ptr(), dbt.ptr(), dm.ptr(), dr.ptr(), at(dx_buf), dgd.ptr(), dbd.ptr(), ws.ptr(), 0).unwrap();
    let dx_dev = nsc_to_ncs_host(&body_bf(dx_buf, off), n, c, s);

    let dy_ncs = nsc_to_ncs_host(&dyv, n, c, s);
    let mut dx = if variant == 1 { nsc_to_ncs_host(&dx0v, n, c, s) } else { vec![0f32; ne] };
    let mut xdx = x_ncs.clone();
    let xdx_arg = if variant == 2 { XDx::InPlace(&mut xdx) } else { XDx::Split(&x_ncs, &mut dx) };
    norm_act_bwd(sh, xdx_arg, &dy_ncs, &gamma, &beta, &m_dev, &r_dev, act, &mut dgam, &mut dbet, variant == 1, acc_dp);
    bf_close(&dx_dev, if variant == 2 { &xdx } else { &dx }, &format!("{what}: dx"));
    close(&down::<f32>(&dgd), &dgam, 1e-3, 1e-3, &format!("{what}: dgamma"));
    close(&down::<f32>(&dbd), &dbet, 1e-3, 1e-3, &format!("{what}: dbeta"));
}

#[test]
fn norm_forward_backward_match_cpu() {
    for b in test_backends() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        // (n, c, groups, dims, misaligned offset, mean shift): instance norm (G = C), group norm (G = C/16),
        // odd C (one channel per load), several position chunks (C = 64: 256 rows per chunk, s = 300;
        // C = 128: 128 rows, s = 315), misaligned buffers with C % 8 == 0, a large mean against the spread
        let cases: [(usize, usize, usize, [usize; 3], usize, f32); 6] = [
            (1, 16, 16, [3, 5, 7], 0, 0.0),
            (3, 32, 2, [2, 3, 5], 0, 4.0),
            (1, 5, 5, [3, 3, 3], 0, 0.5),
            (1, 64, 4, [3, 10, 10], 0, 0.0),
            (2, 128, 8, [5, 7, 9], 0, 1.0),
            (3, 16, 1, [1, 3, 5], 1, 20.0),
        ];
        for (ci, &(n, c, g, dhw, off, shift)) in cases.iter().enumerate() {
            for act in [Act::None, Act::Relu, Act::Leaky(0.01)] {
                for variant in 0..4 {
                    let acc_dp = (ci + variant as usize) % 2 == 1;
                    norm_case(b, &mut r, n, c, g, dhw, act, variant, acc_dp, off, shift);
                }
            }
        }
    }
}

/// More than 256 channel vectors per row: two column tiles per block row, with 8 channels per load
/// (C = 2064) and one (C = 261, odd), instance and group norm.
#[test]
fn norm_wide_rows_use_several_column_tiles() {
    for b in test_backends() {
        let mut r = Rng(21);
        norm_case(b, &mut r, 1, 2064, 2064, [1, 1, 3], Act::Relu, 0, false, 0, 0.0);
        norm_case(b, &mut r, 2, 2064, 129, [1, 2, 1], Act::Leaky(0.01), 2, true, 0, 1.0);
        norm_case(b, &mut r, 1, 261, 9, [1, 1, 5], Act::None, 1, false, 0, 0.0);
    }
}

/// The plan covers every position, keeps the workspace bounded and gives each thread ~64 elements.
#[test]
fn norm_plan_bounds() {
    for &(c, s) in &[(8usize, 1usize), (32, 128 * 128 * 64), (8, 3_000_001), (320, 6 * 6 * 4), (5, 1001), (2064, 7), (128, 40_000)] {
        let (chunks, rows) = norm_plan(c, s);
        let vec = if c % 8 == 0 { 8 } else { 1 };
        let rr = NT / (c / vec).min(NT);
        assert!((1..=MAX_CHUNKS).contains(&chunks), "c={c} s={s}: {chunks} chunks");
        assert!(chunks * rows >= s && (chunks - 1) * rows < s, "c={c} s={s}: {chunks} x {rows}");
        assert!(rows >= rr, "c={c} s={s}: rows {rows} < {rr} rows in flight");
    }
    // the instance norms of the first stage (C = 32, 128^2 x 64 positions) fill the GPU: >= 1000 blocks
    assert_eq!(norm_plan(32, 128 * 128 * 64).0, MAX_CHUNKS);
}

#[test]
fn norm_arguments_are_checked() {
    for b in test_backends() {
        let p = NormParams { n: 1, c: 16, d: 2, h: 2, w: 2, groups: 16, act: 1, acc_dx: 1, acc_dparam: 0 };
        let x = up(b, &vec![0u16; 128]);
        let f = up(b, &[0f32; 16]);
        let ws = DevBuf::zeroed(b, norm_ws_bytes(&p).unwrap() as usize).unwrap();
        let small = up(b, &[0u16; 100]);
        let e = norm_fwd(b, &p, 1e-5, 0.0, small.ptr(), f.ptr(), f.ptr(), x.ptr(), f.ptr(), f.ptr(), ws.ptr(), 0).unwrap_err();
        assert!(e.message.contains('x'), "{e}");
        let e = norm_fwd(b, &NormParams { groups: 3, ..p }, 1e-5, 0.0, x.ptr(), f.ptr(), f.ptr(), x.ptr(), f.ptr(), f.ptr(), ws.ptr(), 0).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument);
        let e = norm_fwd(b, &p, 0.0, 0.0, x.ptr(), f.ptr(), f.ptr(), x.ptr(), f.ptr(), f.ptr(), ws.ptr(), 0).unwrap_err();
        assert!(e.message.contains("eps"), "{e}");
        // dx == x cannot accumulate; a partial overlap of y and x is refused
        let e = norm_bwd(b, &p, 0.0, x.ptr(), x.ptr(), f.ptr(), f.ptr(), f.ptr(), f.ptr(), x.ptr(), f.ptr(), f.ptr(), ws.ptr(), 0).unwrap_err();
        assert!(e.message.contains("in place"), "{e}");
        let big = up(b, &vec![0u16; 256]);
        let e = norm_fwd(b, &p, 1e-5, 0.0, big.ptr(), f.ptr(), f.ptr(), big.ptr() + 2, f.ptr(), f.ptr(), ws.ptr(), 0).unwrap_err();
        assert!(e.message.contains("overlap"), "{e}");
    }
}

#[test]
fn activations_add_and_scale_match_cpu() {
    for b in test_backends() {
        let mut r = Rng(77);
        for &(n, off) in &[(1003usize, 0usize), (517, 1)] {
            let at = |d: &DevBuf| d.ptr() + 2 * off as u64;
            let pad = |h: &[u16]| guarded(h, off);
            let (xh, xv) = r.bf(n, 2.0, 0.0);
            let (dyh, dyv) = r.bf(n, 1.0, 0.0);
            let (d0h, d0v) = r.bf(n, 1.0, 0.0);
            for act in [Act::Relu, Act::Leaky(0.01), Act::None] {
                let (code, slope) = act_code(act);
                // forward, separate and in place
                let (dx_, dy_) = (up(b, &pad(&xh)), up(b, &pad(&vec![0u16; n])));
                act_fwd(b, code, slope, at(&dx_), at(&dy_), n, 0).unwrap();
                let mut y = vec![0f32; n];
                cact::act_fwd(act, &xv, &mut y);
                bf_exact(&body(&dy_, off), &y, &format!("{b:?} act_fwd {act:?}"));
                act_fwd(b, code, slope, at(&dx_), at(&dx_), n, 0).unwrap();
                bf_exact(&body(&dx_, off), &y, &format!("{b:?} act_fwd in place {act:?}"));
                // backward from the output y: accumulated, and in place over dy
                let yh: Vec<u16> = y.iter().map(|&v| bf16_bits(v)).collect();
                let yv: Vec<f32> = yh.iter().map(|&v| bf16_value(v)).collect();
                let (dyb, dgb, dxb) = (up(b, &pad(&yh)), up(b, &pad(&dyh)), up(b, &pad(&d0h)));
                act_bwd(b, code, slope, at(&dyb), at(&dgb), at(&dxb), n, 1, 0).unwrap();
                let mut dx = d0v.clone();
                cact::act_bwd(act, &yv, &dyv, &mut dx, true);
                bf_exact(&body(&dxb, off), &dx, &format!("{b:?} act_bwd acc {act:?}"));
                act_bwd(b, code, slope, at(&dyb), at(&dgb), at(&dgb), n, 0, 0).unwrap();
                let mut g = dyv.clone();
                cact::act_bwd_inplace(act, &yv, &mut g);
                bf_exact(&body(&dgb, off), &g, &format!("{b:?} act_bwd in place {act:?}"));
            }
            // add, separate and in place (y = a)
            let (ab, bb, yb) = (up(b, &pad(&xh)), up(b, &pad(&dyh)), up(b, &pad(&vec![0u16; n])));
            add(b, at(&ab), at(&bb), at(&yb), n, 0).unwrap();
            let mut s = vec![0f32; n];
            cact::add(&xv, &dyv, &mut s);
            bf_exact(&body(&yb, off), &s, &format!("{b:?} add"));
            add(b, at(&ab), at(&bb), at(&ab), n, 0).unwrap();
            bf_exact(&body(&ab, off), &s, &format!("{b:?} add in place"));
            // scale forward on fp32 rows (in place) and on bf16
            let scale = up(b, &[1.37f32]);
            let xf = r.vec(n, 3.0, 0.0);
            let mut xfp = vec![0f32; off];
            xfp.extend_from_slice(&xf);
            let xfb = up(b, &xfp);
            scale_fwd(b, Elem::F32, xfb.ptr() + 4 * off as u64, scale.ptr(), xfb.ptr() + 4 * off as u64, n, 0).unwrap();
            let mut want = vec![0f32; n];
            cact::scale_fwd(&xf, 1.37, &mut want);
            assert_eq!(&down::<f32>(&xfb)[off..], &want[..], "{b:?} scale_fwd f32");
            let (sx, sy) = (up(b, &pad(&xh)), up(b, &pad(&vec![0u16; n])));
            scale_fwd(b, Elem::Bf16, at(&sx), scale.ptr(), at(&sy), n, 0).unwrap();
            cact::scale_fwd(&xv, 1.37, &mut want);
            bf_exact(&body(&sy, off), &want, &format!("{b:?} scale_fwd bf16"));
            // scale backward: dx accumulated, dscale accumulated; then in place over dy
            let ws = DevBuf::zeroed(b, SCALE_WS_BYTES as usize).unwrap();
            let (dgb, dxb, ds) = (up(b, &pad(&dyh)), up(b, &pad(&d0h)), up(b, &[0.5f32]));
            scale_bwd(b, at(&sx), at(&dgb), scale.ptr(), at(&dxb), ds.ptr(), n, 1, 1, ws.ptr(), 0).unwrap();
            let mut dx = d0v.clone();
            let dsc = cact::scale_bwd(&xv, &dyv, 1.37, Some(&mut dx), true);
            bf_exact(&body(&dxb, off), &dx, &format!("{b:?} scale_bwd dx"));
            let mag: f32 = xv.iter().zip(&dyv).map(|(a, b)| (a * b).abs()).sum();
            let got = down::<f32>(&ds)[0];
            assert!((got - (0.5 + dsc)).abs() <= 1e-5 * mag, "{b:?} dscale {got} vs {}", 0.5 + dsc);
            scale_bwd(b, at(&sx), at(&dgb), scale.ptr(), at(&dgb), ds.ptr(), n, 0, 0, ws.ptr(), 0).unwrap();
            let mut g = dyv.clone();
            cact::scale_bwd_inplace(&xv, &mut g, 1.37);
            bf_exact(&body(&dgb, off), &g, &format!("{b:?} scale_bwd in place"));
            assert!((down::<f32>(&ds)[0] - dsc).abs() <= 1e-5 * mag);
            // refused: accumulation in place, bad codes
            let e = act_bwd(b, 1, 0.0, at(&sx), at(&dgb), at(&dgb), n, 1, 0).unwrap_err();
            assert_eq!(e.status, Status::InvalidArgument);
            let e = act_fwd(b, 3, 0.0, at(&sx), at(&sy), n, 0).unwrap_err();
            assert_eq!(e.status, Status::InvalidArgument);
            let e = act_fwd(b, 2, -1.0, at(&sx), at(&sy), n, 0).unwrap_err();
            assert!(e.message.contains("slope"), "{e}");
        }
    }
}

#[test]
fn permute_matches_cpu() {
    for b in test_backends() {
        let mut r = Rng(5);
        for &(n, c, s, extra, y_off, acc) in &[(2usize, 5usize, 21usize, 13usize, 7usize, false), (3, 54, 10, 3, 3, true), (1, 1, 9, 0, 0, true)] {
            let q = Permute { n, c, s, y_stride: s * c + extra, y_off };
            let p = PermuteParams { n: n as i32, c: c as i32, s: s as i32, y_stride: q.y_stride as i32, y_off: y_off as i32, acc: acc as i32 };
            let (xh, xv) = r.bf(n * s * c, 2.0, 0.0);
            let y0 = r.vec(n * q.y_stride, 1.0, 0.0);
            let (xd, yd) = (up(b, &xh), up(b, &y0));
            permute_fwd(b, &p, xd.ptr(), yd.ptr(), 0).unwrap();
            let mut y = y0.clone();
            cact::permute_fwd(q, &nsc_to_ncs_host(&xv, n, c, s), &mut y, acc);
            assert_eq!(down::<f32>(&yd), y, "{b:?} permute_fwd n={n} c={c} s={s}");
            let (d0h, d0v) = r.bf(n * s * c, 1.0, 0.0);
            let dxd = up(b, &d0h);
            permute_bwd(b, &p, yd.ptr(), dxd.ptr(), 0).unwrap();
            let mut dx = nsc_to_ncs_host(&d0v, n, c, s);
            cact::permute_bwd(q, &y, &mut dx, acc);
            let got = nsc_to_ncs_host(&down::<u16>(&dxd), n, c, s);
            bf_exact(&got, &dx, &format!("{b:?} permute_bwd n={n} c={c} s={s}"));
        }
        let p = PermuteParams { n: 1, c: 4, s: 5, y_stride: 19, y_off: 0, acc: 0 };
        let (xd, yd) = (up(b, &[0u16; 20]), up(b, &[0f32; 19]));
        assert_eq!(permute_fwd(b, &p, xd.ptr(), yd.ptr(), 0).unwrap_err().status, Status::InvalidArgument);
    }
}

#[test]
fn conversions_and_fill() {
    for b in test_backends() {
        let mut r = Rng(11);
        // flat fp32 <-> bf16 with the awkward values: ties, NaN, infinities, signed zero, subnormals
        let mut v = r.vec(1001, 100.0, 0.0);
        v[..8].copy_from_slice(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 1e-40, f32::from_bits(0x3f80_8000), f32::from_bits(0x3f81_8000), f32::MAX]);
        for off in [0usize, 1] {
            let xd = up(b, &v);
            let yd = up(b, &vec![0u16; v.len()]);
            let m = v.len() - off;
            f32_to_bf16(b, xd.ptr() + 4 * off as u64, yd.ptr() + 2 * off as u64, m, 0).unwrap();
            let got = down::<u16>(&yd);
            for i in off..v.len() {
                assert_eq!(got[i], bf16_bits(v[i]), "{b:?} f32_to_bf16[{i}] of {}", v[i]);
            }
            let back = up(b, &vec![0f32; v.len()]);
            bf16_to_f32(b, yd.ptr() + 2 * off as u64, back.ptr() + 4 * off as u64, m, 0).unwrap();
            let got2 = down::<f32>(&back);
            for i in off..v.len() {
                assert_eq!(got2[i].to_bits(), bf16_value(got[i]).to_bits(), "{b:?} bf16_to_f32[{i}]");
            }
        }
        assert_eq!(bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80, "tie to even (down)");
        assert_eq!(bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82, "tie to even (up)");
        // layouts: tiles with edges (c = 37, s = 45), one channel (the flat path)
        for &(n, c, s) in &[(2usize, 37usize, 45usize), (2, 1, 50), (1, 3, 7)] {
            let x = r.vec(n * c * s, 10.0, 0.0);
            let (xd, yd) = (up(b, &x), up(b, &vec![0u16; x.len()]));
            ncs_to_nsc(b, xd.ptr(), yd.ptr(), n, c, s, 0).unwrap();
            let nsc = down::<u16>(&yd);
            let want: Vec<u16> = x.iter().map(|&f| bf16_bits(f)).collect();
            assert_eq!(nsc_to_ncs_host(&nsc, n, c, s), want, "{b:?} ncs_to_nsc n={n} c={c} s={s}");
            let zd = up(b, &vec![0f32; x.len()]);
            nsc_to_ncs(b, yd.ptr(), zd.ptr(), n, c, s, 0).unwrap();
            let wantf: Vec<f32> = want.iter().map(|&h| bf16_value(h)).collect();
            assert_eq!(down::<f32>(&zd), wantf, "{b:?} nsc_to_ncs n={n} c={c} s={s}");
        }
        // fill a middle range of 16- and 32-bit words; the neighbours stay
        let d = up(b, &[7u16; 64]);
        fill(b, d.ptr() + 6, 50, 2, 0x3f80, 0).unwrap();
        let got = down::<u16>(&d);
        assert!(got.iter().enumerate().all(|(i, &h)| h == if (3..53).contains(&i) { 0x3f80 } else { 7 }), "{b:?} fill16 {got:?}");
        let d = up(b, &[7f32; 40]);
        fill(b, d.ptr() + 4, 37, 4, 0, 0).unwrap();
        let got = down::<f32>(&d);
        assert!(got.iter().enumerate().all(|(i, &f)| f == if (1..38).contains(&i) { 0.0 } else { 7.0 }), "{b:?} fill32 {got:?}");
        assert_eq!(fill(b, d.ptr() + 2, 3, 4, 0, 0).unwrap_err().status, Status::InvalidArgument);
        // on a stream of its own; an unknown stream is refused
        let st = crate::cuda::stream_create(b).unwrap();
        fill(b, d.ptr(), 40, 4, 0x4000_0000, st).unwrap();
        crate::cuda::stream_sync(b, st).unwrap();
        assert!(down::<f32>(&d).iter().all(|&f| f == 2.0), "{b:?} fill on a stream");
        crate::cuda::stream_destroy(b, st).unwrap();
        assert_eq!(fill(b, d.ptr(), 40, 4, 0, st).unwrap_err().status, Status::InvalidArgument);
        assert!(fill(b, d.ptr(), 41, 4, 0, 0).is_err());
    }
}
