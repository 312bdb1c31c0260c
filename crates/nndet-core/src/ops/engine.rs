//! Argument checks and dispatch for the engine family: group/instance norm (+ fused activation), activations,
//! add, learnable scale, head permute, SGD and parameter averaging. Kernels: cpu/{norm,act,optim}.rs.
//! Every size mismatch is a `BufferSize` error saying expected vs got; bad geometry is `InvalidArgument`.

use crate::cpu::act::{self, Permute};
use crate::cpu::norm::{self, Act, NormShape, XDx};
use crate::cpu::optim::{self, Sgd};
use crate::ensure;
use crate::error::{NdError, NdResult, Status};

/// Norm geometry as it crosses the ABI (src/native/ops/engine.ts `normParams` fills it; 9 x i32).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NormParams {
    pub n: i32,
    pub c: i32,
    pub d: i32,
    pub h: i32,
    pub w: i32,
    pub groups: i32,
    /// 0 none, 1 ReLU, 2 LeakyReLU(slope)
    pub act: i32,
    /// backward: 1 adds into dx, 0 overwrites
    pub acc_dx: i32,
    /// backward: 1 adds into dgamma/dbeta, 0 overwrites
    pub acc_dparam: i32,
}

/// Head permute geometry (6 x i32): x [n][c][s] -> rows of y_stride per image at y_off, position-major.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PermuteParams {
    pub n: i32,
    pub c: i32,
    pub s: i32,
    pub y_stride: i32,
    pub y_off: i32,
    pub acc: i32,
}

pub fn need(name: &str, got: usize, want: usize) -> NdResult<()> {
    if got != want {
        return Err(NdError::new(Status::BufferSize, format!("{name} has {got} elements, expected {want}")));
    }
    Ok(())
}

pub fn act_of(code: i32, slope: f32) -> NdResult<Act> {
    match code {
        0 => Ok(Act::None),
        1 => Ok(Act::Relu),
        2 => {
            ensure!(slope.is_finite() && slope > 0.0, "LeakyReLU slope must be finite and > 0, got {slope}");
            Ok(Act::Leaky(slope))
        }
        _ => Err(NdError::invalid(format!("activation code must be 0 (none), 1 (relu) or 2 (leaky), got {code}"))),
    }
}

pub fn flag(v: i32, name: &str) -> NdResult<bool> {
    ensure!(v == 0 || v == 1, "{name} must be 0 or 1, got {v}");
    Ok(v == 1)
}

pub fn norm_shape(p: &NormParams) -> NdResult<NormShape> {
    ensure!(
        p.n > 0 && p.c > 0 && p.d > 0 && p.h > 0 && p.w > 0,
        "norm sizes must be positive: n={} c={} d={} h={} w={}",
        p.n, p.c, p.d, p.h, p.w
    );
    ensure!(p.groups > 0 && p.c % p.groups == 0, "groups ({}) must be positive and divide channels ({})", p.groups, p.c);
    let s = (p.d as usize).checked_mul(p.h as usize).and_then(|v| v.checked_mul(p.w as usize));
    let sh = NormShape { n: p.n as usize, c: p.c as usize, groups: p.groups as usize, s: s.unwrap_or(usize::MAX) };
    ensure!(
        s.is_some() && sh.n.checked_mul(sh.c).and_then(|v| v.checked_mul(sh.s)).is_some(),
        "norm tensor size overflows"
    );
    Ok(sh)
}

/// Fused norm (+ activation) forward; saves mean/rstd [N*G].
#[allow(clippy::too_many_arguments)]
pub fn norm_fwd(p: &NormParams, x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], mean: &mut [f32], rstd: &mut [f32], eps: f32, slope: f32) -> NdResult<()> {
    let sh = norm_shape(p)?;
    let act = act_of(p.act, slope)?;
    ensure!(eps.is_finite() && eps > 0.0, "eps must be finite and > 0, got {eps}");
    need("x", x.len(), sh.numel())?;
    need("y", y.len(), sh.numel())?;
    need("gamma", gamma.len(), sh.c)?;
    need("beta", beta.len(), sh.c)?;
    need("mean", mean.len(), sh.n * sh.groups)?;
    need("rstd", rstd.len(), sh.n * sh.groups)?;
    norm::norm_act_fwd(sh, x, gamma, beta, eps, act, y, mean, rstd);
    Ok(())
}

