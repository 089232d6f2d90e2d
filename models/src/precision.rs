//! Numeric precision of a model: int8, fp32, or auto (time both at load, keep the faster).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::DetectError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Int8,
    Fp32,
    Auto,
}

impl Precision {
    pub fn as_str(&self) -> &'static str {
        match self {
            Precision::Int8 => "int8",
            Precision::Fp32 => "fp32",
            Precision::Auto => "auto",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = DetectError;
    fn from_str(s: &str) -> Result<Self, DetectError> {
        match s.to_ascii_lowercase().as_str() {
            "int8" | "i8" => Ok(Precision::Int8),
            "fp32" | "f32" | "float" => Ok(Precision::Fp32),
            "auto" => Ok(Precision::Auto),
            other => Err(DetectError::InvalidParam(format!("precision '{other}': expected int8, fp32 or auto"))),
        }
    }
}
