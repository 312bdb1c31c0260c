//! C ABI shells of the engine family (norm, activations, add, scale, head permute, SGD, averaging); checks and
//! dispatch in ops/engine.rs. In-place calls pass the same pointer twice where the doc says so; any other
//! overlap between an input and an output is refused.

use crate::abi::{out, slice, slice_mut};
use crate::error::{guard, NdError, NdResult};
use crate::ops::engine::{self as ops, NormParams, PermuteParams};

/// Refuse partial overlap of [a, a+na) and [b, b+nb) (f32 elements); identical starts are reported as true.
fn aliased(a: *const f32, na: u64, b: *const f32, nb: u64, what: &str) -> NdResult<bool> {
    if a.is_null() || b.is_null() || na == 0 || nb == 0 {
        return Ok(false);
    }
    if a == b {
        return Ok(true);
    }
    let (a0, b0) = (a as usize, b as usize);
    let (a1, b1) = (a0 + na as usize * 4, b0 + nb as usize * 4);
    if a0 < b1 && b0 < a1 {
        return Err(NdError::invalid(format!("{what}: buffers overlap without being the same buffer")));
    }
    Ok(false)
}

/// Norm (instance: groups = c; group: groups = c/16) + fused activation, forward. Saves mean/rstd [n*groups].
///
/// # Safety
/// Pointers must hold the given element counts; `p` one NormParams.
#[no_mangle]
pub unsafe extern "C" fn nd_norm_fwd(
    p: *const NormParams, x: *const f32, nx: u64, gamma: *const f32, ng: u64, beta: *const f32, nb: u64,
    y: *mut f32, ny: u64, mean: *mut f32, nm: u64, rstd: *mut f32, nr: u64, eps: f32, slope: f32,
) -> i32 {
    guard("nd_norm_fwd", || {
        let p = out(p as *mut NormParams, "params")?;
        if aliased(x, nx, y, ny, "x/y")? {
            return Err(NdError::invalid("norm forward cannot run in place"));
        }
        ops::norm_fwd(
            p, slice(x, nx, "x")?, slice(gamma, ng, "gamma")?, slice(beta, nb, "beta")?, slice_mut(y, ny, "y")?,
            slice_mut(mean, nm, "mean")?, slice_mut(rstd, nr, "rstd")?, eps, slope,
        )
    })
}

/// Activation + norm backward from the norm's input x (the activation mask is recomputed, y is not needed);
/// dx == x runs in place (acc_dx 0).
///
/// # Safety
/// Pointers must hold the given element counts; `p` one NormParams.
#[no_mangle]
pub unsafe extern "C" fn nd_norm_bwd(
    p: *const NormParams, x: *const f32, nx: u64, beta: *const f32, nb: u64, dy: *const f32, ndy: u64,
    gamma: *const f32, ng: u64, mean: *const f32, nm: u64, rstd: *const f32, nr: u64,
    dx: *mut f32, ndx: u64, dgamma: *mut f32, ndg: u64, dbeta: *mut f32, ndb: u64, slope: f32,
) -> i32 {
    guard("nd_norm_bwd", || {
        let p = out(p as *mut NormParams, "params")?;
        if aliased(dy, ndy, dx, ndx, "dy/dx")? {
            return Err(NdError::invalid("norm backward: dy and dx must be different buffers"));
        }
        let (b, g, m, r) = (slice(beta, nb, "beta")?, slice(gamma, ng, "gamma")?, slice(mean, nm, "mean")?, slice(rstd, nr, "rstd")?);
        let (dg, db) = (slice_mut(dgamma, ndg, "dgamma")?, slice_mut(dbeta, ndb, "dbeta")?);
        let d = slice(dy, ndy, "dy")?;
        if aliased(x, nx, dx, ndx, "x/dx")? {
            ops::need("x", nx as usize, ndx as usize)?;
            return ops::norm_bwd(p, None, b, d, g, m, r, slice_mut(dx, ndx, "dx")?, dg, db, slope);
        }
        ops::norm_bwd(p, Some(slice(x, nx, "x")?), b, d, g, m, r, slice_mut(dx, ndx, "dx")?, dg, db, slope)
    })
}

