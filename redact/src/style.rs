//! How a region is hidden: method (gaussian, pixelate, solid), shape (rect, ellipse), padding and
//! feather, with validated ranges and defaults that leave a face unrecognisable.

use std::str::FromStr;

/// Default blur strength: the blur sigma is about a fifth of the padded face's shorter side.
pub const DEFAULT_STRENGTH: f32 = 0.6;
/// Default padding: each side grows by 30 % of the box, like deface's mask scale 1.3.
pub const DEFAULT_PADDING: f32 = 0.3;
/// Default feather: a soft fade over 5 % of the shorter side, outside the padded shape.
pub const DEFAULT_FEATHER: f32 = 0.2;

/// The masking operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Blur; `strength` in 0..=1 scales the blur radius with the box size (1 = sigma of a third of
    /// the shorter side). Cost per pixel does not depend on strength.
    Gaussian { strength: f32 },
    /// Mosaic of `block` x `block` pixel tiles; `None` picks a tenth of the shorter side.
    Pixelate { block: Option<u32> },
    /// Fill with one RGB colour.
    Solid { color: [u8; 3] },
}

/// The outline filled inside the padded box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Rect,
    /// The ellipse inscribed in the padded box (faces are roughly elliptical).
    Ellipse,
}

/// Everything that decides how a region is masked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskStyle {
    pub method: Method,
    pub shape: Shape,
    /// Fraction of the box's width (height) added on the left and right (top and bottom), 0..=2.
    pub padding: f32,
    /// Soft edge 0..=1: the mask fades out over `feather` x a quarter of the padded box's shorter
    /// side, *outside* the padded shape, so feathering never uncovers pixels inside it.
    pub feather: f32,
}

impl Default for MaskStyle {
    fn default() -> Self {
        Self {
            method: Method::Gaussian { strength: DEFAULT_STRENGTH },
            shape: Shape::Ellipse,
            padding: DEFAULT_PADDING,
            feather: DEFAULT_FEATHER,
        }
    }
}

/// A style parameter outside its documented range, or an unknown name.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StyleError {
    #[error("unknown method '{0}' (expected gaussian, pixelate or solid)")]
    UnknownMethod(String),
    #[error("unknown shape '{0}' (expected rect or ellipse)")]
    UnknownShape(String),
    #[error("{name} must be between {min} and {max}, got {value}")]
    OutOfRange { name: &'static str, value: f64, min: f64, max: f64 },
    #[error("colour '{0}' is not #RRGGBB")]
    BadColor(String),
}

impl MaskStyle {
    /// Check every parameter against its documented range.
    pub fn validate(&self) -> Result<(), StyleError> {
        check_range("padding", self.padding, 0.0, 2.0)?;
        check_range("feather", self.feather, 0.0, 1.0)?;
        match self.method {
            Method::Gaussian { strength } => check_range("strength", strength, 0.0, 1.0),
            Method::Pixelate { block: Some(b) } => check_range("block", b as f32, 1.0, 4096.0),
            _ => Ok(()),
        }
    }

    /// Width in pixels of the soft fade for a padded shape whose shorter side is `side`.
    pub fn feather_band(&self, side: f32) -> f32 {
        self.feather.clamp(0.0, 1.0) * side * 0.25
    }
}

fn check_range(name: &'static str, value: f32, min: f32, max: f32) -> Result<(), StyleError> {
    if value.is_finite() && value >= min && value <= max {
        Ok(())
    } else {
        Err(StyleError::OutOfRange { name, value: value as f64, min: min as f64, max: max as f64 })
    }
}

impl Method {
    /// Build a method from its name (as the cloud APIs spell them) and an optional strength in
    /// 0..=1: for gaussian it is the blur strength; for pixelate it maps to the block size as a
    /// fraction of the shorter side (strength 1 = 4 blocks across).
    pub fn from_name(name: &str, strength: Option<f32>, color: [u8; 3]) -> Result<Self, StyleError> {
        match name.to_ascii_lowercase().as_str() {
            "gaussian" | "blur" | "gaussian_blur" => {
                let strength = strength.unwrap_or(DEFAULT_STRENGTH);
                check_range("strength", strength, 0.0, 1.0)?;
                Ok(Method::Gaussian { strength })
            }
            "pixelate" | "pixelation" | "mosaic" => {
                if let Some(s) = strength {
                    check_range("strength", s, 0.0, 1.0)?;
                }
                Ok(Method::Pixelate { block: None })
            }
            "solid" | "blackfill" | "fill" => Ok(Method::Solid { color }),
            other => Err(StyleError::UnknownMethod(other.to_string())),
        }
    }
}

impl FromStr for Shape {
    type Err = StyleError;
    fn from_str(s: &str) -> Result<Self, StyleError> {
        match s.to_ascii_lowercase().as_str() {
            "rect" | "rectangle" | "box" => Ok(Shape::Rect),
            "ellipse" | "elliptical" | "oval" | "mask" => Ok(Shape::Ellipse),
            other => Err(StyleError::UnknownShape(other.to_string())),
        }
    }
}

/// Parse `#RRGGBB` (or `RRGGBB`).
pub fn parse_color(s: &str) -> Result<[u8; 3], StyleError> {
    let hex = s.strip_prefix('#').unwrap_or(s);
    let bad = || StyleError::BadColor(s.to_string());
    if hex.len() != 6 || !hex.is_ascii() {
        return Err(bad());
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad());
    Ok([byte(0)?, byte(2)?, byte(4)?])
}
