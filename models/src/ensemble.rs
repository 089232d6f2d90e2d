//! Several backends as one detector (e.g. `centerface+plates`): each call runs the members that
//! find a requested category, on the same image, and returns their detections together.

use std::sync::Arc;

use crate::detection::Category;
use crate::error::DetectError;
use crate::params::DetectParams;
use crate::preprocess::RgbImage;
use crate::registry::BackendInfo;
use crate::{DetectOutput, Detector, StageTimings};

pub struct Ensemble {
    info: BackendInfo,
    members: Vec<Arc<dyn Detector>>,
}

impl Ensemble {
    /// An ensemble of `members` (at least one); its facts join theirs with `+`.
    pub fn new(members: Vec<Arc<dyn Detector>>) -> Result<Self, DetectError> {
        let first = members.first().ok_or_else(|| DetectError::UnknownBackend(String::new()))?.info().clone();
        let join = |f: fn(&BackendInfo) -> &str| members.iter().map(|m| f(m.info())).collect::<Vec<_>>().join("+");
        let mut categories: Vec<Category> = Vec::new();
        for m in &members {
            for c in &m.info().categories {
                if !categories.contains(c) {
                    categories.push(*c);
                }
            }
        }
        let info = BackendInfo {
            name: join(|i| &i.name),
            version: join(|i| &i.version),
            categories,
            sha256: join(|i| &i.sha256),
            ..first
        };
        Ok(Self { info, members })
    }

    pub fn members(&self) -> &[Arc<dyn Detector>] {
        &self.members
    }
}

impl Detector for Ensemble {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn detect(&self, image: &RgbImage<'_>, params: &DetectParams) -> Result<DetectOutput, DetectError> {
        let wanted = params.wanted(&self.info.categories)?;
        let mut out = DetectOutput::default();
        let mut timings = StageTimings::default();
        for member in &self.members {
            let mine: Vec<Category> = member.info().categories.iter().copied().filter(|c| wanted.contains(*c)).collect();
            if mine.is_empty() {
                continue;
            }
            let call = DetectParams { categories: Some(mine.into_iter().collect()), ..*params };
            let got = member.detect(image, &call)?;
            if out.detections.is_empty() && out.network_input == (0, 0) {
                out.network_input = got.network_input;
            }
            out.detections.extend(got.detections);
            timings.preprocess_ms += got.timings.preprocess_ms;
            timings.inference_ms += got.timings.inference_ms;
            timings.postprocess_ms += got.timings.postprocess_ms;
        }
        out.timings = timings;
        Ok(out)
    }
}