/// y = act(x) (act 1 ReLU, 2 LeakyReLU(slope)); x == y runs in place.
///
/// # Safety
/// Pointers must hold the given element counts.
#[no_mangle]
pub unsafe extern "C" fn nd_act_fwd(act: i32, slope: f32, x: *const f32, nx: u64, y: *mut f32, ny: u64) -> i32 {
    guard("nd_act_fwd", || {
        if aliased(x, nx, y, ny, "x/y")? {
            ops::need("y", ny as usize, nx as usize)?;
            return ops::act_fwd(act, slope, None, slice_mut(y, ny, "y")?);
        }
        ops::act_fwd(act, slope, Some(slice(x, nx, "x")?), slice_mut(y, ny, "y")?)
    })
}

/// dx (+)= act'(y) * dy from the activation's output y; dy == dx runs in place (acc 0).
///
/// # Safety
/// Pointers must hold the given element counts.
#[no_mangle]
pub unsafe extern "C" fn nd_act_bwd(act: i32, slope: f32, y: *const f32, ny: u64, dy: *const f32, ndy: u64, dx: *mut f32, ndx: u64, acc: i32) -> i32 {
    guard("nd_act_bwd", || {
        if aliased(y, ny, dx, ndx, "y/dx")? {
            return Err(NdError::invalid("activation backward: y and dx must be different buffers"));
        }
        if aliased(dy, ndy, dx, ndx, "dy/dx")? {
            ops::need("dy", ndy as usize, ndx as usize)?;
            return ops::act_bwd(act, slope, slice(y, ny, "y")?, None, slice_mut(dx, ndx, "dx")?, acc);
        }
        ops::act_bwd(act, slope, slice(y, ny, "y")?, Some(slice(dy, ndy, "dy")?), slice_mut(dx, ndx, "dx")?, acc)
    })
}

/// y = a + b; y may be the same buffer as a (or b).
///
/// # Safety
/// Pointers must hold the given element counts.
#[no_mangle]
pub unsafe extern "C" fn nd_add(a: *const f32, na: u64, b: *const f32, nb: u64, y: *mut f32, ny: u64) -> i32 {
    guard("nd_add", || {
        let (ya, yb) = (aliased(a, na, y, ny, "a/y")?, aliased(b, nb, y, ny, "b/y")?);
        if ya && yb {
            ops::need("a", na as usize, ny as usize)?;
            let yv = slice_mut(y, ny, "y")?;
            yv.iter_mut().for_each(|v| *v += *v);
            return Ok(());
        }
        if ya || yb {
            let (other, no) = if ya { (b, nb) } else { (a, na) };
            ops::need(if ya { "a" } else { "b" }, if ya { na } else { nb } as usize, ny as usize)?;
            return ops::add(None, slice(other, no, "b")?, slice_mut(y, ny, "y")?);
        }
        ops::add(Some(slice(a, na, "a")?), slice(b, nb, "b")?, slice_mut(y, ny, "y")?)
    })
}

/// y = x * scale[0] (scale: one value); x == y runs in place.
///
/// # Safety
/// Pointers must hold the given element counts.
#[no_mangle]
pub unsafe extern "C" fn nd_scale_fwd(x: *const f32, nx: u64, scale: *const f32, ns: u64, y: *mut f32, ny: u64) -> i32 {
    guard("nd_scale_fwd", || {
        let s = slice(scale, ns, "scale")?;
        if aliased(x, nx, y, ny, "x/y")? {
            ops::need("y", ny as usize, nx as usize)?;
            return ops::scale_fwd(None, s, slice_mut(y, ny, "y")?);
        }
        ops::scale_fwd(Some(slice(x, nx, "x")?), s, slice_mut(y, ny, "y")?)
    })
}

