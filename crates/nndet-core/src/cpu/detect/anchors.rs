//! Anchors and the box coder.
//!
//! Anchors mirror nnDetection `AnchorGenerator3DS` (nndet/core/boxes/anchors.py): per level the cell anchors
//! are `product(width, height, depth)` (width slowest) as `(-w/2, -h/2, w/2, h/2, -d/2, d/2)`; the grid
//! shifts are `i * stride` per axis (no half-stride offset); the image's anchors are level-major, then
//! position (axis 0 slowest, axis 2 fastest), then cell anchor. Output [A, 6] f32, computed as torch does
//! (`size / 2` in f32, `shift + cell` in f32), so values are bit-identical.
//!
//! The coder mirrors `BoxCoderND` (nndet/core/boxes/coder.py) with per-axis weights
//! `(wx, wy, ww, wh, wz, wd)`: encode `dx = wx*(g_cx - a_cx)/a_w`, `dw = ww*log(g_w/a_w)`, centres
//! `x1 + 0.5*w`; decode clamps `dw/ww` to at most `clip` (log(1000/16) by default, no lower clamp), then
//! box = centre ± 0.5*exp(d)*size. Deltas are ordered `(dx, dy, dw, dh, dz, dd)`.
use crate::pool::pool;

/// nnDetection's default decode clip, `log(1000 / 16)` as f32.
pub fn default_clip() -> f32 {
    (1000.0f64 / 16.0).ln() as f32
}

/// One level of the anchor generator: sizes per axis and the feature-map grid.
#[derive(Clone, Debug)]
pub struct Level {
    pub widths: Vec<f32>,
    pub heights: Vec<f32>,
    pub depths: Vec<f32>,
    pub fmap: [usize; 3],
    pub stride: [usize; 3],
}

impl Level {
    pub fn per_location(&self) -> usize {
        self.widths.len() * self.heights.len() * self.depths.len()
    }
    pub fn count(&self) -> usize {
        self.per_location() * self.fmap[0] * self.fmap[1] * self.fmap[2]
    }
    /// The cell anchors of one position, [per_location, 6].
    pub fn cell(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.per_location() * 6);
        for &w in &self.widths {
            for &h in &self.heights {
                for &d in &self.depths {
                    let (w2, h2, d2) = (w / 2.0, h / 2.0, d / 2.0);
                    out.extend_from_slice(&[-w2, -h2, w2, h2, -d2, d2]);
                }
            }
        }
        out
    }
}

/// Fill `out` [sum of level counts, 6] with the anchors of all levels.
pub fn generate(levels: &[Level], out: &mut [f32]) {
    let mut off = 0;
    for lv in levels {
        let cell = lv.cell();
        let per = lv.per_location();
        let [_, f1, f2] = lv.fmap;
        let n_pos = lv.fmap[0] * f1 * f2;
        let dst = &mut out[off * 6..(off + lv.count()) * 6];
        let addr = dst.as_mut_ptr() as usize;
        pool().parallel_chunks(n_pos, 4096, |s, e| {
            // SAFETY: disjoint position ranges of this level's rows.
            let o = unsafe { std::slice::from_raw_parts_mut((addr as *mut f32).add(s * per * 6), (e - s) * per * 6) };
            for p in s..e {
                let (ix, iy, iz) = (p / (f1 * f2), (p / f2) % f1, p % f2);
                let sx = (ix * lv.stride[0]) as f32;
                let sy = (iy * lv.stride[1]) as f32;
                let sz = (iz * lv.stride[2]) as f32;
                let shift = [sx, sy, sx, sy, sz, sz];
                for c in 0..per {
                    let row = &mut o[((p - s) * per + c) * 6..((p - s) * per + c) * 6 + 6];
                    for k in 0..6 {
                        row[k] = shift[k] + cell[c * 6 + k];
                    }
                }
            }
        });
        off += lv.count();
    }
}

/// The anchors of `levels` computed on demand, bit-identical to `generate` (same f32 operations), so
/// matchers can read a 2·10^6-anchor set without a 48 MB buffer.
pub struct Grid {
    levels: Vec<Level>,
    cells: Vec<Vec<f32>>,
    starts: Vec<usize>,
    total: usize,
}

