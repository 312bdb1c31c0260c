//! Conv3d and ConvTranspose3d: the parameter block, the argument checks every backend shares, dispatch.
//!
//! Layouts at the ABI (PyTorch's, fp32, contiguous): activations `[N][C][D][H][W]`; Conv3d weights
//! `[Cout][Cin][kd][kh][kw]`; ConvTranspose3d weights `[Cin][Cout][kd][kh][kw]`; bias `[Cout]`.
//! `Conv3dParams` is filled from an `Int32Array(20)` (src/native/ops/conv.ts `conv3dParams`), in field order.
//! Conv: kernel in {1,3} per axis with padding (k-1)/2, stride in {1,2}, o = (i + 2p - k)/s + 1.
//! ConvT: kernel == stride in {1,2} per axis, no padding, o = i*s.
//! `accumulate` = 1 adds into the output buffers (y, dx, dw, db) instead of overwriting them.
//! The workspace is raw bytes, at least `*_workspace(p)` long (the caller owns it; no allocation per call).

use crate::cpu;
use crate::cpu::features::level;
use crate::error::{NdError, NdResult, Status};
use crate::ensure;

/// Number of i32 fields in `Conv3dParams` (the length of the TS Int32Array).
pub const CONV_PARAMS_LEN: usize = 20;

const FIELDS: [&str; CONV_PARAMS_LEN] = [
    "n", "cin", "cout", "d", "h", "w", "kd", "kh", "kw", "sd", "sh", "sw", "pd", "ph", "pw", "od", "oh", "ow",
    "has_bias", "accumulate",
];

/// The parameter block of every conv op, in ABI order (all i32).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv3dParams {
    pub n: i32,
    pub cin: i32,
    pub cout: i32,
    pub d: i32,
    pub h: i32,
    pub w: i32,
    pub kd: i32,
    pub kh: i32,
    pub kw: i32,
    pub sd: i32,
    pub sh: i32,
    pub sw: i32,
    pub pd: i32,
    pub ph: i32,
    pub pw: i32,
    pub od: i32,
    pub oh: i32,
    pub ow: i32,
    pub has_bias: i32,
    pub accumulate: i32,
}

impl Conv3dParams {
    fn raw(s: &[i32]) -> NdResult<Conv3dParams> {
        if s.len() != CONV_PARAMS_LEN {
            return Err(NdError::invalid(format!("conv params need {CONV_PARAMS_LEN} i32 values, got {}", s.len())));
        }
        let p = Conv3dParams {
            n: s[0], cin: s[1], cout: s[2], d: s[3], h: s[4], w: s[5], kd: s[6], kh: s[7], kw: s[8],
            sd: s[9], sh: s[10], sw: s[11], pd: s[12], ph: s[13], pw: s[14], od: s[15], oh: s[16], ow: s[17],
            has_bias: s[18], accumulate: s[19],
        };
        for (i, name) in FIELDS.iter().enumerate().take(6) {
            ensure!(s[i] > 0, "conv params: {name} must be positive, got {}", s[i]);
        }
        ensure!(p.has_bias == 0 || p.has_bias == 1, "conv params: has_bias must be 0 or 1, got {}", p.has_bias);
        ensure!(p.accumulate == 0 || p.accumulate == 1, "conv params: accumulate must be 0 or 1, got {}", p.accumulate);
        let elems = [
            p.n as u64 * p.cin as u64 * p.d as u64 * p.h as u64 * p.w as u64,
            p.n as u64 * p.cout as u64 * p.od.max(0) as u64 * p.oh.max(0) as u64 * p.ow.max(0) as u64,
            p.cin as u64 * p.cout as u64 * 27,
        ];
        ensure!(elems.iter().all(|&e| e < (1u64 << 40)), "conv params: tensor sizes overflow ({elems:?} elements)");
        Ok(p)
    }

