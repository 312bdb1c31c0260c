//! Tests of the conv family in Rust: the reference gradients against central finite differences (tiny
//! shapes, f64 losses), for conv and convT, through ops::conv (so the dispatch and checks are covered).

use crate::ops::conv::{self, Kind};

/// Deterministic pseudo-random values in [-1, 1).
pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Params for a conv (padding and output derived) or convT.
pub fn params(kind: Kind, n: i32, cin: i32, cout: i32, dhw: [i32; 3], k: [i32; 3], s: [i32; 3], bias: bool, acc: bool) -> Vec<i32> {
    let mut v = vec![n, cin, cout, dhw[0], dhw[1], dhw[2], k[0], k[1], k[2], s[0], s[1], s[2]];
    let pad: Vec<i32> = (0..3).map(|a| if kind == Kind::Conv { (k[a] - 1) / 2 } else { 0 }).collect();
    v.extend(&pad);
    for a in 0..3 {
        v.push(if kind == Kind::Conv { (dhw[a] + 2 * pad[a] - k[a]) / s[a] + 1 } else { dhw[a] * s[a] });
    }
    v.push(bias as i32);
    v.push(acc as i32);
    v
}

fn loss(kind: Kind, p: &[i32], x: &[f32], w: &[f32], b: &[f32], g: &[f32], ws: &mut [u8]) -> f64 {
    let mut y = vec![0f32; g.len()];
    conv::fwd(kind, p, x, w, b, &mut y, ws).unwrap();
    y.iter().zip(g).map(|(&a, &b)| a as f64 * b as f64).sum()
}

fn check_fd(kind: Kind, p: &[i32]) {
    let pp = match kind {
        Kind::Conv => conv::Conv3dParams::from_slice(p).unwrap(),
        Kind::ConvT => conv::Conv3dParams::from_slice_t(p).unwrap(),
    };
    let mut ws = vec![0u8; conv::workspace(kind, p).unwrap() as usize];
    let x = rand_vec(pp.x_len(), 1);
    let w = rand_vec(pp.w_len(), 2);
    let b = rand_vec(pp.b_len(), 3);
    let g = rand_vec(pp.y_len(), 4);
    let mut dx = vec![0f32; x.len()];
    conv::bwd_data(kind, p, &g, &w, &mut dx, &mut ws).unwrap();
    let mut dw = vec![0f32; w.len()];
    let mut db = vec![0f32; b.len()];
    conv::bwd_weight(kind, p, &x, &g, &mut dw, &mut db, &mut ws).unwrap();
    // The loss is linear in each input, so a large step keeps rounding small.
    let eps = 0.25f32;
    let fd = |which: usize, i: usize, ws: &mut [u8]| {
        let mut v = [x.clone(), w.clone(), b.clone()];
        v[which][i] += eps;
        let lp = loss(kind, p, &v[0], &v[1], &v[2], &g, ws);
        v[which][i] -= 2.0 * eps;
        let lm = loss(kind, p, &v[0], &v[1], &v[2], &g, ws);
        (lp - lm) / (2.0 * eps as f64)
    };
    for (which, grad, name) in [(0, &dx, "dx"), (1, &dw, "dw"), (2, &db, "db")] {
        let step = (grad.len() / 23).max(1);
        for i in (0..grad.len()).step_by(step) {
            let want = fd(which, i, &mut ws);
            let got = grad[i] as f64;
            assert!((got - want).abs() <= 1e-3 + 1e-3 * want.abs(), "{kind:?} {p:?} {name}[{i}] = {got}, finite difference {want}");
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let c = Kind::Conv;
    check_fd(c, &params(c, 2, 2, 3, [4, 5, 3], [3, 3, 3], [1, 1, 1], true, false));
    check_fd(c, &params(c, 1, 3, 2, [5, 4, 5], [3, 3, 3], [2, 2, 2], true, false));
    check_fd(c, &params(c, 1, 2, 2, [3, 5, 6], [1, 3, 3], [1, 2, 2], false, false));
    check_fd(c, &params(c, 2, 3, 2, [2, 3, 3], [1, 1, 1], [1, 1, 1], true, false));
    let t = Kind::ConvT;
    check_fd(t, &params(t, 2, 3, 2, [2, 3, 2], [2, 2, 2], [2, 2, 2], true, false));
    check_fd(t, &params(t, 1, 2, 3, [2, 2, 3], [1, 2, 2], [1, 2, 2], false, false));
}

/// Levels this CPU can run.
pub fn levels() -> Vec<crate::cpu::features::Level> {
    use crate::cpu::features::{detect, Level, FEAT_AVX2, FEAT_AVX512BW, FEAT_AVX512DQ, FEAT_AVX512F, FEAT_AVX512VL, FEAT_FMA};
    let f = detect();
    let mut v = vec![Level::Scalar];
    if f & (FEAT_AVX2 | FEAT_FMA) == FEAT_AVX2 | FEAT_FMA {
        v.push(Level::Avx2);
    }
    let avx512 = FEAT_AVX512F | FEAT_AVX512BW | FEAT_AVX512VL | FEAT_AVX512DQ;
    if f & avx512 == avx512 {
        v.push(Level::Avx512);
    }
    v
}

pub fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 2e-5 * scale + 1e-4 * w.abs(), "{what}: element {i} is {g}, expected {w}");
    }
}

