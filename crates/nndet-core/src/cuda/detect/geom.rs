//! `#[repr(C)]` argument structs of the detection launchers (read by the launcher on the host; the C side
//! static_asserts the same sizes) and the launchers themselves (cuda/detect_*.cu).
use super::{MAX_LEVELS, MAX_SIZES};
use std::os::raw::c_void;

#[repr(C)]
pub struct PairGeom {
    pub n: i64,
    pub m: i64,
    pub kind: i32,
    pub eps: f32,
}

#[repr(C)]
pub struct ClipGeom {
    pub n: i64,
    pub shape: [f32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct AnchorLevel {
    pub start: i64,
    pub nw: i32,
    pub nh: i32,
    pub nd: i32,
    pub size_off: i32,
    pub fmap: [i32; 3],
    pub stride: [i32; 3],
}

#[repr(C)]
pub struct AnchorGeom {
    pub levels: i32,
    pub n_sizes: i32,
    pub sizes: [f32; MAX_SIZES],
    pub lv: [AnchorLevel; MAX_LEVELS],
}

#[repr(C)]
pub struct CoderGeom {
    pub n: i64,
    pub w: [f32; 6],
    pub clip: f32,
}

#[repr(C)]
#[derive(Default)]
pub struct NmsGeom {
    pub n: i64,
    pub n_pad: i64,
    pub cbn: i32,
    pub wbc: i32,
    pub thr: f32,
    pub score_thr: f32,
    pub boxes: u64,
    pub scores: u64,
    pub labels: u64,
    pub weights: u64,
    pub n_exp: u64,
    pub keys: u64,
    pub sbox: u64,
    pub svol: u64,
    pub slab: u64,
    pub step: u64,
    pub mask: u64,
    pub ranks: u64,
    pub owner: u64,
    pub nkept: u64,
    pub rec_box: u64,
    pub rec_score: u64,
    pub keys2: u64,
    pub keep: u64,
    pub count: u64,
    pub out_boxes: u64,
    pub out_scores: u64,
    pub out_labels: u64,
}

#[repr(C)]
#[derive(Default)]
pub struct AtssGeom {
    pub g: i64,
    pub a: i64,
    pub levels: i32,
    pub k_total: i32,
    pub start: [i64; MAX_LEVELS],
    pub count: [i64; MAX_LEVELS],
    pub k: [i32; MAX_LEVELS],
    pub center_in_gt: i32,
    pub per_loc: i32,
    pub gt: u64,
    pub anchors: u64,
    pub matches: u64,
    pub cand: u64,
    pub cand_iou: u64,
    pub best: u64,
    pub grouped: u64,
}

#[repr(C)]
pub struct BceGeom {
    pub rows: i64,
    pub c: i32,
    pub pad_: i32,
    pub logits: u64,
    pub labels: u64,
    pub grad: u64,
    pub partials: u64,
    pub loss: u64,
}

#[repr(C)]
pub struct GiouGeom {
    pub n: i64,
    pub eps: f64,
    pub pred: u64,
    pub target: u64,
    pub giou: u64,
    pub grad: u64,
    pub partials: u64,
    pub loss: u64,
}

#[repr(C)]
pub struct HeadGeom {
    pub a: i64,
    pub c: i32,
    pub n_pos: i32,
    pub n_neg: i32,
    pub pad_: i32,
    pub w: [f64; 6],
    pub clip: f64,
    pub logits: u64,
    pub deltas: u64,
    pub anchors: u64,
    pub labels: u64,
    pub matched_gt: u64,
    pub pos: u64,
    pub neg: u64,
    pub grad_logits: u64,
    pub grad_deltas: u64,
    pub partials: u64,
    pub losses: u64,
}

#[repr(C)]
pub struct SegGeom {
    pub b: i64,
    pub v: i64,
    pub batch_dice: i32,
    pub nblk: i32,
    pub w_ce: f64,
    pub w_dice: f64,
    pub logits: u64,
    pub target: u64,
    pub grad: u64,
    pub partials: u64,
    pub coef: u64,
    pub losses: u64,
}

#[repr(C)]
#[derive(Default)]
pub struct TopkGeom {
    pub n: i64,
    pub k: i64,
    pub k_pad: i64,
    pub mode: i32,
    pub c: i32,
    pub thr: f32,
    pub pad_: i32,
    pub scores: u64,
    pub labels: u64,
    pub hist: u64,
    pub state: u64,
    pub slot: u64,
    pub keys: u64,
    pub out_scores: u64,
    pub out_idx: u64,
    pub count: u64,
}

#[repr(C)]
#[derive(Default)]
pub struct PostGeom {
    pub a: i64,
    pub c: i32,
    pub decoded: i32,
    pub k: i64,
    pub dpi: i64,
    pub w: [f32; 6],
    pub clip: f32,
    pub shape: [f32; 3],
    pub min_size: f32,
    pub pad_: f32,
    pub boxes: u64,
    pub anchors: u64,
    pub pbox: u64,
    pub pscore: u64,
    pub plabel: u64,
    pub out_boxes: u64,
    pub out_scores: u64,
    pub out_labels: u64,
    pub count: u64,
    pub topk: TopkGeom,
    pub nms: NmsGeom,
}

// The C side asserts the same sizes (static_assert next to each struct).
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<PairGeom>() == 24 && size_of::<ClipGeom>() == 24);
    assert!(size_of::<AnchorGeom>() == 776 && size_of::<CoderGeom>() == 40);
    assert!(size_of::<NmsGeom>() == 208 && size_of::<AtssGeom>() == 248);
    assert!(size_of::<BceGeom>() == 56 && size_of::<GiouGeom>() == 64);
    assert!(size_of::<HeadGeom>() == 168 && size_of::<SegGeom>() == 88);
    assert!(size_of::<TopkGeom>() == 112 && size_of::<PostGeom>() == 472);
};

launchers! { pub struct DetectKernels {
    fn det_pairwise(a: *const f32, b: *const f32, out: *mut f32, g: *const PairGeom, stream: *mut c_void);
    fn det_elementwise(a: *const f32, b: *const f32, out: *mut f32, g: *const PairGeom, stream: *mut c_void);
    fn det_areas_centers(b: *const f32, areas: *mut f32, centers: *mut f32, n: i64, stream: *mut c_void);
    fn det_clip(b: *mut f32, g: *const ClipGeom, stream: *mut c_void);
    fn det_remove_small(b: *const f32, n: i64, min_size: f32, keep: *mut i32, count: *mut i32, stream: *mut c_void);
    fn det_anchors(out: *mut f32, g: *const AnchorGeom, stream: *mut c_void);
    fn det_encode(gt: *const f32, anchors: *const f32, out: *mut f32, g: *const CoderGeom, stream: *mut c_void);
    fn det_decode(d: *const f32, anchors: *const f32, out: *mut f32, g: *const CoderGeom, stream: *mut c_void);
    fn det_nms(g: *const NmsGeom, stream: *mut c_void);
    fn det_wbc(g: *const NmsGeom, stream: *mut c_void);
    fn det_atss(g: *const AtssGeom, stream: *mut c_void);
    fn det_bce(g: *const BceGeom, stream: *mut c_void);
    fn det_giou_loss(g: *const GiouGeom, stream: *mut c_void);
    fn det_head_loss(g: *const HeadGeom, stream: *mut c_void);
    fn det_seg_loss(g: *const SegGeom, stream: *mut c_void);
    fn det_topk(g: *const TopkGeom, stream: *mut c_void);
    fn det_postprocess(g: *const PostGeom, stream: *mut c_void);
} }