/// dx (+)= dy * scale, dscale[0] (+)= sum(dy * x); dy == dx runs in place (acc_dx 0).
///
/// # Safety
/// Pointers must hold the given element counts.
#[no_mangle]
pub unsafe extern "C" fn nd_scale_bwd(
    x: *const f32, nx: u64, dy: *const f32, ndy: u64, scale: *const f32, ns: u64, dx: *mut f32, ndx: u64,
    dscale: *mut f32, nds: u64, acc_dx: i32, acc_dscale: i32,
) -> i32 {
    guard("nd_scale_bwd", || {
        let s = slice(scale, ns, "scale")?;
        let ds = slice_mut(dscale, nds, "dscale")?;
        if aliased(x, nx, dx, ndx, "x/dx")? {
            return Err(NdError::invalid("scale backward: x and dx must be different buffers"));
        }
        if aliased(dy, ndy, dx, ndx, "dy/dx")? {
            ops::need("dy", ndy as usize, ndx as usize)?;
            return ops::scale_bwd(slice(x, nx, "x")?, None, s, slice_mut(dx, ndx, "dx")?, ds, acc_dx, acc_dscale);
        }
        ops::scale_bwd(slice(x, nx, "x")?, Some(slice(dy, ndy, "dy")?), s, slice_mut(dx, ndx, "dx")?, ds, acc_dx, acc_dscale)
    })
}

/// Head permute forward: y[n*y_stride + y_off + s*C + c] (+)= x[n][c][s].
///
/// # Safety
/// Pointers must hold the given element counts; `p` one PermuteParams.
#[no_mangle]
pub unsafe extern "C" fn nd_permute_fwd(p: *const PermuteParams, x: *const f32, nx: u64, y: *mut f32, ny: u64) -> i32 {
    guard("nd_permute_fwd", || {
        let p = out(p as *mut PermuteParams, "params")?;
        if aliased(x, nx, y, ny, "x/y")? {
            return Err(NdError::invalid("permute cannot run in place"));
        }
        ops::permute_fwd(p, slice(x, nx, "x")?, slice_mut(y, ny, "y")?)
    })
}

/// Head permute backward: dx[n][c][s] (+)= dy[n*y_stride + y_off + s*C + c].
///
/// # Safety
/// Pointers must hold the given element counts; `p` one PermuteParams.
#[no_mangle]
pub unsafe extern "C" fn nd_permute_bwd(p: *const PermuteParams, dy: *const f32, ndy: u64, dx: *mut f32, ndx: u64) -> i32 {
    guard("nd_permute_bwd", || {
        let p = out(p as *mut PermuteParams, "params")?;
        if aliased(dy, ndy, dx, ndx, "dy/dx")? {
            return Err(NdError::invalid("permute backward cannot run in place"));
        }
        ops::permute_bwd(p, slice(dy, ndy, "dy")?, slice_mut(dx, ndx, "dx")?)
    })
}

/// One SGD step (torch.optim.SGD semantics, see cpu/optim.rs) over flat buffers; mask[i] != 0 applies decay.
///
/// # Safety
/// Pointers must hold the given element counts.
#[no_mangle]
pub unsafe extern "C" fn nd_sgd_step(
    params: *mut f32, np: u64, grads: *const f32, ng: u64, momentum: *mut f32, nm: u64, mask: *const u8, nmask: u64,
    lr: f32, mu: f32, weight_decay: f32, nesterov: i32,
) -> i32 {
    guard("nd_sgd_step", || {
        for (b, nb, w) in [(grads, ng, "grads/params"), (momentum as *const f32, nm, "momentum/params")] {
            if aliased(b, nb, params, np, w)? {
                return Err(NdError::invalid(format!("sgd: {w} must be different buffers")));
            }
        }
        ops::sgd_step(
            slice_mut(params, np, "params")?, slice(grads, ng, "grads")?, slice_mut(momentum, nm, "momentum")?,
            slice(mask, nmask, "mask")?, lr, mu, weight_decay, nesterov,
        )
    })
}

