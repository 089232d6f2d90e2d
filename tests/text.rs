//! Writing end to end: a photographed book page (`page.png`, its lines labelled in
//! `tests/fixtures/page.gt`) and a car's plate through PiiBlur's `documents` and `writing` on
//! `veil serve`'s default backend. Judged without the detector: each labelled line changed and
//! lost its fine detail.

mod common;

use common::daemon::Daemon;
use common::privacy::{assert_boxes_masked, detail_kept};
use common::{boxes, categories_found, detect_json, ground_truth, load_rgb, photo, root};

#[test]
fn documents_and_signs_lose_their_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&tmp.path().join("state"), &[]);
    let (_, usage) = d.get("/api/v1/usage");
    for name in ["writing", "street_signs", "documents", "name_badges"] {
        assert!(usage.contains(&format!("\"{name}\"")), "{name} is not offered: {usage}");
    }

    // The page: every labelled line masked, every detection a line of text.
    let page = photo("page.png");
    let (media, _, redacted) = d.piiblur(&page, &["documents"]);
    let found = categories_found(&media);
    assert!(found.len() >= 7 && found.iter().all(|c| c == "text"), "{media}");
    assert_boxes_masked(&load_rgb(&page), &redacted, &ground_truth("page.gt"), 0.3);

    // A plate is writing too: its characters lose their detail under `writing`.
    let skoda = root().join("tests/fixtures/cache/plates/cz/skoda.png");
    let label = std::fs::read_to_string(skoda.with_extension("txt")).unwrap();
    let f: Vec<f32> = label.split('\t').skip(1).take(4).map(|v| v.trim().parse().unwrap()).collect();
    let characters = [f[0] + 0.08 * f[2], f[1] + 0.15 * f[3], f[0] + 0.92 * f[2], f[1] + 0.85 * f[3]];
    let (media, _, redacted) = d.piiblur(&skoda, &["writing"]);
    assert!(categories_found(&media).iter().all(|c| c == "text"), "{media}");
    let kept = detail_kept(&load_rgb(&skoda), &redacted, characters);
    assert!(kept < 0.3, "{:.0} % of the plate's character detail survives", kept * 100.0);
}

#[test]
fn detect_reports_lines_of_text_in_its_json() {
    let v = detect_json(&photo("page.png"), &["--backend", "text"]);
    let lines = v["detections"].as_array().unwrap();
    assert!(lines.len() >= 7, "{v}");
    for line in lines {
        assert_eq!(line["category"], "text", "{line}");
        assert!(line["landmarks"].is_null(), "{line}");
    }
    // Each labelled line lies (at least half) inside a detection.
    let found = boxes(&v);
    for t in ground_truth("page.gt") {
        let inside = found.iter().any(|b| {
            let iw = (b[2].min(t[2]) - b[0].max(t[0])).max(0.0);
            let ih = (b[3].min(t[3]) - b[1].max(t[1])).max(0.0);
            iw * ih >= 0.5 * (t[2] - t[0]) * (t[3] - t[1])
        });
        assert!(inside, "labelled line {t:?} is not (half) inside any of {found:?}");
    }
}
