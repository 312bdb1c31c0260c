//! Element types crossing the ABI. The numeric codes are part of the ABI (mirrored in
//! `src/native/ops.ts#DType`).

#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    U8 = 0,
    I8 = 1,
    I16 = 2,
    U16 = 3,
    I32 = 4,
    U32 = 5,
    F32 = 6,
    F64 = 7,
}

impl DType {
    pub fn from_code(code: i32) -> Option<DType> {
        Some(match code {
            0 => DType::U8,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::U16,
            4 => DType::I32,
            5 => DType::U32,
            6 => DType::F32,
            7 => DType::F64,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}
