//! C ABI shells of the preprocessing family (ops/prep.rs): resampling and the crop mask.

use crate::abi::{out, slice, slice_mut};
use crate::error::guard;
use crate::ops;

/// Resample an f32 volume. `shapes` = 6 i32 (in d0..d2, out d0..d2); `order` 0|1|3; `flags` bit 0 = clip
/// to the input range, bit 1 = plain reference path.
///
/// # Safety
/// Pointers must hold the stated number of elements.
#[no_mangle]
pub unsafe extern "C" fn nd_resample3d(src: *const f32, src_n: u64, dst: *mut f32, dst_n: u64, shapes: *const i32, order: i32, flags: i32) -> i32 {
    guard("nd_resample3d", || {
        ops::prep::resample3d(slice(src, src_n, "src")?, slice_mut(dst, dst_n, "dst")?, slice(shapes, 6, "shapes")?, order, flags)
    })
}

/// Nearest-neighbour resampling of an i32 label volume; `shapes` as in nd_resample3d.
///
/// # Safety
/// Pointers must hold the stated number of elements.
#[no_mangle]
pub unsafe extern "C" fn nd_resample3d_labels(src: *const i32, src_n: u64, dst: *mut i32, dst_n: u64, shapes: *const i32) -> i32 {
    guard("nd_resample3d_labels", || {
        ops::prep::resample3d_labels(slice(src, src_n, "src")?, slice_mut(dst, dst_n, "dst")?, slice(shapes, 6, "shapes")?)
    })
}

/// Hole-filled non-zero mask of data [C, d0, d1, d2] (`dims` = 3 i32) and its bounding box (6 i32).
///
/// # Safety
/// Pointers must hold the stated number of elements; `dims` 3 and `bbox` 6.
#[no_mangle]
pub unsafe extern "C" fn nd_nonzero_mask(data: *const f32, data_n: u64, channels: i32, dims: *const i32, mask: *mut u8, mask_n: u64, bbox: *mut i32) -> i32 {
    guard("nd_nonzero_mask", || {
        ops::prep::nonzero_mask(slice(data, data_n, "data")?, channels, slice(dims, 3, "dims")?, slice_mut(mask, mask_n, "mask")?, slice_mut(bbox, 6, "bbox")?)
    })
}

/// Instance extents of an i32 label volume (`dims` 3 i32): `*max_id` = largest id M; `out` (`out_n` f64)
/// is filled with (M + 1) rows of [lo0, hi0, lo1, hi1, lo2, hi2, count] when out_n = (M + 1) · 7.
///
/// # Safety
/// Pointers must hold the stated number of elements; `dims` 3, `max_id` one i32.
#[no_mangle]
pub unsafe extern "C" fn nd_label_extents(seg: *const i32, seg_n: u64, dims: *const i32, out_v: *mut f64, out_n: u64, max_id: *mut i32) -> i32 {
    guard("nd_label_extents", || {
        ops::prep::label_extents(slice(seg, seg_n, "seg")?, slice(dims, 3, "dims")?, slice_mut(out_v, out_n, "out")?, out(max_id, "max_id")?)
    })
}

/// dst[i] = round(src[i]) as i32 (label maps read as float).
///
/// # Safety
/// `src` and `dst` must hold `n` elements each.
#[no_mangle]
pub unsafe extern "C" fn nd_round_labels(src: *const f32, dst: *mut i32, n: u64) -> i32 {
    guard("nd_round_labels", || ops::prep::round_labels(slice(src, n, "src")?, slice_mut(dst, n, "dst")?))
}