/// Run the fast path at every level against the reference, overwriting and accumulating.
pub fn check_fast(kind: Kind, p: &[i32]) {
    use super::reference::{self as r, Geom};
    let pp = match kind {
        Kind::Conv => conv::Conv3dParams::from_slice(p).unwrap(),
        Kind::ConvT => conv::Conv3dParams::from_slice_t(p).unwrap(),
    };
    let g = if kind == Kind::Conv { Geom::conv(&pp) } else { Geom::convt(&pp) };
    let ws_len = conv::workspace(kind, p).unwrap() as usize;
    // Forward runs in a workspace of exactly its own (forward-only) size, as inference sizes it.
    let ws_fwd_len = conv::workspace_fwd(kind, p).unwrap() as usize;
    assert!(ws_fwd_len <= ws_len);
    let x = rand_vec(pp.x_len(), 11);
    let w = rand_vec(pp.w_len(), 12);
    let b = rand_vec(pp.b_len(), 13);
    let dy = rand_vec(pp.y_len(), 14);
    let acc = pp.accumulate();
    let init = |n: usize| if acc { rand_vec(n, 15) } else { vec![f32::NAN; n] };
    let (mut y0, mut dx0, mut dw0, mut db0) = (init(pp.y_len()), init(pp.x_len()), init(pp.w_len()), init(pp.b_len()));
    if !acc {
        for v in [&mut y0, &mut dx0, &mut dw0, &mut db0] {
            v.fill(0.0);
        }
    }
    let (mut ry, mut rdx, mut rdw, mut rdb) = (y0.clone(), dx0.clone(), dw0.clone(), db0.clone());
    if kind == Kind::Conv {
        r::corr(&g, &x, &w, &b, &mut ry, acc);
        r::adj(&g, &dy, &w, &[], &mut rdx, acc);
        r::wgrad(&g, &dy, &x, &mut rdw, acc);
    } else {
        r::adj(&g, &x, &w, &b, &mut ry, acc);
        r::corr(&g, &dy, &w, &[], &mut rdx, acc);
        r::wgrad(&g, &x, &dy, &mut rdw, acc);
    }
    if pp.has_bias != 0 {
        r::bias_grad(g.n, pp.cout as usize, pp.out_spatial(), &dy, &mut rdb, acc);
    }
    for lv in levels() {
        // A workspace full of garbage, offset so that it is not 64-byte aligned, and every output and the
        // workspace followed by canaries that must survive (the AVX-512 paths are not covered by valgrind).
        const CANARY: usize = 64;
        let mut wsb = vec![0xA5u8; ws_len + 3 + CANARY];
        let mut wsfb = vec![0xA5u8; ws_fwd_len + 3 + CANARY];
        let with_canary = |v: &Vec<f32>| {
            let mut c = v.clone();
            c.extend(std::iter::repeat_n(-7.25f32, CANARY));
            c
        };
        let (mut y, mut dx, mut dw, mut db) = (with_canary(&y0), with_canary(&dx0), with_canary(&dw0), with_canary(&db0));
        let tag = format!("{kind:?} {p:?} {lv:?}");
        {
            let ws = &mut wsb[3..3 + ws_len];
            let wsf = &mut wsfb[3..3 + ws_fwd_len];
            let (ny, nx, nw, nb) = (y0.len(), dx0.len(), dw0.len(), db0.len());
            let (y, dx, dw, db) = (&mut y[..ny], &mut dx[..nx], &mut dw[..nw], &mut db[..nb]);
            super::fwd_at(lv, kind, &pp, &x, &w, &b, y, wsf);
            super::bwd_data_at(lv, kind, &pp, &dy, &w, dx, ws);
            super::bwd_weight_at(lv, kind, &pp, &x, &dy, dw, db, ws);
        }
        assert!(wsb[3 + ws_len..].iter().all(|&v| v == 0xA5), "{tag}: write past the workspace");
        assert!(wsfb[3 + ws_fwd_len..].iter().all(|&v| v == 0xA5), "{tag}: write past the forward workspace");
        for (name, v, n) in [("y", &mut y, y0.len()), ("dx", &mut dx, dx0.len()), ("dw", &mut dw, dw0.len()), ("db", &mut db, db0.len())] {
            assert!(v[n..].iter().all(|&c| c == -7.25), "{tag}: write past {name}");
            v.truncate(n);
        }
        assert_close(&format!("{tag} y"), &y, &ry);
        assert_close(&format!("{tag} dx"), &dx, &rdx);
        assert_close(&format!("{tag} dw"), &dw, &rdw);
        assert_close(&format!("{tag} db"), &db, &rdb);
    }
}

