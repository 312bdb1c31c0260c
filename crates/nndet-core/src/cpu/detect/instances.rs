//! Instance mask -> boxes, mirroring nnDetection `instances_to_boxes_np` / `Instances2Boxes`
//! (nndet/io/transforms/instances.py): one box per present id > 0 in ascending id order, edges
//! `[min - 1, max + 1]` per axis (spec §5.0) as f32. Mask [X, Y, Z] i32 (0 background, -1 outside the
//! non-zero region: ignored like any id <= 0). One pass over the volume, threaded over slabs of axis 0;
//! small ids are collected in a dense per-task table, very large ones in a hash map.
use crate::pool::pool;
use std::collections::HashMap;
use std::sync::Mutex;

/// Per-id extent: [min0, min1, min2, max0, max1, max2].
type Ext = [i64; 6];

fn merge(e: &mut Ext, o: &Ext) {
    for k in 0..3 {
        e[k] = e[k].min(o[k]);
        e[k + 3] = e[k + 3].max(o[k + 3]);
    }
}

/// Ids below this go into a per-task dense table (grown on demand); larger ids into a hash map.
const DENSE_IDS: usize = 1 << 14;

/// (ids ascending, boxes [n, 6]) of a mask with shape [x, y, z].
pub fn instances_to_boxes(mask: &[i32], shape: [usize; 3]) -> (Vec<i32>, Vec<f32>) {
    let [sx, sy, sz] = shape;
    let slab = sy * sz;
    let empty: Ext = [i64::MAX, i64::MAX, i64::MAX, i64::MIN, i64::MIN, i64::MIN];
    let found: Mutex<HashMap<i32, Ext>> = Mutex::new(HashMap::new());
    let rows_per = ((1 << 16) / slab.max(1)).max(1);
    pool().parallel_chunks(sx, rows_per, |x0, x1| {
        let mut table: Vec<Ext> = Vec::new();
        let mut map: HashMap<i32, Ext> = HashMap::new();
        for x in x0..x1 {
            for y in 0..sy {
                let row = &mask[x * slab + y * sz..x * slab + (y + 1) * sz];
                let mut z = 0;
                while z < sz {
                    let id = row[z];
                    // NOTE: runs of one id along the row update the extent once.
                    let start = z;
                    while z < sz && row[z] == id {
                        z += 1;
                    }
                    if id <= 0 {
                        continue;
                    }
                    let p = [x as i64, y as i64, start as i64, x as i64, y as i64, (z - 1) as i64];
                    let e = if (id as usize) < DENSE_IDS {
                        if table.len() <= id as usize {
                            table.resize(id as usize + 1, empty);
                        }
                        &mut table[id as usize]
                    } else {
                        map.entry(id).or_insert(empty)
                    };
                    merge(e, &p);
                }
            }
        }
        let mut f = found.lock().unwrap();
        let dense = table.into_iter().enumerate().filter(|(_, e)| e[0] != i64::MAX).map(|(i, e)| (i as i32, e));
        for (id, e) in dense.chain(map) {
            merge(f.entry(id).or_insert(empty), &e);
        }
    });
    let mut all: Vec<(i32, Ext)> = found.into_inner().unwrap().into_iter().collect();
    all.sort_unstable_by_key(|x| x.0);
    let ids = all.iter().map(|x| x.0).collect();
    let mut boxes = Vec::with_capacity(all.len() * 6);
    for (_, e) in &all {
        boxes.extend_from_slice(&[
            (e[0] - 1) as f32,
            (e[1] - 1) as f32,
            (e[3] + 1) as f32,
            (e[4] + 1) as f32,
            (e[2] - 1) as f32,
            (e[5] + 1) as f32,
        ]);
    }
    (ids, boxes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_of_sparse_and_large_ids() {
        let shape = [4usize, 3, 5];
        let mut m = vec![0i32; 60];
        m[1 * 15 + 2 * 5 + 3] = 7;
        m[3 * 15 + 0 * 5 + 1] = 7;
        m[0] = 2_000_000_000;
        m[5] = -1;
        let (ids, b) = instances_to_boxes(&m, shape);
        assert_eq!(ids, vec![7, 2_000_000_000]);
        assert_eq!(&b[..6], &[0.0, -1.0, 4.0, 3.0, 0.0, 4.0]);
        assert_eq!(&b[6..], &[-1.0, -1.0, 1.0, 1.0, -1.0, 1.0]);
    }
}