/// avg = avg + (params - avg) / (n_averaged + 1) (a copy when n_averaged = 0).
///
/// # Safety
/// Pointers must hold the given element counts.
#[no_mangle]
pub unsafe extern "C" fn nd_average_update(avg: *mut f32, na: u64, params: *const f32, np: u64, n_averaged: u64) -> i32 {
    guard("nd_average_update", || {
        if aliased(params, np, avg, na, "params/avg")? {
            return Err(NdError::invalid("average: avg and params must be different buffers"));
        }
        ops::average_update(slice_mut(avg, na, "avg")?, slice(params, np, "params")?, n_averaged)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error;

    #[test]
    fn shells_refuse_bad_arguments() {
        unsafe {
            let p = NormParams { n: 1, c: 4, d: 2, h: 2, w: 2, groups: 3, act: 1, acc_dx: 0, acc_dparam: 0 };
            let x = [0f32; 32];
            let mut y = [0f32; 32];
            let g = [1f32; 4];
            let (mut m, mut r) = ([0f32; 4], [0f32; 4]);
            let st = nd_norm_fwd(&p, x.as_ptr(), 32, g.as_ptr(), 4, g.as_ptr(), 4, y.as_mut_ptr(), 32, m.as_mut_ptr(), 4, r.as_mut_ptr(), 4, 1e-5, 0.01);
            assert_eq!(st, 1);
            assert!(error::last_error().contains("divide channels"));
            let p = NormParams { groups: 4, ..p };
            let st = nd_norm_fwd(&p, x.as_ptr(), 31, g.as_ptr(), 4, g.as_ptr(), 4, y.as_mut_ptr(), 32, m.as_mut_ptr(), 4, r.as_mut_ptr(), 4, 1e-5, 0.01);
            assert_eq!(st, 3);
            assert!(error::last_error().contains("x has 31 elements, expected 32"), "{}", error::last_error());
            let p0 = NormParams { d: 0, ..p };
            let st = nd_norm_fwd(&p0, x.as_ptr(), 0, g.as_ptr(), 4, g.as_ptr(), 4, y.as_mut_ptr(), 0, m.as_mut_ptr(), 4, r.as_mut_ptr(), 4, 1e-5, 0.01);
            assert_eq!(st, 1);
            let st = nd_norm_fwd(&p, y.as_ptr(), 32, g.as_ptr(), 4, g.as_ptr(), 4, y.as_mut_ptr(), 32, m.as_mut_ptr(), 4, r.as_mut_ptr(), 4, 1e-5, 0.01);
            assert_eq!(st, 1);
            // partial overlap is refused, identical pointers run in place
            let mut buf = [1f32, -2.0, 3.0, -4.0, 5.0];
            let bp = buf.as_mut_ptr();
            assert_eq!(nd_act_fwd(1, 0.0, bp, 4, bp.add(1), 4), 1);
            assert_eq!(nd_act_fwd(1, 0.0, bp, 5, bp, 5), 0);
            assert_eq!(buf, [1.0, 0.0, 3.0, 0.0, 5.0]);
            assert_eq!(nd_act_fwd(7, 0.0, bp, 5, bp, 5), 1);
            let pp = PermuteParams { n: 1, c: 2, s: 3, y_stride: 5, y_off: 0, acc: 0 };
            let mut out6 = [0f32; 6];
            assert_eq!(nd_permute_fwd(&pp, x.as_ptr(), 6, out6.as_mut_ptr(), 5), 1);
            assert!(error::last_error().contains("do not fit"));
            let mut mom = [0f32; 5];
            assert_eq!(nd_sgd_step(bp, 5, x.as_ptr(), 5, mom.as_mut_ptr(), 5, [1u8; 4].as_ptr(), 4, 0.1, 0.9, 0.0, 1), 3);
            assert_eq!(nd_sgd_step(bp, 5, x.as_ptr(), 5, mom.as_mut_ptr(), 5, [1u8; 5].as_ptr(), 5, 0.1, 1.5, 0.0, 1), 1);
        }
    }
}
