//! C ABI shells of the device kernels the network runs (src/cuda/{conv,engine}.rs): every pointer is a device
//! address (u64) inside a live allocation of `backend` (0 = cuda, 1 = the CPU emulator), every call is
//! queued on `stream` (0 = the default stream) and returns at once; errors of the arguments come back here,
//! errors of a kernel at the next stream or device sync. Geometry travels as the same Int32Arrays the CPU
//! ops take (Conv3dParams, NormParams, PermuteParams).

use crate::abi::{out, slice};
use crate::cuda::{conv, engine, optim};
use crate::error::guard;
use crate::ffi::cuda::backend_of;
use crate::ops::conv::Kind;
use crate::ops::engine::{NormParams, PermuteParams};
use crate::error::{NdError, NdResult};

fn kind_of(k: i32) -> NdResult<Kind> {
    match k {
        0 => Ok(Kind::Conv),
        1 => Ok(Kind::ConvT),
        _ => Err(NdError::invalid(format!("conv kind must be 0 (conv) or 1 (convt), got {k}"))),
    }
}

/// [packed weight length in bf16 values, backward-weight workspace bytes] for a conv layer.
///
/// # Safety
/// `p` must hold `np` i32; `sizes` 2 u64.
#[no_mangle]
pub unsafe extern "C" fn nd_gpu_conv_sizes(kind: i32, p: *const i32, np: u64, sizes: *mut u64, ns: u64) -> i32 {
    guard("nd_gpu_conv_sizes", || {
        let (k, p) = (kind_of(kind)?, slice(p, np, "params")?);
        let s = crate::abi::slice_mut(sizes, ns, "sizes")?;
        crate::ensure!(s.len() == 2, "sizes needs 2 u64, got {}", s.len());
        s[0] = conv::packed_len(k, p)? as u64;
        s[1] = conv::wgrad_workspace_bytes(k, p)? as u64;
        Ok(())
    })
}

/// Pack the fp32 master weight `w` into the bf16 copies the forward (`w_fwd`) and backward-data (`w_bwd`)
/// kernels read (run after every change of the weights).
///
/// # Safety
/// `p` must hold `np` i32.
#[no_mangle]
pub unsafe extern "C" fn nd_gpu_conv_pack(backend: i32, kind: i32, p: *const i32, np: u64, w: u64, w_fwd: u64, w_bwd: u64, stream: u64) -> i32 {
    guard("nd_gpu_conv_pack", || conv::pack_weights(backend_of(backend)?, kind_of(kind)?, slice(p, np, "params")?, w, w_fwd, w_bwd, stream))
}

/// y (=|+= by the params' accumulate flag) conv(x) + bias (bias 0: none); x, y bf16 NDHWC.
///
/// # Safety
/// `p` must hold `np` i32.
#[no_mangle]
pub unsafe extern "C" fn nd_gpu_conv_fwd(backend: i32, kind: i32, p: *const i32, np: u64, x: u64, w_fwd: u64, bias: u64, y: u64, stream: u64) -> i32 {
    guard("nd_gpu_conv_fwd", || conv::fwd(backend_of(backend)?, kind_of(kind)?, slice(p, np, "params")?, x, w_fwd, bias, y, stream))
}

/// dx (=|+=) conv'(dy); dy, dx bf16 NDHWC.
///
/// # Safety
/// `p` must hold `np` i32.
#[no_mangle]
pub unsafe extern "C" fn nd_gpu_conv_bwd_data(backend: i32, kind: i32, p: *const i32, np: u64, dy: u64, w_bwd: u64, dx: u64, stream: u64) -> i32 {
    guard("nd_gpu_conv_bwd_data", || conv::bwd_data(backend_of(backend)?, kind_of(kind)?, slice(p, np, "params")?, dy, w_bwd, dx, stream))
}

/// dw (fp32, PyTorch layout) and db (0: none) (=|+=) from x and dy; `ws` holds the workspace bytes of
/// nd_gpu_conv_sizes.
///
/// # Safety
/// `p` must hold `np` i32.
#[no_mangle]
pub unsafe extern "C" fn nd_gpu_conv_bwd_weight(backend: i32, kind: i32, p: *const i32, np: u64, x: u64, dy: u64, dw: u64, db: u64, ws: u64, stream: u64) -> i32 {
    guard("nd_gpu_conv_bwd_weight", || conv::bwd_weight(backend_of(backend)?, kind_of(kind)?, slice(p, np, "params")?, x, dy, dw, db, ws, stream))
}

/// Workspace bytes of the norm kernels for this geometry.
///
/// # Safety
/// `p` one NormParams; `bytes` one u64.
#[no_mangle]
pub unsafe extern "C" fn nd_gpu_norm_ws_bytes(p: *const NormParams, bytes: *mut u64) -> i32 {
    guard("nd_gpu_norm_ws_bytes", || {
        let p = out(p as *mut NormParams, "params")?;
        *out(bytes, "bytes")? = engine::norm_ws_bytes(p)?;
        Ok(())
    })
}

/// y = act(norm(x)*gamma + beta) over bf16 NDHWC, saving mean/rstd (fp32 [N*G]).
///
/// # Safety
/// `p` one NormParams.
#[no_mangle]
pub unsafe extern "C" fn nd_gpu_norm_fwd(
    backend: i32, p: *const NormParams, x: u64, gamma: u64, beta: u64, y: u64, mean: u64, rstd: u64, ws: u64, eps: f32,
    slope: f32, stream: u64,
) -> i32 {
    guard("nd_gpu_norm_fwd", || {
        let p = out(p as *mut NormParams, "params")?;
        engine::norm_fwd(backend_of(backend)?, p, eps, slope, x, gamma, beta, y, mean, rstd, ws, stream)
    })
}

