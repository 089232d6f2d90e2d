//! The detection result types shared by every backend.

use serde::Serialize;

/// What kind of personal information a detection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Face,
    LicensePlate,
    QrCode,
    Barcode,
    Text,
    Person,
}

impl Category {
    pub const ALL: [Category; 6] =
        [Category::Face, Category::LicensePlate, Category::QrCode, Category::Barcode, Category::Text, Category::Person];

    pub fn as_str(&self) -> &'static str {
        match self {
            Category::Face => "face",
            Category::LicensePlate => "license_plate",
            Category::QrCode => "qr_code",
            Category::Barcode => "barcode",
            Category::Text => "text",
            Category::Person => "person",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of categories (which ones a call asks for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CategorySet(u8);

impl CategorySet {
    pub fn contains(&self, c: Category) -> bool {
        self.0 & c.bit() != 0
    }
    pub fn insert(&mut self, c: Category) {
        self.0 |= c.bit();
    }
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = Category> + '_ {
        Category::ALL.into_iter().filter(|c| self.contains(*c))
    }
}

impl FromIterator<Category> for CategorySet {
    fn from_iter<I: IntoIterator<Item = Category>>(iter: I) -> Self {
        let mut set = CategorySet::default();
        for c in iter {
            set.insert(c);
        }
        set
    }
}

/// A point in source pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

/// An axis-aligned box in source pixels: `x1 <= x2`, `y1 <= y2`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BBox {
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }
    /// Area of the overlap with `other` (0 when they do not overlap).
    pub fn intersection_area(&self, other: &BBox) -> f32 {
        let iw = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let ih = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        iw * ih
    }
    /// The smallest box covering both.
    pub fn union(&self, other: &BBox) -> BBox {
        BBox { x1: self.x1.min(other.x1), y1: self.y1.min(other.y1), x2: self.x2.max(other.x2), y2: self.y2.max(other.y2) }
    }
    /// Intersection over union with `other` (0 when either is empty).
    pub fn iou(&self, other: &BBox) -> f32 {
        let inter = self.intersection_area(other);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }
}

/// One detected object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    pub category: Category,
    pub bbox: BBox,
    pub score: f32,
    /// Five facial landmarks (left eye, right eye, nose, left and right mouth corner) for faces.
    pub landmarks: Option<[Point; 5]>,
}
