//! Weighted box clustering, mirroring nnDetection `batched_wbc_ensemble` -> `batched_wbc` -> `wbc`
//! (nndet/inference/detection/wbc.py) with `use_area=False`, `missing_weight=1` (spec §7.4).
//!
//! Per label (ascending): visit the pool by score descending (ties: lower index first); cluster = pool boxes
//! with IoU > thr to the top box (itself included); `a_j = IoU_j * weight_j`;
//! `score = Σ a_j s_j / (Σ a_j + max(0, mean(n_exp of cluster) - |cluster|) * mean(a_j))`;
//! `box = Σ a_j s_j b_j / Σ a_j s_j`; emitted when score > score_thresh; the cluster leaves the pool, and so
//! does any box whose IoU with the top is NaN (a zero-volume top box forms no cluster, as in nnDetection).
//! Sums are accumulated in f64 (torch sums f32; the difference is far below the fixtures' tolerance).
//! Output: rows grouped by label ascending, within a label in cluster order. Threaded over labels.
use super::boxes::{area, iou_v};
use super::nms::order_desc;
use crate::pool::pool;
use std::sync::Mutex;

/// One emitted cluster.
#[derive(Clone, Copy, Debug)]
pub struct Cluster {
    pub b: [f32; 6],
    pub score: f32,
    pub label: i32,
}

fn wbc_class(
    idx: &[usize],
    boxes: &[f32],
    scores: &[f32],
    weights: &[f32],
    n_exp: &[f32],
    label: i32,
    thr: f32,
    score_thr: f32,
) -> Vec<Cluster> {
    let sub_scores: Vec<f32> = idx.iter().map(|&i| scores[i]).collect();
    let mut pool_: Vec<usize> = order_desc(&sub_scores).into_iter().map(|k| idx[k as usize]).collect();
    let mut out = Vec::new();
    let mut rest = Vec::with_capacity(pool_.len());
    while let Some(&top) = pool_.first() {
        let bt = &boxes[top * 6..top * 6 + 6];
        let vt = area(bt);
        let (mut sw, mut sws, mut nsum, mut cnt) = (0f64, 0f64, 0f64, 0usize);
        let mut acc = [0f64; 6];
        rest.clear();
        for &j in &pool_ {
            let bj = &boxes[j * 6..j * 6 + 6];
            let v = iou_v(bt, bj, vt, area(bj));
            if v > thr {
                let a = v * weights[j];
                let as_ = a * scores[j];
                sw += a as f64;
                sws += as_ as f64;
                nsum += n_exp[j] as f64;
                cnt += 1;
                for k in 0..6 {
                    acc[k] += as_ as f64 * bj[k] as f64;
                }
            } else if v <= thr {
                rest.push(j);
            }
        }
        std::mem::swap(&mut pool_, &mut rest);
        if cnt == 0 {
            continue;
        }
        let n_expected = nsum / cnt as f64;
        let missing = (n_expected - cnt as f64).max(0.0);
        let score = (sws / (sw + missing * (sw / cnt as f64))) as f32;
        if score > score_thr {
            let mut b = [0f32; 6];
            for k in 0..6 {
                b[k] = (acc[k] / sws) as f32;
            }
            out.push(Cluster { b, score, label });
        }
    }
    out
}

/// WBC over all boxes [N,6] with per-box scores, labels, weights and expected prediction counts.
pub fn wbc(
    boxes: &[f32],
    scores: &[f32],
    labels: &[i32],
    weights: &[f32],
    n_exp: &[f32],
    thr: f32,
    score_thr: f32,
) -> Vec<Cluster> {
    let mut classes: Vec<i32> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let members: Vec<Vec<usize>> =
        classes.iter().map(|&c| (0..labels.len()).filter(|&i| labels[i] == c).collect()).collect();
    let res: Vec<Mutex<Vec<Cluster>>> = classes.iter().map(|_| Mutex::new(Vec::new())).collect();
    pool().parallel_for(classes.len(), |c| {
        let r = wbc_class(&members[c], boxes, scores, weights, n_exp, classes[c], thr, score_thr);
        *res[c].lock().unwrap() = r;
    });
    res.into_iter().flat_map(|m| m.into_inner().unwrap()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_box_is_returned_dampened_by_n_exp() {
        let b = [1.0f32, 2.0, 5.0, 7.0, 0.0, 3.0];
        for n in [1.0f32, 3.0, 40.0] {
            let r = wbc(&b, &[0.9], &[2], &[0.75], &[n], 0.5, 0.0);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].b, b);
            assert_eq!(r[0].label, 2);
            assert!((r[0].score - 0.9 / n).abs() < 1e-6, "{} vs {}", r[0].score, 0.9 / n);
        }
    }
}