#[test]
fn fast_conv_matches_reference_at_every_level() {
    let c = Kind::Conv;
    for acc in [false, true] {
        check_fast(c, &params(c, 2, 5, 7, [7, 9, 11], [3, 3, 3], [1, 1, 1], true, acc));
        check_fast(c, &params(c, 1, 3, 17, [7, 9, 11], [3, 3, 3], [2, 2, 2], false, acc));
        check_fast(c, &params(c, 2, 4, 6, [5, 9, 11], [1, 3, 3], [1, 2, 2], true, acc));
        check_fast(c, &params(c, 2, 9, 18, [7, 9, 11], [1, 1, 1], [1, 1, 1], true, acc));
        check_fast(c, &params(c, 1, 1, 8, [7, 9, 11], [3, 3, 3], [1, 1, 1], true, acc));
        check_fast(c, &params(c, 1, 6, 5, [6, 7, 9], [1, 1, 1], [2, 2, 2], false, acc));
        check_fast(c, &params(c, 2, 19, 3, [3, 4, 5], [3, 3, 3], [2, 1, 2], true, acc));
        check_fast(c, &params(c, 2, 3, 5, [3, 7, 9], [1, 3, 3], [1, 1, 1], true, acc));
        check_fast(c, &params(c, 1, 2, 9, [4, 5, 19], [3, 3, 3], [1, 1, 1], false, acc));
        check_fast(c, &params(c, 1, 3, 4, [3, 5, 32], [3, 3, 3], [2, 2, 2], true, acc));
        // rowtile.rs through the dispatch: d stride 2, odd w; w = 16 with more rows than one task holds
        check_fast(c, &params(c, 2, 18, 20, [3, 5, 7], [3, 3, 3], [2, 1, 1], true, acc));
        check_fast(c, &params(c, 1, 33, 17, [2, 17, 16], [3, 3, 3], [1, 1, 1], true, acc));
    }
}

#[test]
fn fast_convt_matches_reference_at_every_level() {
    let t = Kind::ConvT;
    for acc in [false, true] {
        check_fast(t, &params(t, 2, 5, 3, [3, 4, 5], [2, 2, 2], [2, 2, 2], true, acc));
        check_fast(t, &params(t, 1, 4, 7, [3, 5, 6], [1, 2, 2], [1, 2, 2], false, acc));
        check_fast(t, &params(t, 1, 17, 2, [2, 3, 3], [1, 1, 1], [1, 1, 1], true, acc));
    }
}

