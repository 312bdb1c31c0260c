//! Batch-level hard-negative sampler, mirroring nnDetection `HardNegativeSamplerBatched`
//! (nndet/core/boxes/sampler.py) with v001's settings passed in (batch_size_per_image 32, positive_fraction
//! 0.33, min_neg 1, pool_size 20). Labels [A] over the anchors of the whole batch: -1 ignore, 0 background,
//! >= 1 positive. Rules (spec §5.7), with B = batch_size_per_image * batch:
//!   num_pos = min(#pos, int(B * pf)), drawn uniformly;
//!   num_neg = min(#neg, max(int(max(1, num_pos) * |1 - 1/pf|), min_neg));
//!   pool = min(#neg, int(num_neg * pool_size)) negatives with the highest foreground score, and num_neg
//!   drawn uniformly from the pool.
//! The foreground score of an anchor is its max logit over classes (same order as the max sigmoid
//! probability nnDetection ranks by; NaN ranks lowest); pool ties go to the lower index. The draws use a
//! SplitMix64 stream from `seed` (reproducible, not torch's generator). Outputs are ascending indices, as
//! nnDetection's masks give them.
use super::select::top_k;
use crate::pool::pool;
use std::sync::Mutex;

/// SplitMix64: small, seedable, good enough for uniform draws.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, n) without modulo bias (Lemire's method with rejection).
    pub fn below(&mut self, n: u64) -> u64 {
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            let lo = m as u64;
            if lo >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }
}

/// k distinct items drawn uniformly from `v` (partial Fisher–Yates), returned sorted ascending.
fn draw(mut v: Vec<u32>, k: usize, rng: &mut Rng) -> Vec<u32> {
    let n = v.len();
    for i in 0..k.min(n) {
        let j = i + rng.below((n - i) as u64) as usize;
        v.swap(i, j);
    }
    v.truncate(k.min(n));
    v.sort_unstable();
    v
}

/// Settings of the sampler.
#[derive(Clone, Copy, Debug)]
pub struct SamplerParams {
    pub batch_size_per_image: usize,
    pub batch: usize,
    pub positive_fraction: f64,
    pub min_neg: usize,
    pub pool_size: f64,
    pub seed: u64,
}

/// Sampled (positive, negative) anchor indices. `logits` [A, c] give the foreground score.
pub fn sample(labels: &[i32], logits: &[f32], c: usize, p: &SamplerParams) -> (Vec<u32>, Vec<u32>) {
    let a = labels.len();
    const CHUNK: usize = 1 << 16;
    let nchunks = a.div_ceil(CHUNK);
    let pos_parts: Vec<Mutex<Vec<u32>>> = (0..nchunks).map(|_| Mutex::new(Vec::new())).collect();
    let neg_count: Vec<Mutex<usize>> = (0..nchunks).map(|_| Mutex::new(0)).collect();
    pool().parallel_for(nchunks, |ch| {
        let (s, e) = (ch * CHUNK, ((ch + 1) * CHUNK).min(a));
        let mut pos = Vec::new();
        let mut nn = 0;
        for i in s..e {
            if labels[i] >= 1 {
                pos.push(i as u32);
            } else if labels[i] == 0 {
                nn += 1;
            }
        }
        *pos_parts[ch].lock().unwrap() = pos;
        *neg_count[ch].lock().unwrap() = nn;
    });
    let positives: Vec<u32> = pos_parts.into_iter().flat_map(|m| m.into_inner().unwrap()).collect();
    let n_neg: usize = neg_count.into_iter().map(|m| m.into_inner().unwrap()).sum();
    let budget = (p.batch_size_per_image * p.batch) as f64;
    let num_pos = positives.len().min((budget * p.positive_fraction) as usize);
    let want_neg = ((num_pos.max(1) as f64) * (1.0 - 1.0 / p.positive_fraction).abs()) as usize;
    let num_neg = n_neg.min(want_neg.max(p.min_neg));
    let pool_n = n_neg.min((num_neg as f64 * p.pool_size) as usize);
    let mut rng = Rng::new(p.seed);
    let pos = draw(positives, num_pos, &mut rng);
    // Top `pool_n` negatives by score (radix select, select.rs); NaN logits are skipped by the max.
    let key = |i: usize| logits[i * c..i * c + c].iter().copied().fold(f32::NEG_INFINITY, |m, x| if x > m { x } else { m });
    let cand = top_k(a, pool_n, |i| if labels[i] == 0 { Some(key(i)) } else { None });
    let neg = draw(cand.into_iter().map(|x| x.1).collect(), num_neg, &mut rng);
    (pos, neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(seed: u64) -> SamplerParams {
        SamplerParams { batch_size_per_image: 32, batch: 4, positive_fraction: 0.33, min_neg: 1, pool_size: 20.0, seed }
    }

    #[test]
    fn counts_follow_nndetection_rules_and_are_reproducible() {
        let a = 300_000usize;
        let labels: Vec<i32> = (0..a).map(|i| if i % 997 == 0 { 1 + (i % 3) as i32 } else if i % 13 == 0 { -1 } else { 0 }).collect();
        let logits: Vec<f32> = (0..a * 2).map(|i| ((i * 7919) % 10007) as f32 / 10007.0).collect();
        let (pos, neg) = sample(&labels, &logits, 2, &params(5));
        assert_eq!(pos.len(), 42);
        assert_eq!(neg.len(), 85);
        assert!(pos.iter().all(|&i| labels[i as usize] >= 1));
        assert!(neg.iter().all(|&i| labels[i as usize] == 0));
        // negatives come from the 1700 best-scoring negatives
        let mut keys: Vec<f32> = (0..a).filter(|&i| labels[i] == 0).map(|i| logits[2 * i].max(logits[2 * i + 1])).collect();
        keys.sort_by(|x, y| y.total_cmp(x));
        let cut = keys[1699];
        assert!(neg.iter().all(|&i| logits[2 * i as usize].max(logits[2 * i as usize + 1]) >= cut));
        assert_eq!(sample(&labels, &logits, 2, &params(5)), (pos.clone(), neg.clone()));
        assert_ne!(sample(&labels, &logits, 2, &params(6)).0, pos);
        // no positives: only max(int(1 * 2.03), 1) = 2 negatives
        let bg: Vec<i32> = labels.iter().map(|&l| if l > 0 { 0 } else { l }).collect();
        let (p0, n0) = sample(&bg, &logits, 2, &params(1));
        assert_eq!((p0.len(), n0.len()), (0, 2));
    }
}
