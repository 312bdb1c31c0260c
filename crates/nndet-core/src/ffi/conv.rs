//! C ABI shells of the conv family: Conv3d and ConvTranspose3d (workspace size, fwd, bwd-data,
//! bwd-weight), and the peak-FMA probe the conv benchmark divides by. Params are an Int32Array(20)
//! (ops::conv::Conv3dParams); buffer lengths are f32 element counts, the workspace length is in bytes.

use crate::abi::{out, slice, slice_mut};
use crate::error::guard;
use crate::ops::conv::{self, Kind};

/// # Safety
/// `params` must point to `n_params` i32, `out_bytes` to one u64.
unsafe fn workspace(op: &str, kind: Kind, fwd_only: bool, params: *const i32, n_params: u64, out_bytes: *mut u64) -> i32 {
    guard(op, || {
        let p = slice(params, n_params, "params")?;
        *out(out_bytes, "out_bytes")? = if fwd_only { conv::workspace_fwd(kind, p)? } else { conv::workspace(kind, p)? };
        Ok(())
    })
}

/// # Safety
/// Every pointer must point to its stated number of elements (bytes for `ws`).
#[allow(clippy::too_many_arguments)]
unsafe fn fwd(
    op: &str, kind: Kind, params: *const i32, n_params: u64, x: *const f32, x_len: u64, w: *const f32,
    w_len: u64, bias: *const f32, bias_len: u64, y: *mut f32, y_len: u64, ws: *mut u8, ws_len: u64,
) -> i32 {
    guard(op, || {
        let p = slice(params, n_params, "params")?;
        let (x, w, b) = (slice(x, x_len, "x")?, slice(w, w_len, "w")?, slice(bias, bias_len, "bias")?);
        conv::fwd(kind, p, x, w, b, slice_mut(y, y_len, "y")?, slice_mut(ws, ws_len, "ws")?)
    })
}

/// # Safety
/// Every pointer must point to its stated number of elements (bytes for `ws`).
#[allow(clippy::too_many_arguments)]
unsafe fn bwd_data(
    op: &str, kind: Kind, params: *const i32, n_params: u64, dy: *const f32, dy_len: u64, w: *const f32,
    w_len: u64, dx: *mut f32, dx_len: u64, ws: *mut u8, ws_len: u64,
) -> i32 {
    guard(op, || {
        let p = slice(params, n_params, "params")?;
        let (dy, w) = (slice(dy, dy_len, "dy")?, slice(w, w_len, "w")?);
        conv::bwd_data(kind, p, dy, w, slice_mut(dx, dx_len, "dx")?, slice_mut(ws, ws_len, "ws")?)
    })
}

/// # Safety
/// Every pointer must point to its stated number of elements (bytes for `ws`).
#[allow(clippy::too_many_arguments)]
unsafe fn bwd_weight(
    op: &str, kind: Kind, params: *const i32, n_params: u64, x: *const f32, x_len: u64, dy: *const f32,
    dy_len: u64, dw: *mut f32, dw_len: u64, db: *mut f32, db_len: u64, ws: *mut u8, ws_len: u64,
) -> i32 {
    guard(op, || {
        let p = slice(params, n_params, "params")?;
        let (x, dy) = (slice(x, x_len, "x")?, slice(dy, dy_len, "dy")?);
        let (dw, db) = (slice_mut(dw, dw_len, "dw")?, slice_mut(db, db_len, "db")?);
        conv::bwd_weight(kind, p, x, dy, dw, db, slice_mut(ws, ws_len, "ws")?)
    })
}

macro_rules! conv_shells {
    ($kind:expr, $ws:ident, $wsf:ident, $fwd:ident, $bd:ident, $bw:ident) => {
        /// Workspace bytes the three ops need for these params.
        ///
        /// # Safety
        /// `params` must point to `n_params` i32, `out_bytes` to one u64.
        #[no_mangle]
        pub unsafe extern "C" fn $ws(params: *const i32, n_params: u64, out_bytes: *mut u64) -> i32 {
            workspace(stringify!($ws), $kind, false, params, n_params, out_bytes)
        }

        /// Workspace bytes the forward op alone needs (inference).
        ///
        /// # Safety
        /// `params` must point to `n_params` i32, `out_bytes` to one u64.
        #[no_mangle]
        pub unsafe extern "C" fn $wsf(params: *const i32, n_params: u64, out_bytes: *mut u64) -> i32 {
            workspace(stringify!($wsf), $kind, true, params, n_params, out_bytes)
        }

        /// y (=|+=) op(x, w) + bias. `bias` may be null when has_bias = 0.
        ///
        /// # Safety
        /// Every pointer must point to its stated number of elements (bytes for `ws`).
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $fwd(
            params: *const i32, n_params: u64, x: *const f32, x_len: u64, w: *const f32, w_len: u64,
            bias: *const f32, bias_len: u64, y: *mut f32, y_len: u64, ws: *mut u8, ws_len: u64,
        ) -> i32 {
            fwd(stringify!($fwd), $kind, params, n_params, x, x_len, w, w_len, bias, bias_len, y, y_len, ws, ws_len)
        }

        /// dx (=|+=) gradient with respect to the input.
        ///
        /// # Safety
        /// Every pointer must point to its stated number of elements (bytes for `ws`).
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $bd(
            params: *const i32, n_params: u64, dy: *const f32, dy_len: u64, w: *const f32, w_len: u64,
            dx: *mut f32, dx_len: u64, ws: *mut u8, ws_len: u64,
        ) -> i32 {
            bwd_data(stringify!($bd), $kind, params, n_params, dy, dy_len, w, w_len, dx, dx_len, ws, ws_len)
        }

        /// dw, db (=|+=) gradients with respect to weight and bias. `db` may be null when has_bias = 0.
        ///
        /// # Safety
        /// Every pointer must point to its stated number of elements (bytes for `ws`).
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $bw(
            params: *const i32, n_params: u64, x: *const f32, x_len: u64, dy: *const f32, dy_len: u64,
            dw: *mut f32, dw_len: u64, db: *mut f32, db_len: u64, ws: *mut u8, ws_len: u64,
        ) -> i32 {
            bwd_weight(stringify!($bw), $kind, params, n_params, x, x_len, dy, dy_len, dw, dw_len, db, db_len, ws, ws_len)
        }
    };
}

conv_shells!(Kind::Conv, nd_conv3d_workspace, nd_conv3d_workspace_fwd, nd_conv3d_fwd, nd_conv3d_bwd_data, nd_conv3d_bwd_weight);
conv_shells!(Kind::ConvT, nd_convt3d_workspace, nd_convt3d_workspace_fwd, nd_convt3d_fwd, nd_convt3d_bwd_data, nd_convt3d_bwd_weight);

/// Measure the peak f32 FMA rate: a register-only FMA loop on every pool thread for `seconds`.
///
/// # Safety
/// `out_gflops` must point to one f64.
#[no_mangle]
pub unsafe extern "C" fn nd_bench_peak_fma(seconds: f64, out_gflops: *mut f64) -> i32 {
    guard("nd_bench_peak_fma", || {
        crate::ensure!(seconds > 0.0 && seconds <= 60.0, "seconds must be in (0, 60], got {seconds}");
        *out(out_gflops, "out_gflops")? = crate::cpu::conv3d::peak::peak_gflops(seconds);
        Ok(())
    })
}
