//! The non-zero mask nnDetection crops to (nnU-Net 1.7.1 `create_nonzero_mask`): voxels where any channel
//! of data [C, d0, d1, d2] is non-zero, then 3D hole filling as `scipy.ndimage.binary_fill_holes` with its
//! default structure (6-connectivity): background voxels not connected to the volume's border become 1.
//! Also the mask's bounding box `[lo, hi)` per axis (`get_bbox_from_mask`, half-open).

use crate::pool::pool;

/// mask[v] = 1 where any of the `c` channels (each `n` voxels, channel-major) is non-zero (NaN counts as
/// non-zero, as `x != 0` does in NumPy).
pub fn nonzero_mask(data: &[f32], c: usize, mask: &mut [u8]) {
    let n = mask.len();
    let addr = mask.as_mut_ptr() as usize;
    pool().parallel_chunks(n, 1 << 16, |s, e| {
        // SAFETY: disjoint chunks of mask.
        let m = unsafe { std::slice::from_raw_parts_mut((addr as *mut u8).add(s), e - s) };
        for (k, o) in m.iter_mut().enumerate() {
            let v = s + k;
            *o = (0..c).any(|ch| data[ch * n + v] != 0.0) as u8;
        }
    });
}

/// Fill holes in place: 0-voxels not 6-connected to the border become 1.
pub fn fill_holes(mask: &mut [u8], d: [usize; 3]) {
    const OUTSIDE: u8 = 2;
    let (s0, s1) = (d[1] * d[2], d[2]);
    let mut stack: Vec<u32> = Vec::new();
    let seed = |mask: &mut [u8], i: usize, stack: &mut Vec<u32>| {
        if mask[i] == 0 {
            mask[i] = OUTSIDE;
            stack.push(i as u32);
        }
    };
    for a in 0..d[0] {
        for b in 0..d[1] {
            for c in 0..d[2] {
                if a == 0 || b == 0 || c == 0 || a + 1 == d[0] || b + 1 == d[1] || c + 1 == d[2] {
                    seed(mask, a * s0 + b * s1 + c, &mut stack);
                } else if c == 1 && d[2] > 2 {
                    // Jump over the interior of the row to its last voxel.
                    seed(mask, a * s0 + b * s1 + d[2] - 1, &mut stack);
                    break;
                }
            }
        }
    }
    while let Some(i) = stack.pop() {
        let i = i as usize;
        let (a, r) = (i / s0, i % s0);
        let (b, c) = (r / s1, r % s1);
        if a > 0 { seed(mask, i - s0, &mut stack); }
        if a + 1 < d[0] { seed(mask, i + s0, &mut stack); }
        if b > 0 { seed(mask, i - s1, &mut stack); }
        if b + 1 < d[1] { seed(mask, i + s1, &mut stack); }
        if c > 0 { seed(mask, i - 1, &mut stack); }
        if c + 1 < d[2] { seed(mask, i + 1, &mut stack); }
    }
    let addr = mask.as_mut_ptr() as usize;
    pool().parallel_chunks(mask.len(), 1 << 16, |s, e| {
        // SAFETY: disjoint chunks of mask.
        let m = unsafe { std::slice::from_raw_parts_mut((addr as *mut u8).add(s), e - s) };
        for v in m.iter_mut() {
            *v = (*v != OUTSIDE) as u8;
        }
    });
}

/// Bounding box [lo0, hi0, lo1, hi1, lo2, hi2] (half-open) of the non-zero voxels, or None if empty.
pub fn bbox(mask: &[u8], d: [usize; 3]) -> Option<[usize; 6]> {
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    for a in 0..d[0] {
        for b in 0..d[1] {
            let row = &mask[(a * d[1] + b) * d[2]..(a * d[1] + b + 1) * d[2]];
            let (Some(first), Some(last)) = (row.iter().position(|&v| v != 0), row.iter().rposition(|&v| v != 0)) else {
                continue;
            };
            lo = [lo[0].min(a), lo[1].min(b), lo[2].min(first)];
            hi = [hi[0].max(a + 1), hi[1].max(b + 1), hi[2].max(last + 1)];
        }
    }
    (lo[0] != usize::MAX).then_some([lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_enclosed_cavity_but_not_open_tube() {
        let d = [7, 7, 7];
        let mut m = vec![0u8; 343];
        let at = |a: usize, b: usize, c: usize| (a * 7 + b) * 7 + c;
        // A closed hollow cube 1..=5 with cavity 2..=4, plus a tube open along axis 0 would leak.
        for a in 1..6 {
            for b in 1..6 {
                for c in 1..6 {
                    let wall = a == 1 || a == 5 || b == 1 || b == 5 || c == 1 || c == 5;
                    m[at(a, b, c)] = wall as u8;
                }
            }
        }
        let mut closed = m.clone();
        fill_holes(&mut closed, d);
        assert_eq!(closed[at(3, 3, 3)], 1);
        assert_eq!(closed[at(0, 0, 0)], 0);
        assert_eq!(closed.iter().filter(|&&v| v == 1).count(), 125);
        // Open the end caps along axis 0: the cavity is connected to the border through them.
        for b in 2..5 {
            for c in 2..5 {
                m[at(1, b, c)] = 0;
                m[at(5, b, c)] = 0;
            }
        }
        let mut open = m.clone();
        fill_holes(&mut open, d);
        assert_eq!(open, m);
        assert_eq!(bbox(&open, d), Some([1, 6, 1, 6, 1, 6]));
        assert_eq!(bbox(&vec![0u8; 343], d), None);
    }

    #[test]
    fn nonzero_over_channels() {
        let data = [0.0f32, 1.0, 0.0, 0.0, /* ch1 */ 0.0, 0.0, -2.0, 0.0];
        let mut m = [9u8; 4];
        nonzero_mask(&data, 2, &mut m);
        assert_eq!(m, [0, 1, 1, 0]);
    }
}