impl Grid {
    pub fn new(levels: &[Level]) -> Grid {
        let mut starts = Vec::with_capacity(levels.len());
        let mut total = 0;
        for l in levels {
            starts.push(total);
            total += l.count();
        }
        Grid { levels: levels.to_vec(), cells: levels.iter().map(|l| l.cell()).collect(), starts, total }
    }
    pub fn len(&self) -> usize {
        self.total
    }
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
    pub fn per_level(&self) -> Vec<usize> {
        self.levels.iter().map(|l| l.count()).collect()
    }
    pub fn levels(&self) -> &[Level] {
        &self.levels
    }

    /// True when every f32 operation that makes an anchor of level `l` and its centre is exact, so all cell
    /// anchors of a position have the centre `i * stride` exactly: the cell coordinates are symmetric
    /// multiples of a power of two q and every sum stays below 2^24 q.
    pub fn centres_exact(&self, l: usize) -> bool {
        let lv = &self.levels[l];
        let cell = &self.cells[l];
        let symmetric = cell.chunks_exact(6).all(|c| c[0] == -c[2] && c[1] == -c[3] && c[4] == -c[5]);
        let Some(k) = (0..=20).find(|&k| cell.iter().all(|&v| ((v as f64) * 2f64.powi(k)).fract() == 0.0)) else {
            return false;
        };
        let q = 2f64.powi(-k);
        let max_c = cell.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
        let max_s = (0..3).map(|a| (lv.fmap[a].saturating_sub(1) * lv.stride[a]) as f64).fold(0f64, f64::max);
        symmetric && 2.0 * (max_s + max_c) < 2f64.powi(24) * q
    }

    /// Anchor i of the concatenated levels.
    #[inline]
    pub fn get(&self, i: usize) -> [f32; 6] {
        let mut l = self.levels.len() - 1;
        while self.starts[l] > i {
            l -= 1;
        }
        let lv = &self.levels[l];
        let local = i - self.starts[l];
        let per = lv.per_location();
        let (p, c) = (local / per, local % per);
        let [_, f1, f2] = lv.fmap;
        let sx = ((p / (f1 * f2)) * lv.stride[0]) as f32;
        let sy = (((p / f2) % f1) * lv.stride[1]) as f32;
        let sz = ((p % f2) * lv.stride[2]) as f32;
        let shift = [sx, sy, sx, sy, sz, sz];
        let cell = &self.cells[l][c * 6..c * 6 + 6];
        let mut out = [0f32; 6];
        for k in 0..6 {
            out[k] = shift[k] + cell[k];
        }
        out
    }

    /// f(i, anchor i) for i in s..e, walking the grid with counters instead of divisions.
    pub fn visit<F: FnMut(usize, [f32; 6])>(&self, s: usize, e: usize, mut f: F) {
        let mut i = s;
        while i < e {
            let mut l = self.levels.len() - 1;
            while self.starts[l] > i {
                l -= 1;
            }
            let lv = &self.levels[l];
            let end = e.min(self.starts[l] + lv.count());
            let per = lv.per_location();
            let [_, f1, f2] = lv.fmap;
            let local = i - self.starts[l];
            let (p, mut c) = (local / per, local % per);
            let (mut ix, mut iy, mut iz) = (p / (f1 * f2), (p / f2) % f1, p % f2);
            let cells = &self.cells[l];
            while i < end {
                let sx = (ix * lv.stride[0]) as f32;
                let sy = (iy * lv.stride[1]) as f32;
                let sz = (iz * lv.stride[2]) as f32;
                let shift = [sx, sy, sx, sy, sz, sz];
                while c < per && i < end {
                    let cell = &cells[c * 6..c * 6 + 6];
                    let mut out = [0f32; 6];
                    for k in 0..6 {
                        out[k] = shift[k] + cell[k];
                    }
                    f(i, out);
                    c += 1;
                    i += 1;
                }
                c = 0;
                iz += 1;
                if iz == f2 {
                    iz = 0;
                    iy += 1;
                    if iy == f1 {
                        iy = 0;
                        ix += 1;
                    }
                }
            }
        }
    }
}

/// encode_single: deltas [n,6] of `gt` [n,6] relative to `anchors` [n,6].
pub fn encode(gt: &[f32], anchors: &[f32], w: [f32; 6], out: &mut [f32]) {
    let n = out.len() / 6;
    for i in 0..n {
        let (g, a) = (&gt[i * 6..i * 6 + 6], &anchors[i * 6..i * 6 + 6]);
        let o = &mut out[i * 6..i * 6 + 6];
        // axis k uses box columns (lo, hi) = (0,2), (1,3), (4,5); centre delta at 2k' and size at 2k'+1.
        for (ax, (lo, hi)) in [(0usize, 2usize), (1, 3), (4, 5)].into_iter().enumerate() {
            let aw = a[hi] - a[lo];
            let ac = a[lo] + 0.5 * aw;
            let gw = g[hi] - g[lo];
            let gc = g[lo] + 0.5 * gw;
            let (dc, ds) = delta_slots(ax);
            o[dc] = w[dc] * (gc - ac) / aw;
            o[ds] = w[ds] * (gw / aw).ln();
        }
    }
}

