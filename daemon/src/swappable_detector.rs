//! A detector handle whose backend can be replaced while the daemon runs (the `backend/set`
//! command): holders keep one handle, and every call goes to whichever backend is current.

use std::sync::{Arc, RwLock};

use veil_models::{BackendInfo, DetectError, DetectOutput, DetectParams, Detector, RgbImage};

pub struct SwappableDetector {
    current: RwLock<Arc<dyn Detector>>,
    /// [`Detector::info`] hands out a reference, so each backend's facts are kept for the life
    /// of the process: one small record per switch.
    info: RwLock<&'static BackendInfo>,
}

impl SwappableDetector {
    pub fn new(detector: Arc<dyn Detector>) -> Arc<Self> {
        let info = Box::leak(Box::new(detector.info().clone()));
        Arc::new(Self { current: RwLock::new(detector), info: RwLock::new(info) })
    }

    pub fn current(&self) -> Arc<dyn Detector> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Make `detector` current; calls already running finish on the old one.
    pub fn replace(&self, detector: Arc<dyn Detector>) {
        let info = Box::leak(Box::new(detector.info().clone()));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = detector;
        *self.info.write().unwrap_or_else(|p| p.into_inner()) = info;
    }
}

impl Detector for SwappableDetector {
    fn info(&self) -> &BackendInfo {
        *self.info.read().unwrap_or_else(|p| p.into_inner())
    }

    fn detect(&self, image: &RgbImage<'_>, params: &DetectParams) -> Result<DetectOutput, DetectError> {
        self.current().detect(image, params)
    }
}