    /// Parse and validate Conv3d params (kernel 1 or 3 per axis, padding (k-1)/2, stride 1 or 2).
    pub fn from_slice(s: &[i32]) -> NdResult<Conv3dParams> {
        let p = Self::raw(s)?;
        for a in 0..3 {
            let (k, st, pad, i, o) = (s[6 + a], s[9 + a], s[12 + a], s[3 + a], s[15 + a]);
            let (kn, sn, pn, on) = (FIELDS[6 + a], FIELDS[9 + a], FIELDS[12 + a], FIELDS[15 + a]);
            ensure!(k == 1 || k == 3, "conv3d params: {kn} must be 1 or 3, got {k}");
            ensure!(st == 1 || st == 2, "conv3d params: {sn} must be 1 or 2, got {st}");
            ensure!(pad == (k - 1) / 2, "conv3d params: {pn} must be {} for kernel {k}, got {pad}", (k - 1) / 2);
            let want = (i + 2 * pad - k) / st + 1;
            ensure!(o == want, "conv3d params: {on} must be {want} (= ({i} + 2*{pad} - {k})/{st} + 1), got {o}");
        }
        Ok(p)
    }

    /// Parse and validate ConvTranspose3d params (kernel == stride in {1,2} per axis, no padding, o = i*s).
    pub fn from_slice_t(s: &[i32]) -> NdResult<Conv3dParams> {
        let p = Self::raw(s)?;
        for a in 0..3 {
            let (k, st, pad, i, o) = (s[6 + a], s[9 + a], s[12 + a], s[3 + a], s[15 + a]);
            let (kn, sn, pn, on) = (FIELDS[6 + a], FIELDS[9 + a], FIELDS[12 + a], FIELDS[15 + a]);
            ensure!(st == 1 || st == 2, "convt3d params: {sn} must be 1 or 2, got {st}");
            ensure!(k == st, "convt3d params: {kn} must equal the stride {st}, got {k}");
            ensure!(pad == 0, "convt3d params: {pn} must be 0, got {pad}");
            ensure!(o == i * st, "convt3d params: {on} must be {} (= {i}*{st}), got {o}", i * st);
        }
        Ok(p)
    }

    pub fn in_spatial(&self) -> usize {
        self.d as usize * self.h as usize * self.w as usize
    }
    pub fn out_spatial(&self) -> usize {
        self.od as usize * self.oh as usize * self.ow as usize
    }
    pub fn taps(&self) -> usize {
        self.kd as usize * self.kh as usize * self.kw as usize
    }
    /// Elements of the input activation `[N][Cin][D][H][W]`.
    pub fn x_len(&self) -> usize {
        self.n as usize * self.cin as usize * self.in_spatial()
    }
    /// Elements of the output activation `[N][Cout][OD][OH][OW]`.
    pub fn y_len(&self) -> usize {
        self.n as usize * self.cout as usize * self.out_spatial()
    }
    /// Elements of the weight (the same count for conv and convT).
    pub fn w_len(&self) -> usize {
        self.cin as usize * self.cout as usize * self.taps()
    }
    pub fn b_len(&self) -> usize {
        if self.has_bias != 0 { self.cout as usize } else { 0 }
    }
    pub fn accumulate(&self) -> bool {
        self.accumulate != 0
    }
}

fn check_len(name: &str, got: usize, want: usize) -> NdResult<()> {
    if got != want {
        return Err(NdError::new(Status::BufferSize, format!("{name} has {got} elements, expected {want}")));
    }
    Ok(())
}

fn check_ws(ws: &[u8], want: usize) -> NdResult<()> {
    if ws.len() < want {
        return Err(NdError::new(Status::BufferSize, format!("workspace has {} bytes, expected at least {want}", ws.len())));
    }
    Ok(())
}

/// Which convolution the params describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Conv,
    ConvT,
}

fn parse(kind: Kind, params: &[i32]) -> NdResult<Conv3dParams> {
    match kind {
        Kind::Conv => Conv3dParams::from_slice(params),
        Kind::ConvT => Conv3dParams::from_slice_t(params),
    }
}

/// Workspace bytes the three ops of `kind` need for these params (the maximum over them).
pub fn workspace(kind: Kind, params: &[i32]) -> NdResult<u64> {
    let p = parse(kind, params)?;
    Ok(cpu::conv3d::workspace_bytes(kind, &p) as u64)
}