/// Slots of the centre and size deltas of an axis in `(dx, dy, dw, dh, dz, dd)`.
#[inline(always)]
pub fn delta_slots(axis: usize) -> (usize, usize) {
    match axis {
        0 => (0, 2),
        1 => (1, 3),
        _ => (4, 5),
    }
}

/// Decode one row: deltas `d` relative to anchor `a` into box `o`.
#[inline(always)]
pub fn decode_one(d: &[f32], a: &[f32], w: [f32; 6], clip: f32, o: &mut [f32]) {
    for (ax, (lo, hi)) in [(0usize, 2usize), (1, 3), (4, 5)].into_iter().enumerate() {
        let aw = a[hi] - a[lo];
        let ac = a[lo] + 0.5 * aw;
        let (dc, ds) = delta_slots(ax);
        let dxy = d[dc] / w[dc];
        let mut dwh = d[ds] / w[ds];
        if dwh > clip {
            dwh = clip;
        }
        let pc = dxy * aw + ac;
        let pw = dwh.exp() * aw;
        o[lo] = pc - 0.5 * pw;
        o[hi] = pc + 0.5 * pw;
    }
}

/// decode_single: boxes [n,6] from deltas [n,6] and anchors [n,6]; threaded.
pub fn decode(deltas: &[f32], anchors: &[f32], w: [f32; 6], clip: f32, out: &mut [f32]) {
    let n = out.len() / 6;
    let addr = out.as_mut_ptr() as usize;
    pool().parallel_chunks(n, 16384, |s, e| {
        // SAFETY: disjoint row ranges.
        let o = unsafe { std::slice::from_raw_parts_mut((addr as *mut f32).add(s * 6), (e - s) * 6) };
        for i in s..e {
            decode_one(&deltas[i * 6..i * 6 + 6], &anchors[i * 6..i * 6 + 6], w, clip, &mut o[(i - s) * 6..(i - s) * 6 + 6]);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_order_and_roundtrip() {
        let lv = Level { widths: vec![2.0, 4.0], heights: vec![3.0], depths: vec![2.0], fmap: [2, 1, 2], stride: [4, 4, 4] };
        let mut a = vec![0f32; lv.count() * 6];
        generate(&[lv.clone()], &mut a);
        assert_eq!(&a[0..6], &[-1.0, -1.5, 1.0, 1.5, -1.0, 1.0]);
        // second position is iz = 1 (axis 2 fastest): shifted by 4 in z only
        assert_eq!(&a[12..18], &[-1.0, -1.5, 1.0, 1.5, 3.0, 5.0]);
        let two = [
            Level { widths: vec![2.5, 4.0], heights: vec![3.0, 7.0], depths: vec![1.0], fmap: [3, 2, 5], stride: [4, 5, 3] },
            Level { widths: vec![5.0], heights: vec![6.0], depths: vec![3.0, 3.3], fmap: [2, 1, 2], stride: [8, 10, 6] },
        ];
        let grid = Grid::new(&two);
        let mut all = vec![0f32; grid.len() * 6];
        generate(&two, &mut all);
        for i in 0..grid.len() {
            assert_eq!(grid.get(i), all[i * 6..i * 6 + 6], "anchor {i}");
        }
        for (s, e) in [(0, grid.len()), (7, 31), (29, grid.len() - 3)] {
            let mut next = s;
            grid.visit(s, e, |i, a| {
                assert_eq!((i, &a[..]), (next, &all[i * 6..i * 6 + 6]));
                next += 1;
            });
            assert_eq!(next, e);
        }
        let gt = [0.5f32, -1.0, 3.0, 2.0, 1.0, 6.0];
        let mut d = [0f32; 6];
        let w = [1.0; 6];
        encode(&gt, &a[12..18], w, &mut d);
        let mut back = [0f32; 6];
        decode_one(&d, &a[12..18], w, default_clip(), &mut back);
        for k in 0..6 {
            assert!((back[k] - gt[k]).abs() < 1e-5, "{k}: {back:?}");
        }
    }
}