/// Backward of nd_gpu_norm_fwd from its input x (dx may be x: in place).
///
/// # Safety
/// `p` one NormParams.
#[no_mangle]
pub unsafe extern "C" fn nd_gpu_norm_bwd(
    backend: i32, p: *const NormParams, x: u64, dy: u64, gamma: u64, beta: u64, mean: u64, rstd: u64, dx: u64,
    dgamma: u64, dbeta: u64, ws: u64, slope: f32, stream: u64,
) -> i32 {
    guard("nd_gpu_norm_bwd", || {
        let p = out(p as *mut NormParams, "params")?;
        engine::norm_bwd(backend_of(backend)?, p, slope, x, dy, gamma, beta, mean, rstd, dx, dgamma, dbeta, ws, stream)
    })
}

/// Head permute forward: bf16 [n][s][c] -> fp32 rows (PermuteParams).
///
/// # Safety
/// `p` one PermuteParams.
#[no_mangle]
pub unsafe extern "C" fn nd_gpu_permute_fwd(backend: i32, p: *const PermuteParams, x: u64, y: u64, stream: u64) -> i32 {
    guard("nd_gpu_permute_fwd", || engine::permute_fwd(backend_of(backend)?, out(p as *mut PermuteParams, "params")?, x, y, stream))
}

/// Head permute backward: fp32 rows -> bf16 [n][s][c].
///
/// # Safety
/// `p` one PermuteParams.
#[no_mangle]
pub unsafe extern "C" fn nd_gpu_permute_bwd(backend: i32, p: *const PermuteParams, dy: u64, dx: u64, stream: u64) -> i32 {
    guard("nd_gpu_permute_bwd", || engine::permute_bwd(backend_of(backend)?, out(p as *mut PermuteParams, "params")?, dy, dx, stream))
}

/// y = x * scale over n fp32 (elem 0) or bf16 (elem 1) values; scale one fp32 on the device.
#[no_mangle]
pub extern "C" fn nd_gpu_scale_fwd(backend: i32, elem: i32, x: u64, scale: u64, y: u64, n: u64, stream: u64) -> i32 {
    guard("nd_gpu_scale_fwd", || {
        let e = match elem {
            0 => engine::Elem::F32,
            1 => engine::Elem::Bf16,
            _ => return Err(NdError::invalid(format!("elem must be 0 (f32) or 1 (bf16), got {elem}"))),
        };
        engine::scale_fwd(backend_of(backend)?, e, x, scale, y, n as usize, stream)
    })
}

/// Backward of y = x * scale over n bf16: dx (+)= dy*scale, dscale (+)= sum(dy*x); `ws` of
/// nd_gpu_scale_ws_bytes bytes.
#[no_mangle]
pub extern "C" fn nd_gpu_scale_bwd(
    backend: i32, x: u64, dy: u64, scale: u64, dx: u64, dscale: u64, n: u64, acc_dx: i32, acc_ds: i32, ws: u64, stream: u64,
) -> i32 {
    guard("nd_gpu_scale_bwd", || engine::scale_bwd(backend_of(backend)?, x, dy, scale, dx, dscale, n as usize, acc_dx, acc_ds, ws, stream))
}

#[no_mangle]
pub extern "C" fn nd_gpu_scale_ws_bytes() -> u64 {
    engine::SCALE_WS_BYTES
}

/// One torch.optim.SGD step over n fp32 parameters on the device (mask: n bytes, 1 = weight decay).
#[no_mangle]
pub extern "C" fn nd_gpu_sgd_step(
    backend: i32, params: u64, grads: u64, momentum: u64, mask: u64, n: u64, lr: f32, mu: f32, wd: f32, nesterov: i32,
    stream: u64,
) -> i32 {
    guard("nd_gpu_sgd_step", || optim::sgd_step(backend_of(backend)?, params, grads, momentum, mask, n as usize, lr, mu, wd, nesterov, stream))
}

/// SWA: avg = avg + (params - avg) / (n_averaged + 1) over n fp32.
#[no_mangle]
pub extern "C" fn nd_gpu_average_update(backend: i32, avg: u64, params: u64, n: u64, n_averaged: u64, stream: u64) -> i32 {
    guard("nd_gpu_average_update", || optim::average_update(backend_of(backend)?, avg, params, n as usize, n_averaged, stream))
}

/// NCDHW fp32 -> NDHWC bf16 (n images, c channels, s positions).
#[no_mangle]
pub extern "C" fn nd_gpu_to_ndhwc(backend: i32, x: u64, y: u64, n: u64, c: u64, s: u64, stream: u64) -> i32 {
    guard("nd_gpu_to_ndhwc", || engine::ncs_to_nsc(backend_of(backend)?, x, y, n as usize, c as usize, s as usize, stream))
}

/// NDHWC bf16 -> NCDHW fp32.
#[no_mangle]
pub extern "C" fn nd_gpu_to_ncdhw(backend: i32, x: u64, y: u64, n: u64, c: u64, s: u64, stream: u64) -> i32 {
    guard("nd_gpu_to_ncdhw", || engine::nsc_to_ncs(backend_of(backend)?, x, y, n as usize, c as usize, s as usize, stream))
}

/// Fill n words of `word` bytes (1, 2 or 4) at `p` with the low bits of `bits`, on the stream.
#[no_mangle]
pub extern "C" fn nd_gpu_fill(backend: i32, p: u64, n: u64, word: u32, bits: u32, stream: u64) -> i32 {
    guard("nd_gpu_fill", || engine::fill(backend_of(backend)?, p, n as usize, word as usize, bits, stream))
}
