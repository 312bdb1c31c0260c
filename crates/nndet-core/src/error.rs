//! Status codes, the thread-local last error, and `guard()`: the one way an exported C ABI function runs
//! its body. A Rust error or a panic becomes an `i32` status plus a message kept per thread; nothing unwinds
//! across the C ABI. `nd_last_error(buf, cap)` copies the message out (see lib.rs).
//!
//! The numeric values are part of the ABI: `src/native/errors.ts` mirrors them and a test compares both.

use std::cell::RefCell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

/// Status codes returned by every `nd_*` function. 0 is success.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    /// An argument is out of range or inconsistent with another (shape mismatch, zero size, bad enum).
    InvalidArgument = 1,
    /// A required pointer was null.
    NullPointer = 2,
    /// A buffer's byte length does not match what its shape needs.
    BufferSize = 3,
    /// An allocation failed.
    OutOfMemory = 4,
    /// This build has no CUDA backend (built without nvcc, or with NDET_CUDA=0).
    NoCuda = 5,
    /// The CUDA runtime reported an error (message carries cudaGetErrorString).
    Cuda = 6,
    /// A panic inside Rust was caught at the ABI boundary (a bug in nndet).
    Panic = 7,
    /// Anything else that went wrong inside a kernel.
    Internal = 8,
}

/// An error inside the core: a status and a human-readable message.
#[derive(Debug, Clone)]
pub struct NdError {
    pub status: Status,
    pub message: String,
}

impl NdError {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        NdError { status, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Status::InvalidArgument, message)
    }
}

impl fmt::Display for NdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.status, self.message)
    }
}

pub type NdResult<T> = Result<T, NdError>;

/// Early-return an InvalidArgument error when a condition fails.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !($cond) {
            return Err($crate::error::NdError::invalid(format!($($fmt)+)));
        }
    };
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
    static PANIC_MSG: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Replace the default panic hook (which prints to stderr) by one that records the message and location
/// in a thread-local, so `guard()` can report it as the error message.
fn install_panic_hook() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload();
            let msg = if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "unknown panic payload".to_string()
            };
            let loc = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            // NOTE: the hook is process-wide: in the test binary a failing assertion would otherwise print nothing.
            if cfg!(test) {
                eprintln!("panicked: {msg}{loc}");
            }
            PANIC_MSG.with(|p| *p.borrow_mut() = Some(format!("{msg}{loc}")));
        }));
    });
}

pub fn set_last_error(message: &str) {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        e.push_str(message);
    });
}

pub fn last_error() -> String {
    LAST_ERROR.with(|e| e.borrow().clone())
}

/// Take the message recorded by the panic hook on this thread (used by the pool to forward worker panics).
pub fn take_panic_message() -> Option<String> {
    PANIC_MSG.with(|p| p.borrow_mut().take())
}

/// Run an exported function's body: Ok -> 0; Err -> its status, message kept; panic -> Status::Panic.
pub fn guard<F: FnOnce() -> NdResult<()>>(op: &str, body: F) -> i32 {
    install_panic_hook();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => Status::Ok as i32,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status as i32
        }
        Err(_) => {
            let msg = take_panic_message().unwrap_or_else(|| "panic".to_string());
            set_last_error(&format!("internal panic in {op}: {msg}"));
            Status::Panic as i32
        }
    }
}

/// Install the quiet panic hook for code paths (tests, pool workers) that catch panics outside `guard()`.
pub fn ensure_panic_hook() {
    install_panic_hook();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_maps_ok_err_and_panic() {
        assert_eq!(guard("t", || Ok(())), 0);
        assert_eq!(guard("t", || Err(NdError::invalid("bad shape"))), Status::InvalidArgument as i32);
        assert_eq!(last_error(), "bad shape");
        let code = guard("boom_op", || panic!("kaboom {}", 42));
        assert_eq!(code, Status::Panic as i32);
        let msg = last_error();
        assert!(msg.contains("boom_op") && msg.contains("kaboom 42"), "{msg}");
    }

    #[test]
    fn ensure_macro_returns_invalid() {
        fn f(x: i32) -> NdResult<()> {
            ensure!(x > 0, "x must be positive, got {x}");
            Ok(())
        }
        assert!(f(1).is_ok());
        let e = f(-2).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument);
        assert_eq!(e.message, "x must be positive, got -2");
    }
}
