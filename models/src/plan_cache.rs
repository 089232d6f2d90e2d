//! Optimized tract plans, one per network input shape, built on first use and kept (bounded).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use crate::error::DetectError;

pub type Plan = Arc<TypedRunnableModel>;

/// How many distinct input shapes keep a plan; the oldest is dropped beyond this.
const MAX_PLANS: usize = 8;

/// Builds and caches one optimized plan per `(width, height)` of the network input.
pub struct PlanCache {
    model: InferenceModel,
    options: RunOptions,
    plans: Mutex<VecDeque<((u32, u32), Plan)>>,
}

impl PlanCache {
    pub fn new(model: InferenceModel, options: RunOptions) -> Self {
        Self { model, options, plans: Mutex::new(VecDeque::new()) }
    }

    /// The plan for a `[1, 3, h, w]` input, optimizing the model for that shape only once.
    pub fn get(&self, w: u32, h: u32) -> Result<Plan, DetectError> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, plan)) = plans.iter().find(|(k, _)| *k == (w, h)) {
            return Ok(plan.clone());
        }
        let plan = self.build(w, h)?;
        if plans.len() >= MAX_PLANS {
            plans.pop_front();
        }
        plans.push_back(((w, h), plan.clone()));
        Ok(plan)
    }

    /// Number of shapes with a cached plan.
    pub fn len(&self) -> usize {
        self.plans.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// The optimized typed model for a shape (for inspection: op names, kernels).
    pub fn optimized_model(&self, w: u32, h: u32) -> Result<TypedModel, DetectError> {
        let mut model = self.model.clone().with_input_fact(0, f32::fact([1, 3, h as usize, w as usize]).into())?;
        let outputs = model.output_outlets()?.len();
        for i in 0..outputs {
            model.set_output_fact(i, InferenceFact::default())?;
        }
        Ok(model.into_optimized()?)
    }

    fn build(&self, w: u32, h: u32) -> Result<Plan, DetectError> {
        let optimized = self.optimized_model(w, h)?;
        Ok(optimized.into_runnable_with_options(&self.options)?)
    }
}