/// Every tile shape of every level (plane kernel: corr and adj; weight gradient: both modes) against
/// the reference, on odd conv and convT geometries.
#[test]
fn every_tile_shape_matches_reference() {
    use super::reference::{self as r, Geom};
    use super::{fast, plane, wgrad};
    let geoms = [
        (Kind::Conv, params(Kind::Conv, 2, 5, 7, [3, 5, 7], [3, 3, 3], [1, 2, 2], true, false)),
        (Kind::Conv, params(Kind::Conv, 1, 17, 3, [3, 4, 6], [1, 3, 3], [1, 1, 1], true, false)),
        (Kind::Conv, params(Kind::Conv, 2, 20, 37, [3, 5, 11], [3, 3, 3], [2, 1, 1], true, false)),
        (Kind::Conv, params(Kind::Conv, 1, 70, 66, [2, 3, 9], [3, 3, 3], [1, 1, 1], true, false)),
        // stride 2 with lo rows a multiple of the lanes (the adj pass stores every other hi column); odd hi w
        (Kind::Conv, params(Kind::Conv, 2, 3, 5, [3, 5, 31], [3, 3, 3], [1, 2, 2], true, false)),
        (Kind::Conv, params(Kind::Conv, 1, 4, 3, [2, 4, 64], [1, 3, 3], [2, 1, 2], true, false)),
        // rows: two input-channel blocks at 32-wide groups, two row blocks; a 1-wide plane
        (Kind::Conv, params(Kind::Conv, 1, 80, 24, [2, 17, 16], [3, 3, 3], [1, 1, 1], true, false)),
        (Kind::Conv, params(Kind::Conv, 2, 16, 5, [3, 2, 1], [3, 3, 3], [1, 1, 1], true, false)),
        (Kind::ConvT, params(Kind::ConvT, 1, 3, 18, [2, 3, 3], [2, 2, 2], [2, 2, 2], true, false)),
    ];
    for (kind, p) in geoms {
        let pp = if kind == Kind::Conv { conv::Conv3dParams::from_slice(&p) } else { conv::Conv3dParams::from_slice_t(&p) }.unwrap();
        let g = if kind == Kind::Conv { Geom::conv(&pp) } else { Geom::convt(&pp) };
        let lo = rand_vec(g.n * g.c_lo * g.lo.iter().product::<usize>(), 21);
        let hi = rand_vec(g.n * g.c_hi * g.hi.iter().product::<usize>(), 22);
        let w = rand_vec(pp.w_len(), 23);
        let (mut rlo, mut rhi, mut rdw) = (vec![0f32; lo.len()], vec![0f32; hi.len()], vec![0f32; w.len()]);
        r::corr(&g, &hi, &w, &[], &mut rlo, false);
        r::adj(&g, &lo, &w, &[], &mut rhi, false);
        r::wgrad(&g, &lo, &hi, &mut rdw, false);
        let mut ws = vec![0u8; fast::all_sizes(&g) * 2 + (1 << 16)];
        for lv in levels() {
            if g.s[1] == 1 && g.s[2] == 1 && g.k[2] == 3 && g.lo[2] <= 16 {
                let tag = format!("{p:?} {lv:?} rows");
                let mut out = vec![f32::NAN; lo.len()];
                fast::row_pass(lv, &g, true, &hi, &w, &[], &mut out, false, &mut ws);
                assert_close(&format!("{tag} corr"), &out, &rlo);
                let mut out = vec![f32::NAN; hi.len()];
                fast::row_pass(lv, &g, false, &lo, &w, &[], &mut out, false, &mut ws);
                assert_close(&format!("{tag} adj"), &out, &rhi);
            }
            for &shape in plane::shapes(lv) {
                let tag = format!("{p:?} {lv:?} {shape:?}");
                let mut out = vec![f32::NAN; lo.len()];
                fast::plane_pass_shape(lv, shape, &g, true, &hi, &w, &[], &mut out, false, &mut ws);
                assert_close(&format!("{tag} corr"), &out, &rlo);
                let mut out = vec![f32::NAN; hi.len()];
                fast::plane_pass_shape(lv, shape, &g, false, &lo, &w, &[], &mut out, false, &mut ws);
                assert_close(&format!("{tag} adj"), &out, &rhi);
            }
            for swapped in [false, true] {
                for &(rr, cv) in wgrad::shapes(lv) {
                    let l = super::simd::lanes(lv);
                    let vch = if swapped { g.c_lo } else { g.c_hi };
                    let pl = wgrad::Plan { swapped, r: rr, cv, cp: vch.div_ceil(cv * l) * cv * l };
                    let need = super::layout::carve_size(&wgrad::plan_sizes(&g, &pl));
                    let mut ws = vec![0x5Au8; need];
                    let mut dw = vec![f32::NAN; w.len()];
                    wgrad::run_plan(lv, pl, &g, &lo, &hi, &mut dw, false, &mut ws);
                    assert_close(&format!("{p:?} {lv:?} {pl:?} wgrad"), &dw, &rdw);
                }
            }
        }
    }
}
