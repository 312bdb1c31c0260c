//! Top-k selection over large score arrays (the 10 000 best of 2·10^6 anchor scores, the hard-negative
//! pool of 8·10^6 anchors) without sorting or collecting everything: a radix select on the f32 bit pattern.
//! Pass 1 builds a histogram of the top 16 bits of an order-preserving key per thread chunk; the bin holding
//! the k-th largest key is found from the merged histogram; pass 2 collects only the entries at or above that
//! bin, which are then cut to exactly k. Result: (score, index) sorted by score descending, ties to the lower
//! index — the same as a stable descending sort followed by taking the first k.
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

/// The k largest `score(i)` over i in 0..n where `score` returns Some (None = not a candidate; it must not
/// return NaN), sorted descending with ties to the lower index.
pub fn top_k<F: Fn(usize) -> Option<f32> + Sync>(n: usize, k: usize, score: F) -> Vec<(f32, u32)> {
    if k == 0 || n == 0 {
        return Vec::new();
    }
    let tasks = (pool().threads() * 2).max(1).min(n.div_ceil(1 << 14)).max(1);
    let span = n.div_ceil(tasks);
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
    // Lowest bin such that the bins from it upwards hold at least k entries (or bin 0 if all fit).
    let mut acc = 0u64;
    let mut cut = 0u32;
    for b in (0..1usize << 16).rev() {
        acc += total[b];
        if acc >= k as u64 {
            cut = b as u32;
            break;
        }
    }
    let parts: Vec<Mutex<Vec<(f32, u32)>>> = (0..tasks).map(|_| Mutex::new(Vec::new())).collect();
    pool().parallel_for(tasks, |t| {
        let mut v = Vec::new();
        for i in t * span..((t + 1) * span).min(n) {
            if let Some(s) = score(i) {
                if key(s) >> 16 >= cut {
                    v.push((s, i as u32));
                }
            }
        }
        *parts[t].lock().unwrap() = v;
    });
    let mut all: Vec<(f32, u32)> = parts.into_iter().flat_map(|m| m.into_inner().unwrap()).collect();
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
}