/// Fused activation + norm backward; `x` None means dx is written over x (held in `dx`; acc_dx must be 0).
#[allow(clippy::too_many_arguments)]
pub fn norm_bwd(
    p: &NormParams, x: Option<&[f32]>, beta: &[f32], dy: &[f32], gamma: &[f32], mean: &[f32], rstd: &[f32],
    dx: &mut [f32], dgamma: &mut [f32], dbeta: &mut [f32], slope: f32,
) -> NdResult<()> {
    let sh = norm_shape(p)?;
    let act = act_of(p.act, slope)?;
    let (acc_dx, acc_dp) = (flag(p.acc_dx, "acc_dx")?, flag(p.acc_dparam, "acc_dparam")?);
    need("dy", dy.len(), sh.numel())?;
    need("dx", dx.len(), sh.numel())?;
    need("gamma", gamma.len(), sh.c)?;
    need("beta", beta.len(), sh.c)?;
    need("dgamma", dgamma.len(), sh.c)?;
    need("dbeta", dbeta.len(), sh.c)?;
    need("mean", mean.len(), sh.n * sh.groups)?;
    need("rstd", rstd.len(), sh.n * sh.groups)?;
    let xdx = match x {
        Some(x) => {
            need("x", x.len(), sh.numel())?;
            XDx::Split(x, dx)
        }
        None => {
            ensure!(!acc_dx, "norm backward in place (dx == x) cannot accumulate into dx");
            XDx::InPlace(dx)
        }
    };
    norm::norm_act_bwd(sh, xdx, dy, gamma, beta, mean, rstd, act, dgamma, dbeta, acc_dx, acc_dp);
    Ok(())
}

/// y = act(x), or in place when `x` is None.
pub fn act_fwd(code: i32, slope: f32, x: Option<&[f32]>, y: &mut [f32]) -> NdResult<()> {
    let a = act_of(code, slope)?;
    ensure!(!y.is_empty(), "activation of an empty tensor");
    match x {
        Some(x) => {
            need("y", y.len(), x.len())?;
            act::act_fwd(a, x, y)
        }
        None => act::act_fwd_inplace(a, y),
    }
    Ok(())
}

/// dx (+)= act'(y)*dy, or in place over dy when `dy` is None (acc must be 0 then).
pub fn act_bwd(code: i32, slope: f32, y: &[f32], dy: Option<&[f32]>, dx: &mut [f32], acc: i32) -> NdResult<()> {
    let a = act_of(code, slope)?;
    let acc = flag(acc, "acc")?;
    ensure!(!y.is_empty(), "activation backward of an empty tensor");
    need("dx", dx.len(), y.len())?;
    match dy {
        Some(dy) => {
            need("dy", dy.len(), y.len())?;
            act::act_bwd(a, y, dy, dx, acc)
        }
        None => {
            ensure!(!acc, "in-place activation backward (dx == dy) cannot accumulate");
            act::act_bwd_inplace(a, y, dx)
        }
    }
    Ok(())
}

/// y = a + b (`a` None: y += b in place).
pub fn add(a: Option<&[f32]>, b: &[f32], y: &mut [f32]) -> NdResult<()> {
    ensure!(!b.is_empty(), "add of empty tensors");
    need("y", y.len(), b.len())?;
    match a {
        Some(a) => {
            need("a", a.len(), b.len())?;
            act::add(a, b, y)
        }
        None => act::add_inplace(y, b),
    }
    Ok(())
}

fn one_scale(s: &[f32]) -> NdResult<f32> {
    need("scale", s.len(), 1)?;
    ensure!(s[0].is_finite(), "scale is not finite ({})", s[0]);
    Ok(s[0])
}

/// y = x * scale[0] (`x` None: in place).
pub fn scale_fwd(x: Option<&[f32]>, scale: &[f32], y: &mut [f32]) -> NdResult<()> {
    let s = one_scale(scale)?;
    ensure!(!y.is_empty(), "scale of an empty tensor");
    match x {
        Some(x) => {
            need("y", y.len(), x.len())?;
            act::scale_fwd(x, s, y)
        }
        None => act::scale_fwd_inplace(y, s),
    }
    Ok(())
}

