//! What the APIs call the things veil hides, and which detector category each name means:
//! `faces`/`heads` are faces, `license_plates`/`licenseplates` are licence plates, `qr_codes` and
//! `barcodes` are what the `codes` backend reads, and PiiBlur's `writing`, `street_signs`,
//! `documents` and `name_badges` (veil's `text`) are the lines of text the `text` backend finds,
//! and `people` (MaskIt's `humans`) are the whole people the `persons` backend finds.

use veil_models::{Category, CategorySet, DetectParams};

/// Every name a request may use for a category veil detects, with that category.
const NAMES: &[(&str, Category)] = &[
    ("faces", Category::Face),
    ("face", Category::Face),
    ("heads", Category::Face),
    ("license_plates", Category::LicensePlate),
    ("licenseplates", Category::LicensePlate),
    ("license_plate", Category::LicensePlate),
    ("plates", Category::LicensePlate),
    ("qr_codes", Category::QrCode),
    ("qr_code", Category::QrCode),
    ("qrcodes", Category::QrCode),
    ("barcodes", Category::Barcode),
    ("barcode", Category::Barcode),
    ("text", Category::Text),
    ("writing", Category::Text),
    ("street_signs", Category::Text),
    ("documents", Category::Text),
    ("name_badges", Category::Text),
    ("people", Category::Person),
    ("persons", Category::Person),
    ("person", Category::Person),
    ("humans", Category::Person),
];

/// The detector category an API name means (case-insensitive), if veil knows it.
pub fn category_of(name: &str) -> Option<Category> {
    let name = name.trim().to_ascii_lowercase();
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// The categories named by `names`; an empty list means faces (what every job meant before
/// plates existed, and what the face-only API styles ask for). Errors name the unknown name.
pub fn category_set(names: &[String]) -> Result<CategorySet, String> {
    if names.is_empty() {
        return Ok([Category::Face].into_iter().collect());
    }
    names
        .iter()
        .map(|n| category_of(n).ok_or_else(|| format!("unknown category '{n}'")))
        .collect::<Result<CategorySet, String>>()
}

/// Whether a camera detecting with `params` on a backend finding `available` is sound: every
/// category it asks for can be found, and it masks faces unless `camera.categories` says
/// otherwise (a plates-only backend must not silently stop face masking on a street-view rig).
pub fn check_camera(params: &DetectParams, available: &[Category]) -> Result<(), String> {
    params.wanted(available).map_err(|e| format!("camera.categories: {e}"))?;
    if params.categories.is_none() && !available.contains(&Category::Face) {
        return Err("the backend finds no faces, so the camera would mask none; set camera.categories \
                    (e.g. [\"license_plates\"]) to mean that"
            .into());
    }
    Ok(())
}

/// What a camera masks when `camera.categories` is empty: the faces and licence plates of what
/// its backend finds. Codes (and any costlier category) run on camera frames only when named:
/// the daemon's one backend also serves uploads, which ask for them per request.
pub fn camera_default(available: &[Category]) -> CategorySet {
    available.iter().copied().filter(|c| matches!(c, Category::Face | Category::LicensePlate)).collect()
}

/// `params` for the camera: its categories as configured, else [`camera_default`].
pub fn camera_params(params: DetectParams, available: &[Category]) -> DetectParams {
    DetectParams { categories: params.categories.or(Some(camera_default(available))), ..params }
}

/// The PiiBlur-style names of what a detector finding `available` can hide.
pub fn api_names(available: &[Category]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for c in available {
        match c {
            Category::Face => out.extend(["heads", "faces"]),
            Category::LicensePlate => out.push("license_plates"),
            Category::QrCode => out.push("qr_codes"),
            Category::Barcode => out.push("barcodes"),
            Category::Text => out.extend(["writing", "street_signs", "documents", "name_badges"]),
            Category::Person => out.push("people"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_categories() {
        assert_eq!(category_of("Faces"), Some(Category::Face));
        assert_eq!(category_of("licenseplates"), Some(Category::LicensePlate));
        assert_eq!(category_of("license_plates"), Some(Category::LicensePlate));
        assert_eq!(category_of("tattoos"), None);
        let set = category_set(&["heads".into(), "license_plates".into()]).unwrap();
        assert!(set.contains(Category::Face) && set.contains(Category::LicensePlate));
        let faces = category_set(&[]).unwrap();
        assert!(faces.contains(Category::Face) && !faces.contains(Category::LicensePlate));
        assert_eq!(category_of("QR_codes"), Some(Category::QrCode));
        assert_eq!(category_of("barcodes"), Some(Category::Barcode));
        assert_eq!(category_set(&["tattoos".into()]).unwrap_err(), "unknown category 'tattoos'");
        assert_eq!(api_names(&[Category::Face, Category::LicensePlate]), ["heads", "faces", "license_plates"]);
        assert_eq!(api_names(&[Category::QrCode, Category::Barcode]), ["qr_codes", "barcodes"]);
        assert_eq!(category_of("street_signs"), Some(Category::Text));
        assert_eq!(api_names(&[Category::Text]), ["writing", "street_signs", "documents", "name_badges"]);
        assert_eq!(category_of("humans"), Some(Category::Person));
        assert_eq!(api_names(&[Category::Person]), ["people"]);
    }

    #[test]
    fn a_camera_masks_faces_unless_told_otherwise() {
        let all = DetectParams::default();
        assert!(check_camera(&all, &[Category::Face, Category::LicensePlate]).is_ok());
        assert!(check_camera(&all, &[Category::LicensePlate]).unwrap_err().contains("no faces"));
        let plates = DetectParams { categories: Some(category_set(&["license_plates".into()]).unwrap()), ..all };
        assert!(check_camera(&plates, &[Category::LicensePlate]).is_ok());
        assert!(check_camera(&plates, &[Category::Face]).unwrap_err().contains("camera.categories"));
    }

    #[test]
    fn a_camera_reads_codes_only_when_told_to() {
        let all = Category::ALL;
        let params = camera_params(DetectParams::default(), &all).categories.unwrap();
        assert_eq!(params.iter().collect::<Vec<_>>(), [Category::Face, Category::LicensePlate]);
        let codes = DetectParams { categories: Some(category_set(&["qr_codes".into()]).unwrap()), ..DetectParams::default() };
        assert_eq!(camera_params(codes, &all).categories, codes.categories);
    }
}
