//! One function per op: the argument checks every backend shares, then dispatch to the CPU kernel
//! (or the CUDA launcher, for ops that have one). lib.rs only converts raw pointers and calls these.

use crate::cpu::convert::{self, Stats};
use crate::dtype::DType;
use crate::error::{NdError, NdResult, Status};

/// Number of f64 values `stats_f32` writes.
pub const STATS_LEN: usize = 7;

/// Raw bytes of `dtype` (optionally big-endian) -> f32 with `x*slope + inter`.
pub fn convert_f32(src: &[u8], dtype: i32, big_endian: bool, slope: f64, inter: f64, dst: &mut [f32]) -> NdResult<()> {
    let dt = DType::from_code(dtype).ok_or_else(|| NdError::invalid(format!("unknown dtype code {dtype}")))?;
    let need = dst.len().checked_mul(dt.size()).ok_or_else(|| NdError::invalid("length overflows"))?;
    if src.len() != need {
        return Err(NdError::new(
            Status::BufferSize,
            format!(
                "source has {} bytes but {} elements of {:?} need {} bytes",
                src.len(),
                dst.len(),
                dt,
                need
            ),
        ));
    }
    if !slope.is_finite() || !inter.is_finite() {
        return Err(NdError::invalid(format!("slope {slope} and intercept {inter} must be finite")));
    }
    convert::convert_to_f32(src, dt, big_endian, slope, inter, dst);
    Ok(())
}

/// [min, max, sum, sumsq, n_finite, n_nan, n_inf] of an f32 buffer (min/max are +inf/-inf when nothing is finite).
pub fn stats_f32(x: &[f32], out: &mut [f64]) -> NdResult<()> {
    if out.len() != STATS_LEN {
        return Err(NdError::new(Status::BufferSize, format!("stats output needs {STATS_LEN} f64 values, got {}", out.len())));
    }
    let Stats { min, max, sum, sumsq, finite, nan, inf } = convert::stats_f32(x);
    out.copy_from_slice(&[min, max, sum, sumsq, finite as f64, nan as f64, inf as f64]);
    Ok(())
}
