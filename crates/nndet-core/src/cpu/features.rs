//! Run-time CPU feature detection. Kernels pick their fast path once from `level()`:
//! AVX-512 (F + BW + VL + DQ) > AVX2 + FMA > scalar. `det_cpu_level=scalar|avx2|avx512` caps the level
//! (for testing fallbacks on a machine that has more).

use std::sync::OnceLock;

pub const FEAT_SSE42: u32 = 1 << 0;
pub const FEAT_AVX: u32 = 1 << 1;
pub const FEAT_AVX2: u32 = 1 << 2;
pub const FEAT_FMA: u32 = 1 << 3;
pub const FEAT_AVX512F: u32 = 1 << 4;
pub const FEAT_AVX512BW: u32 = 1 << 5;
pub const FEAT_AVX512VL: u32 = 1 << 6;
pub const FEAT_AVX512DQ: u32 = 1 << 7;
pub const FEAT_AVX512BF16: u32 = 1 << 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Scalar = 0,
    Avx2 = 1,
    Avx512 = 2,
}

/// Bitmask of the features this CPU has (FEAT_* constants).
pub fn detect() -> u32 {
    let mut f = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("sse4.2") { f |= FEAT_SSE42; }
        if is_x86_feature_detected!("avx") { f |= FEAT_AVX; }
        if is_x86_feature_detected!("avx2") { f |= FEAT_AVX2; }
        if is_x86_feature_detected!("fma") { f |= FEAT_FMA; }
        if is_x86_feature_detected!("avx512f") { f |= FEAT_AVX512F; }
        if is_x86_feature_detected!("avx512bw") { f |= FEAT_AVX512BW; }
        if is_x86_feature_detected!("avx512vl") { f |= FEAT_AVX512VL; }
        if is_x86_feature_detected!("avx512dq") { f |= FEAT_AVX512DQ; }
        if is_x86_feature_detected!("avx512bf16") { f |= FEAT_AVX512BF16; }
    }
    f
}

fn level_from(features: u32, cap: Option<&str>) -> Level {
    let avx512 = FEAT_AVX512F | FEAT_AVX512BW | FEAT_AVX512VL | FEAT_AVX512DQ;
    let hw = if features & avx512 == avx512 {
        Level::Avx512
    } else if features & (FEAT_AVX2 | FEAT_FMA) == FEAT_AVX2 | FEAT_FMA {
        Level::Avx2
    } else {
        Level::Scalar
    };
    let cap = match cap.map(|s| s.trim().to_ascii_lowercase()) {
        Some(s) if s == "scalar" => Level::Scalar,
        Some(s) if s == "avx2" => Level::Avx2,
        _ => Level::Avx512,
    };
    hw.min(cap)
}

static LEVEL: OnceLock<Level> = OnceLock::new();

/// The kernel level in use (detected once; capped by `det_cpu_level`).
pub fn level() -> Level {
    *LEVEL.get_or_init(|| level_from(detect(), std::env::var("det_cpu_level").ok().as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_rules() {
        let all = FEAT_AVX2 | FEAT_FMA | FEAT_AVX512F | FEAT_AVX512BW | FEAT_AVX512VL | FEAT_AVX512DQ;
        assert_eq!(level_from(all, None), Level::Avx512);
        assert_eq!(level_from(all, Some("avx2")), Level::Avx2);
        assert_eq!(level_from(all, Some("scalar")), Level::Scalar);
        assert_eq!(level_from(FEAT_AVX2 | FEAT_FMA | FEAT_AVX512F, None), Level::Avx2);
        assert_eq!(level_from(FEAT_AVX2, None), Level::Scalar);
        assert_eq!(level_from(FEAT_AVX2 | FEAT_FMA, Some("avx512")), Level::Avx2);
    }

    #[test]
    fn detect_is_consistent_with_std() {
        let f = detect();
        #[cfg(target_arch = "x86_64")]
        assert_eq!(f & FEAT_AVX2 != 0, is_x86_feature_detected!("avx2"));
        let _ = f;
    }
}
