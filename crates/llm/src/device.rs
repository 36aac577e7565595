//! Turns the spec's [`domain::Device`] into a Candle device and picks the compute dtype for it:
//! f32 on the CPU (bf16 and f16 matmuls are slower than f32 on the CPUs we run on), bf16 on
//! CUDA. CUDA exists only in builds with the `cuda` cargo feature; this module is the one
//! place that knows.

use candle_core::DType;

use crate::Error;

/// The Candle device for `device`. `Auto` is CUDA 0 when this build has CUDA and a GPU is
/// present, else the CPU.
pub fn select(device: domain::Device) -> Result<candle_core::Device, Error> {
    match device {
        domain::Device::Cpu => Ok(candle_core::Device::Cpu),
        domain::Device::Cuda(n) => {
            if !candle_core::utils::cuda_is_available() {
                return Err(Error::Device {
                    device: device.to_string(),
                    reason: "this build has no CUDA support (rebuild with --features cuda)".into(),
                });
            }
            candle_core::Device::new_cuda(n).map_err(|e| Error::Device {
                device: device.to_string(),
                reason: e.to_string(),
            })
        }
        domain::Device::Auto => {
            if candle_core::utils::cuda_is_available()
                && let Ok(d) = candle_core::Device::new_cuda(0)
            {
                return Ok(d);
            }
            Ok(candle_core::Device::Cpu)
        }
    }
}

/// The dtype weights and activations use on `device`: f32 on the CPU, bf16 on CUDA.
pub fn compute_dtype(device: &candle_core::Device) -> DType {
    if device.is_cuda() {
        DType::BF16
    } else {
        DType::F32
    }
}
