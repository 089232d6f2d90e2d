//! Faces: WIDER FACE ground truth (`NAME`, a count, then `x y w h blur expression illumination
//! invalid occlusion pose LEVEL` per face) and the scores the WIDER split is read with: recall
//! per cumulative difficulty (easy <= medium <= hard), precision and AP at an IoU threshold.
//! Faces labelled `ignore` count neither way, and neither do detections that land on them.

use serde::Serialize;

use super::{average_precision, iou, Box4};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Easy,
    Medium,
    Hard,
    Ignore,
}

#[derive(Debug, Clone, Copy)]
pub struct LabelledFace {
    pub bbox: Box4,
    pub level: Level,
}

/// Parse a WIDER-format ground-truth file into (image path as written, faces).
pub fn read_wider(text: &str) -> anyhow::Result<Vec<(String, Vec<LabelledFace>)>> {
    let mut lines = text.lines().map(str::trim).enumerate().filter(|(_, l)| !l.is_empty());
    let mut out = Vec::new();
    while let Some((_, name)) = lines.next() {
        let (n_line, count) = lines.next().ok_or_else(|| anyhow::anyhow!("{name}: no face count"))?;
        let count: usize = count.parse().map_err(|_| anyhow::anyhow!("line {}: not a face count: {count:?}", n_line + 1))?;
        let mut faces = Vec::with_capacity(count);
        // A photo without faces still has one placeholder box line.
        for _ in 0..count.max(1) {
            let (i, line) = lines.next().ok_or_else(|| anyhow::anyhow!("{name}: fewer box lines than {count}"))?;
            if count == 0 {
                continue;
            }
            let v: Vec<&str> = line.split_whitespace().collect();
            let num = |k: usize| -> anyhow::Result<f32> {
                v.get(k).and_then(|s| s.parse().ok()).ok_or_else(|| anyhow::anyhow!("line {}: bad box {line:?}", i + 1))
            };
            let (x, y, w, h) = (num(0)?, num(1)?, num(2)?, num(3)?);
            let level = match v.last().copied() {
                Some("easy") => Level::Easy,
                Some("medium") => Level::Medium,
                Some("hard") => Level::Hard,
                // Without a level column every face is scored (as `hard`, the full set).
                _ if v.len() == 10 => Level::Hard,
                _ => Level::Ignore,
            };
            faces.push(LabelledFace { bbox: [x, y, x + w, y + h], level });
        }
        out.push((name.to_string(), faces));
    }
    Ok(out)
}

#[derive(Debug, Default, Serialize)]
pub struct FaceScore {
    pub images: usize,
    /// Labelled faces per cumulative level: easy, medium (easy + medium), hard (all scored).
    pub faces_easy: usize,
    pub faces_medium: usize,
    pub faces_hard: usize,
    pub recall_easy: f64,
    pub recall_medium: f64,
    pub recall_hard: f64,
    /// Detections counted (those on `ignore` faces are not).
    pub detections: usize,
    pub true_positives: usize,
    pub precision: f64,
    /// Average precision over all scored faces.
    pub ap: f64,
    pub iou_threshold: f32,
}

/// One photo: its labelled faces and the detections with their scores.
pub type ScoredPhoto = (Vec<LabelledFace>, Vec<(Box4, f32)>);

/// Score every photo's detections against its labels.
pub fn score(images: &[ScoredPhoto], iou_threshold: f32) -> FaceScore {
    let mut found = [0usize; 3];
    let mut total = [0usize; 3];
    let mut ranked = Vec::new();
    for (faces, detections) in images {
        for f in faces.iter().filter(|f| f.level != Level::Ignore) {
            total[f.level as usize] += 1;
        }
        let mut order: Vec<&(Box4, f32)> = detections.iter().collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut taken = vec![false; faces.len()];
        for (det, s) in order {
            let best = faces
                .iter()
                .enumerate()
                .filter(|(i, _)| !taken[*i])
                .map(|(i, f)| (i, iou(*det, f.bbox)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                Some((i, o)) if o >= iou_threshold => {
                    taken[i] = true;
                    match faces[i].level {
                        Level::Ignore => {}
                        level => {
                            found[level as usize] += 1;
                            ranked.push((*s, true));
                        }
                    }
                }
                _ => ranked.push((*s, false)),
            }
        }
    }
    let cumulative = |v: [usize; 3], upto: usize| v[..=upto].iter().sum::<usize>();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let tp = ranked.iter().filter(|r| r.1).count();
    FaceScore {
        images: images.len(),
        faces_easy: total[0],
        faces_medium: cumulative(total, 1),
        faces_hard: cumulative(total, 2),
        recall_easy: ratio(found[0], total[0]),
        recall_medium: ratio(cumulative(found, 1), cumulative(total, 1)),
        recall_hard: ratio(cumulative(found, 2), cumulative(total, 2)),
        detections: ranked.len(),
        true_positives: tp,
        precision: ratio(tp, ranked.len()),
        ap: average_precision(&ranked, cumulative(total, 2)),
        iou_threshold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GT: &str = "0--Parade/a.jpg\n3\n10 10 10 10 0 0 0 0 0 0 easy\n40 10 10 10 0 0 0 0 0 0 hard\n\
                      70 10 4 4 0 0 0 0 0 0 ignore\nb.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn reads_wider_and_scores_levels_ignores_and_false_positives() {
        let gt = read_wider(GT).unwrap();
        assert_eq!(gt.len(), 2);
        assert_eq!(gt[0].0, "0--Parade/a.jpg");
        assert_eq!(gt[0].1.len(), 3);
        assert_eq!(gt[0].1[2].level, Level::Ignore);
        assert!(gt[1].1.is_empty(), "a face-less photo keeps its placeholder line out");
        let images = vec![
            (
                gt[0].1.clone(),
                vec![
                    ([11.0, 11.0, 20.0, 20.0], 0.9), // the easy face
                    ([70.0, 10.0, 74.0, 14.0], 0.8), // on the ignored face: not counted
                    ([100.0, 100.0, 110.0, 110.0], 0.7), // nothing there
                ],
            ),
            (gt[1].1.clone(), vec![([0.0, 0.0, 5.0, 5.0], 0.6)]),
        ];
        let s = score(&images, 0.5);
        assert_eq!((s.faces_easy, s.faces_medium, s.faces_hard), (1, 1, 2));
        assert_eq!((s.recall_easy, s.recall_medium, s.recall_hard), (1.0, 1.0, 0.5));
        assert_eq!((s.detections, s.true_positives), (3, 1));
        assert!((s.precision - 1.0 / 3.0).abs() < 1e-9);
        assert!((s.ap - 0.5).abs() < 1e-9, "{}", s.ap);
        assert!(read_wider("a.jpg\nx\n").is_err());
    }
}
