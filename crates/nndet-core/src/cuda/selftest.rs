//! Tests of the device primitives (cuda/selftest.cu) on every test backend: the mma.sync and ldmatrix
//! fragment layouts documented in cuda/common.cuh, warp shuffles/ballot, barriers with static and dynamic
//! shared memory, cp.async, and the emulator's checks (a divergent warp collective, shared memory over the
//! 48 KiB default without the opt-in, which the GPU refuses too, writes outside an allocation, misaligned
//! vector accesses, and the reordering that exposes missing barriers and cross-block reads). On a GPU these
//! pin the emulator to the hardware: every kernel test in the emulator relies on these semantics.

use std::os::raw::c_void;

launchers! {
    pub struct SelfTest {
        fn selftest_mma(a: *const u16, b: *const u16, c: *const f32, d: *mut f32, stream: *mut c_void);
        fn selftest_ldmatrix(m: *const u16, out: *mut u32, stream: *mut c_void);
        fn selftest_warp(v: *const i32, out: *mut i32, n: i32, block: i32, stream: *mut c_void);
        fn selftest_block(x: *const f32, out: *mut f32, n: i32, block: i32, wait: i32, smem_extra: i32, stream: *mut c_void);
        fn selftest_divergent(out: *mut i32, stream: *mut c_void);
        fn selftest_vec16(p: *const u8, out: *mut u32, stream: *mut c_void);
        fn selftest_race(out: *mut i32, blocks: i32, stream: *mut c_void);
        fn selftest_xblock(buf: *mut i32, out: *mut i32, blocks: i32, stream: *mut c_void);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::{call, sync, test_backends, Backend, DevBuf};
    use crate::error::Status;

    fn bf(x: f32) -> u16 {
        let u = x.to_bits();
        ((u + 0x7fff + ((u >> 16) & 1)) >> 16) as u16
    }
    fn f(h: u16) -> f32 {
        f32::from_bits((h as u32) << 16)
    }
    fn null() -> *mut c_void {
        std::ptr::null_mut()
    }

    #[test]
    fn mma_fragments_follow_the_documented_layout() {
        let mut s = 7u32;
        let mut r = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            ((s % 17) as f32 - 8.0) / 4.0 // exact in bf16, sums exact in fp32
        };
        let a: Vec<u16> = (0..256).map(|_| bf(r())).collect();
        let bm: Vec<u16> = (0..128).map(|_| bf(r())).collect();
        let c: Vec<f32> = (0..128).map(|_| r()).collect();
        let mut want = c.clone();
        for i in 0..16 {
            for j in 0..8 {
                for k in 0..16 {
                    want[i * 8 + j] += f(a[i * 16 + k]) * f(bm[k * 8 + j]);
                }
            }
        }
        for b in test_backends() {
            let k = SelfTest::of(b).unwrap();
            let (da, db, dc, dd) = (DevBuf::from_slice(b, &a).unwrap(), DevBuf::from_slice(b, &bm).unwrap(), DevBuf::from_slice(b, &c).unwrap(), DevBuf::zeroed(b, 512).unwrap());
            call(b, unsafe { (k.selftest_mma)(da.ptr() as _, db.ptr() as _, dc.ptr() as _, dd.ptr() as _, null()) }, "mma").unwrap();
            assert_eq!(dd.to_vec::<f32>().unwrap(), want, "{b:?}");
        }
    }

    #[test]
    fn ldmatrix_fragments_follow_the_documented_layout() {
        let m: Vec<u16> = (0..256).map(|i| i as u16 * 3 + 1).collect();
        let mut want = vec![0u32; 256];
        for lane in 0..32 {
            let (g, t) = (lane >> 2, lane & 3);
            for j in 0..4 {
                let at = |row: usize, col: usize| m[j * 64 + row * 8 + col] as u32;
                want[lane * 4 + j] = at(g, 2 * t) | at(g, 2 * t + 1) << 16;
                want[128 + lane * 4 + j] = at(2 * t, g) | at(2 * t + 1, g) << 16;
            }
        }
        for b in test_backends() {
            let k = SelfTest::of(b).unwrap();
            let (dm, out) = (DevBuf::from_slice(b, &m).unwrap(), DevBuf::zeroed(b, 1024).unwrap());
            call(b, unsafe { (k.selftest_ldmatrix)(dm.ptr() as _, out.ptr() as _, null()) }, "ldmatrix").unwrap();
            assert_eq!(out.to_vec::<u32>().unwrap(), want, "{b:?}");
        }
    }

    #[test]
    fn warp_collectives() {
        for (n, block) in [(32usize, 32usize), (77, 64), (100, 96)] {
            let v: Vec<i32> = (0..n as i32).map(|i| (i * 37) % 101).collect();
            let mut want = vec![0i32; 8 * n];
            let val = |i: usize| if i < n { v[i] } else { 0 };
            for i in 0..n {
                let (w0, lane) = (i - i % 32, i % 32);
                let lanes = (block - (w0 % block)).min(32); // lanes of this warp in its block
                let warp: Vec<i32> = (0..lanes).map(|l| val(w0 + l)).collect();
                let get = |l: usize| warp[l];
                let o = &mut want[8 * i..8 * i + 8];
                o[0] = warp.iter().sum();
                o[1] = if lane + 1 < lanes { get(lane + 1) } else { get(lane) };
                o[2] = if lane >= 2 { get(lane - 2) } else { get(lane) };
                o[3] = get((lane & !7) + ((lane ^ 5) & 7));
                o[4] = warp.iter().enumerate().map(|(l, x)| ((x & 1) as u32) << l).sum::<u32>() as i32;
                o[5] = warp.iter().any(|&x| x > 100) as i32;
                o[6] = warp.iter().all(|&x| x >= 0) as i32;
                o[7] = get(lane ^ 16);
            }
            // only full warps are compared for the butterfly/xor results (partial warps read out of range)
            for b in test_backends() {
                let k = SelfTest::of(b).unwrap();
                let (dv, out) = (DevBuf::from_slice(b, &v).unwrap(), DevBuf::zeroed(b, 32 * n).unwrap());
                call(b, unsafe { (k.selftest_warp)(dv.ptr() as _, out.ptr() as _, n as i32, block as i32, null()) }, "warp").unwrap();
                let got = out.to_vec::<i32>().unwrap();
                for i in 0..n {
                    let full = (block - ((i - i % 32) % block)) >= 32;
                    let cols: &[usize] = if full { &[0, 1, 2, 3, 4, 5, 6, 7] } else { &[2, 4, 5, 6] };
                    for &c in cols {
                        assert_eq!(got[8 * i + c], want[8 * i + c], "{b:?} n={n} block={block} thread {i} column {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn block_barriers_shared_memory_and_cp_async() {
        let (n, block) = (512usize, 128usize);
        let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
        for b in test_backends() {
            let k = SelfTest::of(b).unwrap();
            let dx = DevBuf::from_slice(b, &x).unwrap();
            // 64 KiB without the opt-in: the GPU refuses the launch, and so does the emulator (first: the opt-in
            // below lasts for the rest of the process)
            let out = DevBuf::zeroed(b, 4 * 3 * n / block).unwrap();
            let code = unsafe { (k.selftest_block)(dx.ptr() as _, out.ptr() as _, n as i32, block as i32, 1, -64 * 1024, null()) };
            assert_ne!(code, 0, "{b:?}: 64 KiB of dynamic shared memory without the opt-in must fail");
            let _ = sync(b);
            // 64 KiB of extra dynamic shared memory: needs (and gets) the opt-in
            for extra in [0, 64 * 1024] {
                let out = DevBuf::zeroed(b, 4 * 3 * n / block).unwrap();
                call(b, unsafe { (k.selftest_block)(dx.ptr() as _, out.ptr() as _, n as i32, block as i32, 1, extra, null()) }, "block").unwrap();
                let got = out.to_vec::<f32>().unwrap();
                for blk in 0..n / block {
                    let s: f32 = x[blk * block..(blk + 1) * block].iter().sum();
                    let pos = x[blk * block..(blk + 1) * block].iter().filter(|&&v| v > 0.0).count() as f32;
                    assert_eq!(&got[3 * blk..3 * blk + 3], &[s, s, pos], "{b:?} block {blk} extra {extra}");
                }
            }
        }
    }

    /// Run by `emulator_traps_a_misaligned_vector_access` in a child process: a 16-byte load from an address
    /// 4 bytes past a 16-byte boundary (the emulator's kernels are built with -fsanitize=alignment, trapping).
    #[test]
    #[ignore]
    fn misaligned_vector_load_child() {
        let b = Backend::Emu;
        let k = SelfTest::of(b).unwrap();
        let d = DevBuf::zeroed(b, 64).unwrap();
        let o = DevBuf::zeroed(b, 4).unwrap();
        let _ = call(b, unsafe { (k.selftest_vec16)((d.ptr() + 4) as _, o.ptr() as _, null()) }, "vec16");
    }

    #[test]
    fn emulator_traps_a_misaligned_vector_access() {
        use std::os::unix::process::ExitStatusExt;
        let b = Backend::Emu;
        let k = SelfTest::of(b).unwrap();
        let d = DevBuf::from_slice(b, &[1u32, 2, 3, 4]).unwrap();
        let o = DevBuf::zeroed(b, 4).unwrap();
        call(b, unsafe { (k.selftest_vec16)(d.ptr() as _, o.ptr() as _, null()) }, "vec16").unwrap();
        assert_eq!(o.to_vec::<u32>().unwrap(), vec![10]);
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args(["--exact", "cuda::selftest::tests::misaligned_vector_load_child", "--ignored", "--nocapture"])
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(4), "the child should die of SIGILL (the sanitizer's trap): {:?}", out.status);
    }

    #[test]
    fn emulator_reorders_warps_so_a_missing_barrier_shows() {
        let b = Backend::Emu;
        let k = SelfTest::of(b).unwrap();
        let o = DevBuf::zeroed(b, 4 * 64).unwrap();
        call(b, unsafe { (k.selftest_race)(o.ptr() as _, 2, null()) }, "race").unwrap();
        let got = o.to_vec::<i32>().unwrap();
        // block 0 runs warp 0 first (the write lands before the read); block 1 runs warp 1 first and reads
        // the unwritten (poisoned) shared memory
        assert_eq!(got[..32], (1..=32).collect::<Vec<i32>>()[..]);
        assert!(got[32..].iter().all(|&v| v == -1), "{:?}", &got[32..]);
    }

    #[test]
    fn emulator_runs_blocks_out_of_order_so_a_cross_block_read_shows() {
        let b = Backend::Emu;
        let k = SelfTest::of(b).unwrap();
        let (buf, o) = (DevBuf::zeroed(b, 8).unwrap(), DevBuf::zeroed(b, 8).unwrap());
        call(b, unsafe { (k.selftest_xblock)(buf.ptr() as _, o.ptr() as _, 2, null()) }, "xblock").unwrap();
        // block 1 ran first: it read block 0's slot before block 0 wrote it
        assert_eq!(o.to_vec::<i32>().unwrap(), vec![11, 0]);
    }

    #[test]
    fn emulator_reuses_fiber_stacks_across_block_sizes() {
        // alternating big and small blocks once leaked the big blocks' stacks until mmap failed
        let b = Backend::Emu;
        let k = SelfTest::of(b).unwrap();
        let v: Vec<i32> = (0..1024).collect();
        let dv = DevBuf::from_slice(b, &v).unwrap();
        let o = DevBuf::zeroed(b, 32 * 1024).unwrap();
        for i in 0..120 {
            let block = if i % 2 == 0 { 1024 } else { 32 };
            call(b, unsafe { (k.selftest_warp)(dv.ptr() as _, o.ptr() as _, 1024, block, null()) }, "warp").unwrap();
        }
        assert_eq!(o.to_vec::<i32>().unwrap()[0], (0..32).sum::<i32>());
    }

    #[test]
    fn emulator_catches_a_missing_cp_async_wait() {
        let b = Backend::Emu;
        let k = SelfTest::of(b).unwrap();
        let x = vec![1.0f32; 128];
        let dx = DevBuf::from_slice(b, &x).unwrap();
        let out = DevBuf::zeroed(b, 4 * 3).unwrap();
        call(b, unsafe { (k.selftest_block)(dx.ptr() as _, out.ptr() as _, 128, 128, 0, 0, null()) }, "block").unwrap();
        let got = out.to_vec::<f32>().unwrap();
        assert_eq!(got[0], 128.0);
        assert!(got[1].is_nan(), "without the wait the staged copy must read as unwritten (NaN), got {}", got[1]);
    }

    #[test]
    fn emulator_reports_a_divergent_warp_collective() {
        let b = Backend::Emu;
        let k = SelfTest::of(b).unwrap();
        let out = DevBuf::zeroed(b, 128).unwrap();
        let e = call(b, unsafe { (k.selftest_divergent)(out.ptr() as _, null()) }, "divergent").unwrap_err();
        assert_eq!(e.status, Status::Cuda);
        assert!(e.message.contains("warp collective") && e.message.contains("exited"), "{e}");
        // the error is consumed: the next launch works
        sync(b).unwrap();
        let v: Vec<i32> = (0..32).collect();
        let dv = DevBuf::from_slice(b, &v).unwrap();
        let o = DevBuf::zeroed(b, 32 * 32).unwrap();
        call(b, unsafe { (k.selftest_warp)(dv.ptr() as _, o.ptr() as _, 32, 32, null()) }, "warp").unwrap();
        assert_eq!(o.to_vec::<i32>().unwrap()[0], (0..32).sum::<i32>());
    }
}
