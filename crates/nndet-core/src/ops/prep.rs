//! Argument checks and dispatch for the preprocessing family: resampling (cpu/resample.rs) and the
//! crop mask (cpu/crop.rs). Shapes travel as i32 arrays; every volume is [d0, d1, d2], C-order.

use crate::cpu::{crop, labels, resample};
use crate::error::{NdError, NdResult, Status};

fn shape3(v: &[i32], what: &str) -> NdResult<[usize; 3]> {
    if v.len() != 3 || v.iter().any(|&d| d <= 0) {
        return Err(NdError::invalid(format!("{what} must be 3 positive sizes, got {v:?}")));
    }
    Ok([v[0] as usize, v[1] as usize, v[2] as usize])
}

fn check_len(len: usize, s: [usize; 3], what: &str) -> NdResult<()> {
    let need = s[0] * s[1] * s[2];
    if len != need {
        return Err(NdError::new(Status::BufferSize, format!("{what} has {len} elements but shape {s:?} needs {need}")));
    }
    Ok(())
}

/// Flag bits of `resample3d`.
pub const RESAMPLE_CLIP: i32 = 1;
pub const RESAMPLE_PLAIN: i32 = 2;

/// The (input, output) shapes of a resampling call, `shapes` = [in0, in1, in2, out0, out1, out2], checked
/// against the source and destination lengths.
fn in_out_shapes(shapes: &[i32], src_len: usize, dst_len: usize) -> NdResult<([usize; 3], [usize; 3])> {
    if shapes.len() != 6 {
        return Err(NdError::invalid(format!("shapes must hold 6 sizes (in, out), got {}", shapes.len())));
    }
    let ins = shape3(&shapes[..3], "input shape")?;
    let outs = shape3(&shapes[3..], "output shape")?;
    check_len(src_len, ins, "src")?;
    check_len(dst_len, outs, "dst")?;
    Ok((ins, outs))
}

/// Resample one f32 volume; `shapes` = [in0, in1, in2, out0, out1, out2]; order 0, 1 or 3.
pub fn resample3d(src: &[f32], dst: &mut [f32], shapes: &[i32], order: i32, flags: i32) -> NdResult<()> {
    let (ins, outs) = in_out_shapes(shapes, src.len(), dst.len())?;
    let ord = resample::Order::from_code(order).ok_or_else(|| NdError::invalid(format!("order must be 0, 1 or 3, got {order}")))?;
    let clip = flags & RESAMPLE_CLIP != 0;
    if flags & RESAMPLE_PLAIN != 0 {
        resample::resample_f32_plain(src, ins, dst, outs, ord, clip);
    } else {
        resample::resample_f32(src, ins, dst, outs, ord, clip);
    }
    Ok(())
}

/// Nearest-neighbour resampling of an i32 label volume; `shapes` as in `resample3d`.
pub fn resample3d_labels(src: &[i32], dst: &mut [i32], shapes: &[i32]) -> NdResult<()> {
    let (ins, outs) = in_out_shapes(shapes, src.len(), dst.len())?;
    resample::resample_labels(src, ins, dst, outs);
    Ok(())
}

/// Hole-filled non-zero mask of data [C, d0, d1, d2] into `mask` and its half-open bounding box into
/// `bbox` (6 values: lo0, hi0, lo1, hi1, lo2, hi2; all 0 when the mask is empty).
pub fn nonzero_mask(data: &[f32], channels: i32, dims: &[i32], mask: &mut [u8], bbox: &mut [i32]) -> NdResult<()> {
    let d = shape3(dims, "dims")?;
    if channels <= 0 {
        return Err(NdError::invalid(format!("channels must be positive, got {channels}")));
    }
    let n = d[0] * d[1] * d[2];
    check_len(mask.len(), d, "mask")?;
    if data.len() != n * channels as usize {
        return Err(NdError::new(Status::BufferSize, format!("data has {} elements but {channels} channels of {d:?} need {}", data.len(), n * channels as usize)));
    }
    if bbox.len() != 6 {
        return Err(NdError::new(Status::BufferSize, format!("bbox needs 6 i32 values, got {}", bbox.len())));
    }
    crop::nonzero_mask(data, channels as usize, mask);
    crop::fill_holes(mask, d);
    let b = crop::bbox(mask, d).unwrap_or([0; 6]);
    for (o, v) in bbox.iter_mut().zip(b) {
        *o = v as i32;
    }
    Ok(())
}

/// Extents of every instance id of a label volume: `max_id` receives the largest id M; when `out` holds
/// (M + 1) · 7 values they are filled (labels::label_extents), otherwise only `max_id` is set.
pub fn label_extents(seg: &[i32], dims: &[i32], out: &mut [f64], max_id: &mut i32) -> NdResult<()> {
    let d = shape3(dims, "dims")?;
    check_len(seg.len(), d, "seg")?;
    let m = labels::max_label(seg);
    *max_id = m;
    if out.len() == (m as usize + 1) * labels::EXTENT_LEN {
        labels::label_extents(seg, d, m as usize, out);
    }
    Ok(())
}

/// Round a float label map to i32.
pub fn round_labels(src: &[f32], dst: &mut [i32]) -> NdResult<()> {
    if src.len() != dst.len() {
        return Err(NdError::new(Status::BufferSize, format!("src has {} elements, dst {}", src.len(), dst.len())));
    }
    labels::round_to_i32(src, dst);
    Ok(())
}
