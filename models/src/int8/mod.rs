//! veil's int8 operators for tract: an int8 depthwise convolution and an int8 residual add, so a
//! quantized MobileNet-style backbone runs in integers end to end (tract 0.23 lowers a quantized
//! depthwise conv to im2col and has no integer Add). Plugged in through the ONNX op register for
//! `QLinearConv` (group > 1) and `com.microsoft` `QLinearAdd`.

mod depthwise;
mod kernels;
mod onnx_ops;
mod qadd;

pub use onnx_ops::onnx_with_int8_ops;

use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    static POOL: RefCell<Option<Arc<rayon::ThreadPool>>> = const { RefCell::new(None) };
}

/// Run `f` with `pool` available to veil's int8 ops on this thread. (tract's own multithreaded
/// int8 matrix product is slower than its single-threaded one on small-K convs, so int8 plans run
/// tract single-threaded and spread only veil's depthwise kernel over the pool.)
pub fn with_pool<R>(pool: Option<&Arc<rayon::ThreadPool>>, f: impl FnOnce() -> R) -> R {
    let previous = POOL.with(|p| p.replace(pool.cloned()));
    let out = f();
    POOL.with(|p| *p.borrow_mut() = previous);
    out
}

/// The pool set by [`with_pool`] on this thread, if any.
pub(crate) fn current_pool() -> Option<Arc<rayon::ThreadPool>> {
    POOL.with(|p| p.borrow().clone())
}