/// Workspace bytes the forward op of `kind` alone needs (inference); at most `workspace`.
pub fn workspace_fwd(kind: Kind, params: &[i32]) -> NdResult<u64> {
    let p = parse(kind, params)?;
    Ok(cpu::conv3d::workspace_bytes_fwd(kind, &p) as u64)
}

/// y (=|+=) conv(x, w) + bias.
pub fn fwd(kind: Kind, params: &[i32], x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], ws: &mut [u8]) -> NdResult<()> {
    let p = parse(kind, params)?;
    check_len("x", x.len(), p.x_len())?;
    check_len("w", w.len(), p.w_len())?;
    check_len("bias", b.len(), p.b_len())?;
    check_len("y", y.len(), p.y_len())?;
    check_ws(ws, cpu::conv3d::workspace_bytes_fwd(kind, &p))?;
    cpu::conv3d::fwd_at(level(), kind, &p, x, w, b, y, ws);
    Ok(())
}

/// dx (=|+=) gradient with respect to the input.
pub fn bwd_data(kind: Kind, params: &[i32], dy: &[f32], w: &[f32], dx: &mut [f32], ws: &mut [u8]) -> NdResult<()> {
    let p = parse(kind, params)?;
    check_len("dy", dy.len(), p.y_len())?;
    check_len("w", w.len(), p.w_len())?;
    check_len("dx", dx.len(), p.x_len())?;
    check_ws(ws, cpu::conv3d::workspace_bytes(kind, &p))?;
    cpu::conv3d::bwd_data_at(level(), kind, &p, dy, w, dx, ws);
    Ok(())
}

/// dw, db (=|+=) gradients with respect to the weight and bias.
pub fn bwd_weight(
    kind: Kind,
    params: &[i32],
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    ws: &mut [u8],
) -> NdResult<()> {
    let p = parse(kind, params)?;
    check_len("x", x.len(), p.x_len())?;
    check_len("dy", dy.len(), p.y_len())?;
    check_len("dw", dw.len(), p.w_len())?;
    check_len("db", db.len(), p.b_len())?;
    check_ws(ws, cpu::conv3d::workspace_bytes(kind, &p))?;
    cpu::conv3d::bwd_weight_at(level(), kind, &p, x, dy, dw, db, ws);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<i32> {
        // n cin cout d h w kd kh kw sd sh sw pd ph pw od oh ow bias acc
        vec![2, 3, 4, 5, 6, 7, 3, 3, 3, 1, 1, 1, 1, 1, 1, 5, 6, 7, 1, 0]
    }

    #[test]
    fn params_validation_names_the_field() {
        assert!(Conv3dParams::from_slice(&base()).is_ok());
        let cases: [(usize, i32, &str); 7] = [
            (1, 0, "cin must be positive"),
            (7, 2, "kh must be 1 or 3"),
            (11, 3, "sw must be 1 or 2"),
            (12, 0, "pd must be 1"),
            (16, 5, "oh must be 6"),
            (18, 2, "has_bias"),
            (19, -1, "accumulate"),
        ];
        for (i, v, msg) in cases {
            let mut s = base();
            s[i] = v;
            let e = Conv3dParams::from_slice(&s).unwrap_err();
            assert!(e.message.contains(msg), "field {i}: {}", e.message);
        }
        let mut s = base();
        s[10] = 2;
        s[16] = 3;
        assert!(Conv3dParams::from_slice(&s).is_ok());
        assert!(Conv3dParams::from_slice(&s[..19]).unwrap_err().message.contains("20 i32"));
        // convT: kernel 2, stride 2, no padding, o = 2i
        let t = [2, 3, 4, 5, 6, 7, 1, 2, 2, 1, 2, 2, 0, 0, 0, 5, 12, 14, 1, 0];
        assert!(Conv3dParams::from_slice_t(&t).is_ok());
        let mut t2 = t;
        t2[7] = 1;
        assert!(Conv3dParams::from_slice_t(&t2).unwrap_err().message.contains("kh must equal the stride 2"));
        let mut t3 = t;
        t3[17] = 13;
        assert!(Conv3dParams::from_slice_t(&t3).unwrap_err().message.contains("ow must be 14"));
    }
}
