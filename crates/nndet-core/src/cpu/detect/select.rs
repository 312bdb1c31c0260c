//! Top-k selection over large score arrays (the 10 000 best of 2·10^6 anchor scores, the hard-negative
//! pool of 8·10^6 anchors) without sorting or collecting everything. Scores map to an order-preserving u32
//! key; a cut on that key is estimated from a sample (or, failing that, found exactly from a histogram of the
//! top 16 key bits); one threaded pass collects only the entries at or above the cut, which are then cut to
//! exactly k. Result: (score, index) sorted by score descending, ties to the lower index — the same as a
//! stable descending sort followed by taking the first k.
use crate::pool::pool;
use std::sync::Mutex;

/// Order-preserving u32 key of a non-NaN f32 (-0 and +0 map to the same key, as they compare equal).
#[inline(always)]
fn key(v: f32) -> u32 {
    let b = if v == 0.0 { 0u32 } else { v.to_bits() };
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Descending by score, then ascending by index.
pub fn better(x: &(f32, u32), y: &(f32, u32)) -> std::cmp::Ordering {
    y.0.partial_cmp(&x.0).unwrap_or(std::cmp::Ordering::Equal).then(x.1.cmp(&y.1))
}

/// Entries with key >= `cut` (full 32-bit key), gathered over `tasks` chunks of `span`.
fn collect<F: Fn(usize) -> Option<f32> + Sync>(n: usize, tasks: usize, span: usize, cut: u32, score: &F) -> Vec<(f32, u32)> {
    let parts: Vec<Mutex<Vec<(f32, u32)>>> = (0..tasks).map(|_| Mutex::new(Vec::new())).collect();
    pool().parallel_for(tasks, |t| {
        let mut v = Vec::new();
        for i in t * span..((t + 1) * span).min(n) {
            if let Some(s) = score(i) {
                if key(s) >= cut {
                    v.push((s, i as u32));
                }
            }
        }
        *parts[t].lock().unwrap() = v;
    });
    parts.into_iter().flat_map(|m| m.into_inner().unwrap()).collect()
}

/// Lowest key (a multiple of 2^16) such that at least k entries lie at or above it, from a histogram of the
/// top 16 key bits (0 when fewer than k entries exist).
fn histogram_cut<F: Fn(usize) -> Option<f32> + Sync>(n: usize, k: usize, tasks: usize, span: usize, score: &F) -> u32 {
    let hist: Vec<Mutex<Vec<u32>>> = (0..tasks).map(|_| Mutex::new(Vec::new())).collect();
    pool().parallel_for(tasks, |t| {
        let mut h = vec![0u32; 1 << 16];
        for i in t * span..((t + 1) * span).min(n) {
            if let Some(v) = score(i) {
                h[(key(v) >> 16) as usize] += 1;
            }
        }
        *hist[t].lock().unwrap() = h;
    });
    let mut total = vec![0u64; 1 << 16];
    for h in hist {
        for (t, c) in total.iter_mut().zip(h.into_inner().unwrap()) {
            *t += c as u64;
        }
    }
    let mut acc = 0u64;
    for b in (0..1usize << 16).rev() {
        acc += total[b];
        if acc >= k as u64 {
            return (b as u32) << 16;
        }
    }
    0
}

/// The k largest `score(i)` over i in 0..n where `score` returns Some (None = not a candidate; it must not
/// return NaN), sorted descending with ties to the lower index.
///
/// NOTE: a strided sample of up to 65 536 entries estimates a cut holding about twice the k best, so one
/// pass usually collects everything needed; if the estimate falls short, the histogram pass finds an exact
/// cut and a second pass collects again.
pub fn top_k<F: Fn(usize) -> Option<f32> + Sync>(n: usize, k: usize, score: F) -> Vec<(f32, u32)> {
    if k == 0 || n == 0 {
        return Vec::new();
    }
    let tasks = (pool().threads() * 2).max(1).min(n.div_ceil(1 << 14)).max(1);
    let span = n.div_ceil(tasks);
    let m = n.min(1 << 16);
    let step = n / m;
    let mut sample: Vec<u32> = (0..m).filter_map(|j| score(j * step).map(key)).collect();
    let want = ((k as f64) * (m as f64) / (n as f64) * 2.0) as usize + 64;
    let mut cut = 0u32;
    if sample.len() > want {
        sample.select_nth_unstable_by(want, |a, b| b.cmp(a));
        cut = sample[want];
    }
    let mut all = collect(n, tasks, span, cut, &score);
    if all.len() < k && cut > 0 {
        all = collect(n, tasks, span, histogram_cut(n, k, tasks, span, &score), &score);
    }
    if all.len() > k {
        all.select_nth_unstable_by(k - 1, better);
        all.truncate(k);
    }
    all.sort_unstable_by(better);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_stable_sort_then_take() {
        let n = 300_000usize;
        let mut s = 1u64;
        let vals: Vec<f32> = (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                // coarse values -> many ties, negative and positive, some -0.0
                let v = ((s >> 50) as i32 - 4096) as f32 / 64.0;
                if v == 0.0 && (s & 1) == 1 { -0.0 } else { v }
            })
            .collect();
        for k in [1usize, 7, 1000, 50_000, n, n + 5] {
            for thr in [f32::NEG_INFINITY, 0.0, 30.0] {
                let got = top_k(n, k, |i| if vals[i] > thr { Some(vals[i]) } else { None });
                let mut want: Vec<(f32, u32)> = (0..n).filter(|&i| vals[i] > thr).map(|i| (vals[i], i as u32)).collect();
                want.sort_by(better);
                want.truncate(k);
                assert_eq!(got, want, "k={k} thr={thr}");
            }
        }
    }

    #[test]
    fn falls_back_when_the_sample_misleads() {
        // High scores only at the sampled indices (multiples of 8): the sample overestimates their share.
        let n = 1usize << 19;
        let vals: Vec<f32> = (0..n).map(|i| if i % 8 == 0 { 1e6 + i as f32 } else { (i % 1000) as f32 }).collect();
        let got = top_k(n, 5000, |i| Some(vals[i]));
        let mut want: Vec<(f32, u32)> = (0..n).map(|i| (vals[i], i as u32)).collect();
        want.sort_by(better);
        want.truncate(5000);
        assert_eq!(got, want);
    }
}
