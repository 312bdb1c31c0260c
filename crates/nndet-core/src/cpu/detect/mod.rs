//! Detection kernels (nnDetection's nndet/core/boxes, matcher, sampler, losses, inference/detection).
//! Boxes are `(x1, y1, x2, y2, z1, z2)` f32 over array axes 0, 1, 2 (spec §5.0): sizes and IoU are
//! continuous (no +1); an instance spanning voxels a..b gets edges [a-1, b+1]. Each file names the
//! nnDetection function it mirrors; operation order follows it so f32 results agree to the last ulp where
//! practical.
pub mod anchors;
pub mod atss;
pub mod boxes;
pub mod instances;
pub mod loss;
pub mod nms;
pub mod postprocess;
pub mod sampler;
pub mod seg_loss;
pub mod select;
pub mod wbc;