/// dx (+)= dy*scale (`dy` None: in place over dx, acc_dx must be 0); dscale (+)= sum(dy*x).
#[allow(clippy::too_many_arguments)]
pub fn scale_bwd(x: &[f32], dy: Option<&[f32]>, scale: &[f32], dx: &mut [f32], dscale: &mut [f32], acc_dx: i32, acc_ds: i32) -> NdResult<()> {
    let s = one_scale(scale)?;
    let (acc_dx, acc_ds) = (flag(acc_dx, "acc_dx")?, flag(acc_ds, "acc_dscale")?);
    ensure!(!x.is_empty(), "scale backward of an empty tensor");
    need("dx", dx.len(), x.len())?;
    need("dscale", dscale.len(), 1)?;
    let ds = match dy {
        Some(dy) => {
            need("dy", dy.len(), x.len())?;
            act::scale_bwd(x, dy, s, Some(dx), acc_dx)
        }
        None => {
            ensure!(!acc_dx, "in-place scale backward (dx == dy) cannot accumulate");
            act::scale_bwd_inplace(x, dx, s)
        }
    };
    dscale[0] = if acc_ds { dscale[0] + ds } else { ds };
    Ok(())
}

pub fn permute_of(p: &PermuteParams) -> NdResult<(Permute, bool)> {
    ensure!(p.n > 0 && p.c > 0 && p.s > 0, "permute sizes must be positive: n={} c={} s={}", p.n, p.c, p.s);
    ensure!(p.y_off >= 0, "permute offset must be >= 0, got {}", p.y_off);
    let row = p.s as usize * p.c as usize;
    ensure!(
        p.y_off as usize + row <= p.y_stride.max(0) as usize,
        "permute rows of {} values at offset {} do not fit the row stride {}",
        row, p.y_off, p.y_stride
    );
    let acc = flag(p.acc, "acc")?;
    Ok((Permute { n: p.n as usize, c: p.c as usize, s: p.s as usize, y_stride: p.y_stride as usize, y_off: p.y_off as usize }, acc))
}

pub fn permute_fwd(p: &PermuteParams, x: &[f32], y: &mut [f32]) -> NdResult<()> {
    let (q, acc) = permute_of(p)?;
    need("x", x.len(), q.n * q.c * q.s)?;
    need("y", y.len(), q.n * q.y_stride)?;
    act::permute_fwd(q, x, y, acc);
    Ok(())
}

pub fn permute_bwd(p: &PermuteParams, dy: &[f32], dx: &mut [f32]) -> NdResult<()> {
    let (q, acc) = permute_of(p)?;
    need("dy", dy.len(), q.n * q.y_stride)?;
    need("dx", dx.len(), q.n * q.c * q.s)?;
    act::permute_bwd(q, dy, dx, acc);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
/// SGD hyper-parameters checked (shared with the CUDA backend, src/cuda/engine.rs).
pub fn sgd_hyper(lr: f32, mu: f32, wd: f32, nesterov: i32) -> NdResult<Sgd> {
    let nesterov = flag(nesterov, "nesterov")?;
    ensure!(lr.is_finite() && lr >= 0.0, "learning rate must be finite and >= 0, got {lr}");
    ensure!(mu.is_finite() && (0.0..1.0).contains(&mu), "momentum must be in [0, 1), got {mu}");
    ensure!(wd.is_finite() && wd >= 0.0, "weight decay must be finite and >= 0, got {wd}");
    ensure!(!nesterov || mu > 0.0, "Nesterov momentum requires a momentum > 0");
    Ok(Sgd { lr, momentum: mu, weight_decay: wd, nesterov })
}

pub fn sgd_step(params: &mut [f32], grads: &[f32], momentum: &mut [f32], mask: &[u8], lr: f32, mu: f32, wd: f32, nesterov: i32) -> NdResult<()> {
    let h = sgd_hyper(lr, mu, wd, nesterov)?;
    ensure!(!params.is_empty(), "no parameters");
    need("grads", grads.len(), params.len())?;
    need("momentum", momentum.len(), params.len())?;
    need("mask", mask.len(), params.len())?;
    optim::sgd_step(h, params, grads, momentum, mask);
    Ok(())
}

pub fn average_update(avg: &mut [f32], params: &[f32], n_averaged: u64) -> NdResult<()> {
    ensure!(!params.is_empty(), "no parameters");
    need("avg", avg.len(), params.len())?;
    optim::average_update(avg, params, n_averaged);
    Ok(())
}
