//! Licence plates: one label file per photo (`NAME.txt`: `file<TAB>x<TAB>y<TAB>w<TAB>h<TAB>TEXT`,
//! one line per plate) in a folder per region. A plate counts as masked when the masks cover
//! its characters: at least `min_cover` of the plate box's inner part, where the characters are
//! (the labelled box less 8 % of its width on each side and 15 % of its height top and bottom,
//! which is the plate's rim). A mask box is a true positive when at least 30 % of it lies on a
//! labelled plate; photos may show plates nobody labelled, so precision is a lower bound.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{area, intersection, Box4};

#[derive(Debug, Clone)]
pub struct LabelledPlate {
    pub bbox: Box4,
    pub text: String,
}

/// A photo and its labelled plates.
#[derive(Debug, Clone)]
pub struct PlatePhoto {
    pub region: String,
    pub image: PathBuf,
    pub plates: Vec<LabelledPlate>,
}

/// Read `LINE`s of one label file; `dir` is where the named photos are.
pub fn read_label_file(text: &str, dir: &Path, region: &str) -> anyhow::Result<Vec<PlatePhoto>> {
    let mut photos: Vec<PlatePhoto> = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let num = |k: usize| -> anyhow::Result<f32> {
            f.get(k).and_then(|s| s.trim().parse().ok()).ok_or_else(|| anyhow::anyhow!("line {}: bad plate label {line:?}", i + 1))
        };
        let name = f.first().map(|s| s.trim()).filter(|s| !s.is_empty()).ok_or_else(|| anyhow::anyhow!("line {}: no file", i + 1))?;
        let (x, y, w, h) = (num(1)?, num(2)?, num(3)?, num(4)?);
        let plate = LabelledPlate { bbox: [x, y, x + w, y + h], text: f.get(5).map_or(String::new(), |t| t.trim().to_string()) };
        let image = dir.join(name);
        match photos.iter_mut().find(|p| p.image == image) {
            Some(p) => p.plates.push(plate),
            None => photos.push(PlatePhoto { region: region.to_string(), image, plates: vec![plate] }),
        }
    }
    Ok(photos)
}

/// Every labelled photo under `root`: `root/REGION/*.txt` (or `root/*.txt`, region `all`).
pub fn read_set(root: &Path) -> anyhow::Result<Vec<PlatePhoto>> {
    let mut dirs: Vec<(String, PathBuf)> = std::fs::read_dir(root)?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    if dirs.is_empty() {
        dirs.push(("all".into(), root.to_path_buf()));
    }
    dirs.sort();
    let mut out = Vec::new();
    for (region, dir) in dirs {
        let mut labels: Vec<PathBuf> =
            std::fs::read_dir(&dir)?.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "txt")).collect();
        labels.sort();
        for label in labels {
            let text = std::fs::read_to_string(&label)?;
            out.extend(read_label_file(&text, &dir, &region).map_err(|e| anyhow::anyhow!("{}: {e}", label.display()))?);
        }
    }
    Ok(out)
}

/// Where a plate's characters are: the labelled box without its rim.
pub fn characters(plate: Box4) -> Box4 {
    let (w, h) = (plate[2] - plate[0], plate[3] - plate[1]);
    [plate[0] + 0.08 * w, plate[1] + 0.15 * h, plate[2] - 0.08 * w, plate[3] - 0.15 * h]
}

/// The share of `target` covered by the union of `masks`, on a grid of at most 200 x 200 cells.
pub fn covered(target: Box4, masks: &[Box4]) -> f64 {
    let (w, h) = (target[2] - target[0], target[3] - target[1]);
    if w <= 0.0 || h <= 0.0 {
        return 0.0;
    }
    let (nx, ny) = ((w.ceil() as usize).clamp(1, 200), (h.ceil() as usize).clamp(1, 200));
    let mut hit = 0usize;
    for j in 0..ny {
        let y = target[1] + (j as f32 + 0.5) * h / ny as f32;
        for i in 0..nx {
            let x = target[0] + (i as f32 + 0.5) * w / nx as f32;
            if masks.iter().any(|m| x >= m[0] && x <= m[2] && y >= m[1] && y <= m[3]) {
                hit += 1;
            }
        }
    }
    hit as f64 / (nx * ny) as f64
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct PlateScore {
    pub region: String,
    pub photos: usize,
    pub plates: usize,
    /// Plates with every character under a mask (see the module's definition).
    pub fully_masked: usize,
    pub fully_masked_share: f64,
    /// Plates with at least half their box under a mask.
    pub half_covered: usize,
    pub mask_boxes: usize,
    pub true_positive_boxes: usize,
    pub precision: f64,
    /// The photos whose plates are not fully masked.
    pub missed: Vec<String>,
}

/// Score the mask boxes of each photo (already padded as the masks would be).
pub fn score(region: &str, photos: &[(&PlatePhoto, Vec<Box4>)], min_cover: f64) -> PlateScore {
    let mut s = PlateScore { region: region.to_string(), photos: photos.len(), ..Default::default() };
    for (photo, masks) in photos {
        for plate in &photo.plates {
            s.plates += 1;
            if covered(characters(plate.bbox), masks) >= min_cover {
                s.fully_masked += 1;
            } else {
                let name = photo.image.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
                s.missed.push(name);
            }
            if covered(plate.bbox, masks) >= 0.5 {
                s.half_covered += 1;
            }
        }
        s.mask_boxes += masks.len();
        s.true_positive_boxes += masks
            .iter()
            .filter(|m| area(**m) > 0.0 && photo.plates.iter().any(|p| intersection(**m, p.bbox) >= 0.3 * area(**m)))
            .count();
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    s.fully_masked_share = ratio(s.fully_masked, s.plates);
    s.precision = ratio(s.true_positive_boxes, s.mask_boxes);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_coverage_and_scores() {
        let photos = read_label_file("a.jpg\t100\t50\t100\t20\tAB123\n", Path::new("/x"), "eu").unwrap();
        assert_eq!(photos[0].image, Path::new("/x/a.jpg"));
        assert_eq!(photos[0].plates[0].bbox, [100.0, 50.0, 200.0, 70.0]);
        assert_eq!(photos[0].plates[0].text, "AB123");
        assert!(read_label_file("a.jpg\tx\t1\t2\t3\n", Path::new("/x"), "eu").is_err());
        let chars = characters([100.0, 50.0, 200.0, 70.0]);
        assert_eq!(chars, [108.0, 53.0, 192.0, 67.0]);
        assert_eq!(covered(chars, &[[0.0, 0.0, 300.0, 300.0]]), 1.0);
        let half = covered(chars, &[[108.0, 0.0, 150.0, 300.0]]);
        assert!((half - 0.5).abs() < 0.02, "{half}");
        // One plate masked by a box that covers its characters (but not its rim), one stray box.
        let masks = vec![[106.0, 52.0, 194.0, 68.0], [400.0, 400.0, 450.0, 420.0]];
        let s = score("eu", &[(&photos[0], masks)], 0.95);
        assert_eq!((s.plates, s.fully_masked, s.half_covered), (1, 1, 1));
        assert_eq!((s.mask_boxes, s.true_positive_boxes), (2, 1));
        assert_eq!(s.precision, 0.5);
        let s = score("eu", &[(&photos[0], vec![[100.0, 50.0, 140.0, 70.0]])], 0.95);
        assert_eq!((s.fully_masked, s.missed.len(), s.precision), (0, 1, 1.0));
    }
}
