//! veil's int8 operators for tract: an int8 depthwise convolution and an int8 residual add, so a
//! quantized MobileNet-style backbone runs in integers end to end (tract 0.23 lowers a quantized
//! depthwise conv to im2col and has no integer Add). Plugged in through the ONNX op register for
//! `QLinearConv` (group > 1) and `com.microsoft` `QLinearAdd`.

mod depthwise;
mod kernels;
mod onnx_ops;
mod qadd;

pub use onnx_ops::onnx_with_int8_ops;
