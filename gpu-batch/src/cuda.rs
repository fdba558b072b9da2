//! The CUDA plumbing both GPU paths share (feature `cuda`): probing for a driver and devices,
//! opening a device (context, stream, cuBLAS handle), compiling CUDA C with NVRTC, and the
//! one error type, [`CudaError`], that the encoder's and the scorer's GPU paths report.
//!
//! cudarc loads libcuda, libcublas and libnvrtc when first used, so this builds without a CUDA
//! install; [`device_count`] looks for the driver library first, because a missing library
//! would otherwise abort the process.

use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaStream};
use cudarc::nvrtc::Ptx;

#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("no CUDA driver library on this machine")]
    NoDriver,
    #[error("no CUDA device visible")]
    NoDevice,
    #[error("CUDA driver: {0}")]
    Driver(String),
    #[error("cuBLAS: {0}")]
    Blas(String),
    #[error("NVRTC could not compile the kernels: {0}")]
    Compile(String),
}

/// A driver-API failure as a [`CudaError`].
pub(crate) fn driver(e: impl std::fmt::Debug) -> CudaError {
    CudaError::Driver(format!("{e:?}"))
}

/// A cuBLAS failure as a [`CudaError`].
pub(crate) fn cublas(e: impl std::fmt::Debug) -> CudaError {
    CudaError::Blas(format!("{e:?}"))
}

/// Visible CUDA devices, or why there are none. Never panics.
pub fn device_count() -> Result<usize, CudaError> {
    // SAFETY: only looks for the driver library; loads nothing if it is absent.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(CudaError::NoDriver);
    }
    match CudaContext::device_count().map_err(driver)? {
        n if n > 0 => Ok(n as usize),
        _ => Err(CudaError::NoDevice),
    }
}

/// How many devices to use when asked for at most `max_devices` (0 = all visible ones).
pub(crate) fn devices_to_use(max_devices: usize) -> Result<usize, CudaError> {
    let visible = device_count()?;
    Ok(match max_devices {
        0 => visible,
        n => n.min(visible),
    })
}

/// One GPU opened for work: its context, its default stream and a cuBLAS handle on that
/// stream.
pub(crate) struct OpenDevice {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub blas: CudaBlas,
}

impl OpenDevice {
    pub(crate) fn new(ordinal: usize) -> Result<Self, CudaError> {
        let ctx = CudaContext::new(ordinal).map_err(driver)?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(cublas)?;
        Ok(Self { ctx, stream, blas })
    }
}

/// Compiles CUDA C `source` to PTX. Needs only libnvrtc, no GPU.
pub(crate) fn compile(source: &str) -> Result<Ptx, CudaError> {
    cudarc::nvrtc::compile_ptx(source).map_err(|e| CudaError::Compile(format!("{e:?}")))
}
