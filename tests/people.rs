//! Whole people end to end: the `persons` backend against people labelled by hand in
//! `tests/fixtures/people.gt` (three photos, eight people), through `veil detect` and through
//! MaskIt's `humans` and PiiBlur's `people` on a daemon whose backend finds people. Judged
//! without the detector: each labelled person's box changed and lost its fine detail.

mod common;

use common::daemon::Daemon;
use common::privacy::assert_boxes_masked;
use common::{boxes, categories_found, detect_json, iou, load_rgb, photo, root};
use reqwest::blocking::multipart::{Form, Part};
use std::time::Duration;

/// The labelled people of each photo, `(photo, [x1, y1, x2, y2])`.
fn labelled() -> Vec<(String, [f32; 4])> {
    std::fs::read_to_string(root().join("tests/fixtures/people.gt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next().unwrap().to_string();
            let v: Vec<f32> = f.map(|x| x.parse().unwrap()).collect();
            (name, [v[0], v[1], v[2], v[3]])
        })
        .collect()
}

fn people_in(name: &str) -> Vec<[f32; 4]> {
    labelled().into_iter().filter(|(n, _)| n == name).map(|(_, b)| b).collect()
}

/// A box shrunk by `f` of its size on every side: the part of a person a mask must cover
/// whatever the label's few pixels of slack.
fn inset(b: [f32; 4], f: f32) -> [f32; 4] {
    let (dx, dy) = (f * (b[2] - b[0]), f * (b[3] - b[1]));
    [b[0] + dx, b[1] + dy, b[2] - dx, b[3] - dy]
}

#[test]
fn detect_finds_every_labelled_person_and_none_where_there_is_nobody() {
    for name in ["group6.jpg", "astronaut.png", "camera.png"] {
        let v = detect_json(&photo(name), &["--backend", "persons"]);
        for d in v["detections"].as_array().unwrap() {
            assert_eq!(d["category"], "person", "{d}");
            assert!(d["landmarks"].is_null(), "{d}");
        }
        let found = boxes(&v);
        for person in people_in(name) {
            let best = found.iter().map(|b| iou(*b, person)).fold(0.0, f32::max);
            assert!(best >= 0.5, "{name}: labelled person {person:?} best IoU {best:.2} with {found:?}");
        }
        assert!(found.len() <= people_in(name).len() + 1, "{name}: {} boxes for {} people: {found:?}", found.len(), people_in(name).len());
    }
    // A cat, a cup of coffee, a book page: nobody.
    for name in ["chelsea.png", "coffee.png", "page.png"] {
        let v = detect_json(&photo(name), &["--backend", "persons"]);
        assert!(boxes(&v).is_empty(), "{name}: {v}");
    }
}

#[test]
fn people_small_in_a_big_frame_are_found_in_its_tiles() {
    // The group photo at half size in a 3840x2160 frame: its people are 120 to 330 px tall, 13
    // to 36 px once the whole frame is fitted into the network; the tiles find each of them.
    // At full size in a 1920x1080 frame they cross the tiles' edges: the parts a tile cuts
    // join the person they belong to instead of counting as people (11 boxes for 6 before).
    let tmp = tempfile::tempdir().unwrap();
    let group = load_rgb(&photo("group6.jpg"));
    for (size, scale, (ox, oy)) in [((3840, 2160), 0.5, (1700.0, 1200.0)), ((1920, 1080), 1.0, (300.0, 100.0))] {
        let placed = image::imageops::resize(
            &group,
            (group.width() as f32 * scale) as u32,
            (group.height() as f32 * scale) as u32,
            image::imageops::FilterType::Lanczos3,
        );
        let mut frame = image::RgbImage::from_pixel(size.0, size.1, image::Rgb([120, 130, 125]));
        image::imageops::replace(&mut frame, &placed, ox as i64, oy as i64);
        let path = tmp.path().join(format!("{}x{}.png", size.0, size.1));
        frame.save(&path).unwrap();
        let found = boxes(&detect_json(&path, &["--backend", "persons"]));
        let people = people_in("group6.jpg");
        for p in &people {
            let person = [ox + p[0] * scale, oy + p[1] * scale, ox + p[2] * scale, oy + p[3] * scale];
            let best = found.iter().map(|b| iou(*b, person)).fold(0.0, f32::max);
            assert!(best >= 0.5, "{size:?}: labelled person {person:?} best IoU {best:.2} with {found:?}");
        }
        assert!(found.len() <= people.len() + 1, "{size:?}: {} boxes for {} people: {found:?}", found.len(), people.len());
    }
}

#[test]
fn maskit_humans_and_piiblur_people_mask_whole_people() {
    let tmp = tempfile::tempdir().unwrap();
    // The daemon's default backend: people are among what it serves.
    let d = Daemon::start(&tmp.path().join("state"), &[]);
    let (_, usage) = d.get("/api/v1/usage");
    assert!(usage.contains("\"people\""), "people is not offered: {usage}");

    // MaskIt with nothing named: its documented defaults, humans on where the backend finds them.
    let group = photo("group6.jpg");
    let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build().unwrap();
    let form = Form::new().part("image", Part::bytes(std::fs::read(&group).unwrap()).file_name("group6.jpg"));
    let r = c.post(d.url("/api/v1/masking/process-image")).header("X-Api-Key", &d.key).multipart(form).send().unwrap();
    assert_eq!(r.status(), 200);
    let job: serde_json::Value = r.json().unwrap();
    let job = job["jobId"].as_str().unwrap().to_string();
    common::poll_for("the MaskIt job", Duration::from_secs(300), || {
        let v: serde_json::Value = c
            .get(d.url(&format!("/api/v1/masking/image-status?jobId={job}")))
            .header("X-Api-Key", &d.key)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_ne!(v["status"], "Failed", "{v}");
        (v["status"] == "ReadyToDownload" || v["status"] == "Succeeded").then_some(())
    });
    let r = c.get(d.url(&format!("/api/v1/masking/image-download?jobId={job}"))).header("X-Api-Key", &d.key).send().unwrap();
    assert_eq!(r.status(), 200);
    let masked = image::load_from_memory(&r.bytes().unwrap()).unwrap().to_rgb8();
    let people: Vec<[f32; 4]> = people_in("group6.jpg").into_iter().map(|b| inset(b, 0.05)).collect();
    assert_boxes_masked(&load_rgb(&group), &masked, &people, 0.3);

    // PiiBlur with veil's `people` beside its own names: every person masked (faces are masked
    // whatever a request names).
    for name in ["astronaut.png", "camera.png"] {
        let (media, _, redacted) = d.piiblur(&photo(name), &["people"]);
        let found = categories_found(&media);
        assert!(found.iter().any(|c| c == "person"), "{media}");
        assert!(found.iter().all(|c| c == "person" || c == "face"), "{media}");
        let people: Vec<[f32; 4]> = people_in(name).into_iter().map(|b| inset(b, 0.05)).collect();
        assert_boxes_masked(&load_rgb(&photo(name)), &redacted, &people, 0.3);
    }
}
