//! SGD and the SWA parameter average on the device (cuda/optim.cu) over the flat fp32 parameter vector,
//! bit-identical to cpu/optim.rs (torch.optim.SGD with masked weight decay, momentum, Nesterov; the
//! AveragedModel running mean): the kernels do the CPU's exact operation sequence, fused multiply-adds where
//! Rust uses mul_add and separately rounded products where it does not. Checks as src/ops/engine.rs.

use super::engine::{aligned16, check_args, R, W};
use super::{call, stream_ok, Backend};
use crate::ensure;
use crate::error::{NdError, NdResult};
use crate::ops::engine::sgd_hyper;
use std::os::raw::{c_int, c_void};

/// SGD hyper-parameters (cuda/optim.cu NdSgd).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgdGeom {
    pub lr: f32,
    pub mu: f32,
    pub wd: f32,
    pub nesterov: i32,
}

launchers! { pub struct OptimKernels {
    fn sgd_step(params: *mut f32, grads: *const f32, momentum: *mut f32, mask: *const u8, n: i64, h: *const SgdGeom, vec: c_int, stream: *mut c_void);
    fn average_update(avg: *mut f32, params: *const f32, n: i64, k: f32, first: c_int, vec: c_int, stream: *mut c_void);
} }

/// One SGD step in place over n fp32 parameters (torch.optim.SGD; bit-identical to cpu/optim.rs).
#[allow(clippy::too_many_arguments)]
pub fn sgd_step(
    b: Backend, params: u64, grads: u64, momentum: u64, mask: u64, n: usize, lr: f32, mu: f32, wd: f32,
    nesterov: i32, stream: u64,
) -> NdResult<()> {
    let h = sgd_hyper(lr, mu, wd, nesterov)?;
    ensure!(n > 0, "no parameters");
    let m = i64::try_from(n).map_err(|_| NdError::invalid("parameter count overflows"))?;
    let fb = 4 * n as u64;
    check_args(b, &[(params, fb, "params", W), (grads, fb, "grads", R), (momentum, fb, "momentum", W), (mask, n as u64, "mask", R)], &[])?;
    let g = SgdGeom { lr: h.lr, mu: h.momentum, wd: h.weight_decay, nesterov: h.nesterov as i32 };
    let vec = if aligned16(&[params, grads, momentum]) && mask.is_multiple_of(4) { 4 } else { 1 };
    let st = stream_ok(b, stream)?;
    let k = OptimKernels::of(b)?;
    // SAFETY: sizes checked above.
    call(b, unsafe { (k.sgd_step)(params as _, grads as _, momentum as _, mask as _, m, &g, vec, st) }, "sgd_step")
}

/// SWA: avg = avg + (params - avg) / (n_averaged + 1) over n fp32 (a copy when n_averaged == 0).
pub fn average_update(b: Backend, avg: u64, params: u64, n: usize, n_averaged: u64, stream: u64) -> NdResult<()> {
    ensure!(n > 0, "no parameters");
    let m = i64::try_from(n).map_err(|_| NdError::invalid("parameter count overflows"))?;
    let fb = 4 * n as u64;
    check_args(b, &[(avg, fb, "avg", W), (params, fb, "params", R)], &[])?;
    let vec = if aligned16(&[avg, params]) { 4 } else { 1 };
    // NOTE: the same u64 -> f32 conversion as cpu/optim.rs, done here on the host.
    let k_f = (n_averaged + 1) as f32;
    let st = stream_ok(b, stream)?;
    let k = OptimKernels::of(b)?;
    // SAFETY: sizes checked above.
    call(b, unsafe { (k.average_update)(avg as _, params as _, m, k_f, (n_averaged == 0) as c_int, vec, st) }, "average_update")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::optim::{self as copt, Sgd};
    use crate::cuda::test_backends;
    use crate::cuda::testutil::{down, up, Rng};


    #[test]
    fn sgd_and_average_are_bit_identical_to_cpu() {
        for b in test_backends() {
            let mut r = Rng(3);
            for &(n, off) in &[(1001usize, 0usize), (203, 1)] {
                for h in [
                    Sgd { lr: 0.01, momentum: 0.99, weight_decay: 3e-5, nesterov: true },
                    Sgd { lr: 0.1, momentum: 0.9, weight_decay: 1e-4, nesterov: false },
                    Sgd { lr: 0.05, momentum: 0.0, weight_decay: 0.0, nesterov: false },
                ] {
                    let mut p = r.vec(n + off, 1.0, 0.0);
                    let mut mom = vec![0f32; n + off];
                    let mask: Vec<u8> = (0..n + off).map(|i| (i % 3 != 0) as u8).collect();
                    let (pd, md, kd) = (up(b, &p), up(b, &mom), up(b, &mask));
                    let o4 = 4 * off as u64;
                    for step in 0..3 {
                        let g = r.vec(n + off, 1.0 + step as f32, 0.0);
                        let gd = up(b, &g);
                        sgd_step(b, pd.ptr() + o4, gd.ptr() + o4, md.ptr() + o4, kd.ptr() + off as u64, n, h.lr, h.momentum, h.weight_decay, h.nesterov as i32, 0).unwrap();
                        copt::sgd_step(h, &mut p[off..], &g[off..], &mut mom[off..], &mask[off..]);
                        let (gp, gm) = (down::<f32>(&pd), down::<f32>(&md));
                        for i in 0..n + off {
                            assert_eq!(gp[i].to_bits(), p[i].to_bits(), "{b:?} {h:?} step {step} param[{i}]: {} vs {}", gp[i], p[i]);
                            assert_eq!(gm[i].to_bits(), mom[i].to_bits(), "{b:?} {h:?} step {step} momentum[{i}]");
                        }
                    }
                }
                let mut avg = r.vec(n + off, 1.0, 0.0);
                let ad = up(b, &avg);
                for k in 0..4u64 {
                    let p = r.vec(n + off, 2.0, 0.5);
                    let pd = up(b, &p);
                    average_update(b, ad.ptr() + 4 * off as u64, pd.ptr() + 4 * off as u64, n, k, 0).unwrap();
                    copt::average_update(&mut avg[off..], &p[off..], k);
                    let got = down::<f32>(&ad);
                    assert!(got.iter().zip(&avg).all(|(a, b)| a.to_bits() == b.to_bits()), "{b:?} average after {k}");
                }
            }
            let x = up(b, &[0f32; 8]);
            let m = up(b, &[0u8; 8]);
            let e = sgd_step(b, x.ptr(), x.ptr(), x.ptr(), m.ptr(), 8, 0.1, 0.0, 0.0, 1, 0).unwrap_err();
            assert!(e.message.contains("Nesterov"), "{e}");
            let e = sgd_step(b, x.ptr(), x.ptr() + 4, x.ptr(), m.ptr(), 4, 0.1, 0.0, 0.0, 0, 0).unwrap_err();
            assert!(e.message.contains("overlap"), "{e}");
        }
    }
}
