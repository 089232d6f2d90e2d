//! What the APIs call the things veil hides, and which detector category each name means:
//! `faces`/`heads` are faces, `license_plates`/`licenseplates` are licence plates.

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

/// The PiiBlur-style names of what a detector finding `available` can hide.
pub fn api_names(available: &[Category]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for c in available {
        match c {
            Category::Face => out.extend(["heads", "faces"]),
            Category::LicensePlate => out.push("license_plates"),
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
        assert_eq!(category_set(&["qr_codes".into()]).unwrap_err(), "unknown category 'qr_codes'");
        assert_eq!(api_names(&[Category::Face, Category::LicensePlate]), ["heads", "faces", "license_plates"]);
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
}
