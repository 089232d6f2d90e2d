//! The mirrored cloud APIs over real HTTP against a running `veil serve`: every route, the
//! documented errors, auth, rate limits, webhooks (signature, retry after a 500) and TLS.

mod common;

use std::path::Path;
use std::time::Duration;

use common::daemon::Daemon;
use common::webhook_receiver::Receiver;
use common::*;
use hmac::{Hmac, Mac};
use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::{Client, Response};
use serde_json::Value;

const SECRET: &str = "test-webhook-secret-0123456789";

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
}

fn config(dir: &Path, extra: &str) -> String {
    let path = dir.join("veil.toml");
    std::fs::write(
        &path,
        format!("[webhooks]\nsecret = \"{SECRET}\"\nretry_base_s = 0.3\ntimeout_s = 5\nallow = [\"*\", \"127.0.0.1\"]\n[jobs]\nsweep_interval_s = 0.2\n{extra}"),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// A daemon without a camera, with a test webhook secret and `extra` config lines.
fn daemon(extra: &str) -> (tempfile::TempDir, Daemon) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), extra);
    let d = Daemon::start(&tmp.path().join("state"), &["--config", &cfg]);
    (tmp, d)
}

fn file_part(name: &str) -> Part {
    let path = photo(name);
    let mime = if name.ends_with(".png") { "image/png" } else { "image/jpeg" };
    Part::bytes(std::fs::read(&path).unwrap()).file_name(name.to_string()).mime_str(mime).unwrap()
}

fn json(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// Write `bytes` to a temporary file and check that every face `gt` labels is hidden in it
/// (judged independently of veil's detector: see `common::privacy`).
fn assert_faces_hidden(bytes: &[u8], ext: &str, gt: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join(format!("out.{ext}"));
    std::fs::write(&p, bytes).unwrap();
    privacy::assert_faces_hidden(&p, gt);
}

fn poll(what: &str, f: impl FnMut() -> Option<Value>) -> Value {
    common::poll_for(what, Duration::from_secs(120), f)
}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn originals(d: &Daemon) -> Vec<String> {
    std::fs::read_dir(d.state_dir.join("jobs/originals"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn cloakbioguard_style_protect_status_download_batch_and_webhook() {
    let hook = Receiver::start(&[500]);
    let (_tmp, d) = daemon("");
    let c = client();
    let (s, health) = json(c.get(d.url("/v1/health")).send().unwrap());
    assert_eq!(s, 200);
    assert_eq!(health["status"], "ok");
    assert!(health["version"].is_string());

    // Auth: none, wrong, revoked-looking keys -> 401 {"detail"}.
    let (s, body) = json(c.post(d.url("/v1/protect")).multipart(Form::new().part("file", file_part("group6.jpg"))).send().unwrap());
    assert_eq!(s, 401, "{body}");
    assert!(body["detail"].is_string());
    let forged = format!("{}{}", &d.key[..14], "0".repeat(64));
    let (s, _) = json(c.get(d.url("/v1/backends")).header("X-API-Key", forged).send().unwrap());
    assert_eq!(s, 401);

    let (s, backends) = json(c.get(d.url("/v1/backends")).header("X-API-Key", &d.key).send().unwrap());
    assert_eq!(s, 200);
    assert_eq!(backends["active"], "yunet+plates+codes+text+persons-fp32");
    assert!(backends["available"].as_array().unwrap().iter().any(|b| b == "centerface-fp32"), "{backends}");

    let form = Form::new().part("file", file_part("group6.jpg")).text("webhook_url", hook.url.clone());
    let (s, job) = json(c.post(d.url("/v1/protect")).header("X-API-Key", &d.key).multipart(form).send().unwrap());
    assert_eq!(s, 200, "{job}");
    assert_eq!(job["status"], "processing");
    assert_eq!(job["backend"], "yunet+plates+codes+text+persons-fp32");
    assert_eq!(job["webhook_url"], hook.url.as_str());
    let id = job["job_id"].as_str().unwrap().to_string();
    let status = poll("job completion", || {
        let (_, v) = json(c.get(d.url(&format!("/v1/status/{id}"))).header("X-API-Key", &d.key).send().unwrap());
        (v["status"] != "processing").then_some(v)
    });
    assert_eq!(status["status"], "completed", "{status}");
    assert!(status["created_at"].as_f64().unwrap() <= status["completed_at"].as_f64().unwrap());
    assert_eq!(status["download_url"], format!("/v1/download/{id}"));
    let resp = c.get(d.url(status["download_url"].as_str().unwrap())).header("X-API-Key", &d.key).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    let png = resp.bytes().unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    assert_faces_hidden(&png, "png", "group6.gt");
    // The original is gone from disk once the job ended (no retention configured).
    poll("original deletion", || originals(&d).is_empty().then_some(Value::Null));

    // Webhooks: media.processed got a 500 first, then the retry arrived; media.source_deleted
    // too. All signed.
    let got = hook.wait_for(3, Duration::from_secs(30));
    let event = |r: &common::webhook_receiver::Received| -> Value { serde_json::from_slice(&r.body).unwrap() };
    for r in &got {
        assert_eq!(r.headers["x-veil-signature"], format!("sha256={}", hmac_hex(&r.body)), "signature");
        assert_eq!(r.headers["x-piiblur-signature"], r.headers["x-veil-signature"], "PiiBlur's header on JSON deliveries");
        assert_eq!(event(r)["job_id"], id.as_str());
    }
    let processed: Vec<_> = got.iter().filter(|r| event(r)["event"] == "media.processed").collect();
    assert_eq!(processed.iter().map(|r| r.answered).collect::<Vec<_>>(), [500, 200]);
    assert_eq!(processed[0].body, processed[1].body, "a retry resends the same body");
    assert_eq!(event(processed[0])["status"], "completed");
    assert!(got.iter().any(|r| event(r)["event"] == "media.source_deleted"));

    // No face: the job fails and the download says 422 "No face detected".
    let form = Form::new().part("file", file_part("coffee.png"));
    let (_, job) = json(c.post(d.url("/v1/protect")).header("X-API-Key", &d.key).multipart(form).send().unwrap());
    let id = job["job_id"].as_str().unwrap().to_string();
    let status = poll("job end", || {
        let (_, v) = json(c.get(d.url(&format!("/v1/status/{id}"))).header("X-API-Key", &d.key).send().unwrap());
        (v["status"] != "processing").then_some(v)
    });
    assert_eq!(status["status"], "failed");
    let (s, body) = json(c.get(d.url(&format!("/v1/download/{id}"))).header("X-API-Key", &d.key).send().unwrap());
    assert_eq!((s, body["detail"].as_str()), (422, Some("No face detected")));

    // Unknown ids -> 404.
    for path in ["/v1/status/00000000-0000-4000-8000-000000000000", "/v1/download/nope", "/v1/status/..%2F..%2Fetc"] {
        let (s, body) = json(c.get(d.url(path)).header("X-API-Key", &d.key).send().unwrap());
        assert_eq!(s, 404, "{path}: {body}");
        assert!(body["detail"].is_string());
    }

    // Batches: 21 files -> 400 and nothing queued; 3 files -> 3 jobs.
    let mut form = Form::new();
    for _ in 0..21 {
        form = form.part("files", file_part("astronaut.png"));
    }
    let (s, body) = json(c.post(d.url("/v1/batch-protect")).header("X-API-Key", &d.key).multipart(form).send().unwrap());
    assert_eq!(s, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("20"));
    let form = Form::new()
        .part("files", file_part("astronaut.png"))
        .part("files", file_part("group6.jpg"))
        .part("files", file_part("astronaut.png"));
    let (s, body) = json(c.post(d.url("/v1/batch-protect")).header("X-API-Key", &d.key).multipart(form).send().unwrap());
    assert_eq!(s, 200, "{body}");
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j["status"] == "processing" && j["job_id"].is_string()));
    // Each batch job completes with its own photo's faces hidden.
    for (job, gt) in jobs.iter().zip(["astronaut.gt", "group6.gt", "astronaut.gt"]) {
        let id = job["job_id"].as_str().unwrap();
        let status = poll("batch job completion", || {
            let (_, v) = json(c.get(d.url(&format!("/v1/status/{id}"))).header("X-API-Key", &d.key).send().unwrap());
            (v["status"] != "processing").then_some(v)
        });
        assert_eq!(status["status"], "completed", "{status}");
        let resp = c.get(d.url(&format!("/v1/download/{id}"))).header("X-API-Key", &d.key).send().unwrap();
        assert_eq!(resp.status(), 200);
        assert_faces_hidden(&resp.bytes().unwrap(), "png", gt);
    }
}

#[test]
fn bad_uploads_get_documented_errors_and_lose_nothing() {
    let (_tmp, d) = daemon("[api]\nmax_upload_megabytes = 2\n");
    let c = client();
    let post = |field: &str, part: Part| {
        json(c.post(d.url("/v1/protect")).header("X-API-Key", &d.key).multipart(Form::new().part(field.to_string(), part)).send().unwrap())
    };
    // Wrong type.
    let (s, b) = post("file", Part::bytes(b"hello, not an image".to_vec()).file_name("a.txt"));
    assert_eq!(s, 415, "{b}");
    // Truncated JPEG.
    let jpeg = std::fs::read(photo("group6.jpg")).unwrap();
    let (s, b) = post("file", Part::bytes(jpeg[..jpeg.len() / 2].to_vec()).file_name("half.jpg"));
    assert_eq!(s, 400, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("truncated"), "{b}");
    // Truncated PNG.
    let png = std::fs::read(photo("astronaut.png")).unwrap();
    let (s, b) = post("file", Part::bytes(png[..png.len() - 100].to_vec()).file_name("cut.png"));
    assert_eq!(s, 400, "{b}");
    // Empty file, missing field, text instead of a file.
    assert_eq!(post("file", Part::bytes(Vec::new()).file_name("e.jpg")).0, 400);
    assert_eq!(post("photo", file_part("group6.jpg")).0, 422);
    let (s, _) = json(c.post(d.url("/v1/protect")).header("X-API-Key", &d.key).multipart(Form::new().text("file", "x")).send().unwrap());
    assert_eq!(s, 422);
    // Over the body limit (2 MB here) -> 413 with a JSON body.
    let (s, b) = post("file", Part::bytes(vec![0xFF; 3 << 20]).file_name("big.jpg"));
    assert_eq!(s, 413, "{b}");
    // A huge image (dimensions) in a small file -> 413 before any pixel buffer is made.
    let huge = huge_png(20_000, 20_000);
    let (s, b) = post("file", Part::bytes(huge).file_name("huge.png"));
    assert_eq!(s, 413, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("20000x20000"), "{b}");
    // Not multipart at all.
    let (s, _) = json(c.post(d.url("/v1/protect")).header("X-API-Key", &d.key).body("x").send().unwrap());
    assert_eq!(s, 415);
    // Bad query values on the synchronous routes.
    let form = Form::new().part("image", file_part("astronaut.png"));
    let (s, b) = json(c.post(d.url("/api/v1/detect?confidence=7")).header("X-API-Key", &d.key).multipart(form).send().unwrap());
    assert_eq!(s, 422, "{b}");
    let form = Form::new().part("image", file_part("astronaut.png"));
    let (s, b) = json(c.post(d.url("/api/v1/mask?method=smudge")).header("X-API-Key", &d.key).multipart(form).send().unwrap());
    assert_eq!(s, 422, "{b}");
    // Unknown routes and methods: JSON 404/405.
    let (s, _) = json(c.get(d.url("/v2/nothing")).send().unwrap());
    assert_eq!(s, 404);
    let (s, _) = json(c.delete(d.url("/v1/health")).send().unwrap());
    assert_eq!(s, 405);
    // Nothing was queued and nothing left on disk; the daemon still answers.
    assert!(originals(&d).is_empty());
    let (s, usage) = json(c.get(d.url("/api/v1/usage")).bearer_auth(&d.key).send().unwrap());
    assert_eq!(s, 200);
    assert_eq!(usage["media"]["total"], 0, "{usage}");
}

/// A PNG header claiming `w` x `h` pixels, followed by a tiny (invalid) body.
fn huge_png(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&ihdr);
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    for name in [b"IDAT", b"IEND"] {
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&crc32(name).to_be_bytes());
    }
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn xylolabs_style_detect_and_mask() {
    let (_tmp, d) = daemon("");
    let c = client();
    let (s, health) = json(c.get(d.url("/health")).send().unwrap());
    assert_eq!(s, 200);
    assert_eq!((health["status"].as_str(), health["model_loaded"].as_bool()), (Some("ok"), Some(true)));
    assert_eq!(health["model_info"]["precision"], "fp32");
    assert_eq!(health["model_info"]["name"], "yunet+plates+codes+text+persons");

    let form = Form::new().part("image", file_part("group6.jpg"));
    let resp = c.post(d.url("/api/v1/detect?confidence=0.5&max_faces=10")).header("X-API-Key", &d.key).multipart(form).send().unwrap();
    assert_eq!(resp.headers()["x-face-count"], "6");
    let (s, v) = json(resp);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["image"]["width"], 1280);
    assert_eq!(v["face_count"], 6);
    // The service's own example reads `response.json()["summary"]["face_count"]`.
    let summary = &v["summary"];
    assert_eq!(summary["face_count"], 6, "{v}");
    let (lo, avg, hi) = (summary["min_confidence"].as_f64().unwrap(), summary["avg_confidence"].as_f64().unwrap(), summary["max_confidence"].as_f64().unwrap());
    assert!(0.5 <= lo && lo <= avg && avg <= hi && hi <= 1.0, "{summary}");
    let ratio = summary["face_area_ratio"].as_f64().unwrap();
    assert!(ratio > 0.0 && ratio < 0.5 && summary["total_face_area"].as_f64().unwrap() > 1000.0, "{summary}");
    assert_eq!((v["processing"]["confidence_threshold"].as_f64(), v["processing"]["model"].as_str()), (Some(0.5), Some("yunet+plates+codes+text+persons-fp32")));
    assert!(v["processing"]["inference_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(v["profiling"]["input_resolution"], "1280x886");
    assert!(v["profiling"]["total_ms"].as_f64().unwrap() >= v["profiling"]["inference_ms"].as_f64().unwrap());
    assert_eq!((v["image_id"].clone(), v["job_id"].clone()), (Value::Null, Value::Null));
    let found = boxes(&v);
    for face in ground_truth("group6.gt") {
        assert!(found.iter().any(|b| iou(*b, face) >= 0.5), "face {face:?} not found: {found:?}");
    }
    let first = &v["detections"][0];
    assert_eq!(first["index"], 0);
    assert!(first["landmarks"]["left_eye"]["x"].is_number() && first["relative"]["x_center"].is_number(), "{first}");
    // max_faces limits.
    let form = Form::new().part("image", file_part("group6.jpg"));
    let (_, v) = json(c.post(d.url("/api/v1/detect?max_faces=2")).header("X-API-Key", &d.key).multipart(form).send().unwrap());
    assert_eq!(v["face_count"], 2);

    // The service's own strength scale (its default, 199) is taken, and masks.
    let form = Form::new().part("image", file_part("group6.jpg"));
    let resp = c.post(d.url("/api/v1/mask?strength=199&format=png")).header("X-API-Key", &d.key).multipart(form).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_faces_hidden(&resp.bytes().unwrap(), "png", "group6.gt");
    for (method, format, mime) in [("gaussian", "png", "image/png"), ("pixelate", "jpeg", "image/jpeg"), ("solid", "webp", "image/webp"), ("elliptical", "png", "image/png")] {
        let form = Form::new().part("image", file_part("group6.jpg"));
        let resp = c
            .post(d.url(&format!("/api/v1/mask?method={method}&format={format}&strength=0.8&padding=0.3&quality=85")))
            .header("X-API-Key", &d.key)
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{method}");
        let h = resp.headers().clone();
        assert_eq!(h["content-type"], mime);
        assert_eq!(h["x-face-count"], "6");
        assert_eq!(h["x-model"], "yunet+plates+codes+text+persons-fp32");
        for name in ["x-request-id", "x-inference-ms", "x-mask-ms", "x-encode-ms", "x-total-ms"] {
            assert!(h.contains_key(name), "{name} missing");
        }
        let total: f64 = h["x-total-ms"].to_str().unwrap().parse().unwrap();
        let inference: f64 = h["x-inference-ms"].to_str().unwrap().parse().unwrap();
        assert!(total >= inference && inference > 0.0);
        let ext = if format == "jpeg" { "jpg" } else { format };
        assert_faces_hidden(&resp.bytes().unwrap(), ext, "group6.gt");
    }
}

/// Issue 20, fault 1: a request's detection parameters narrow what is reported, never what is
/// masked. Judged on the labelled faces, not by veil's detector.
#[test]
fn request_parameters_never_mask_less_than_the_device() {
    let (_tmp, d) = daemon("");
    let c = client();
    let before = image::load_from_memory(&std::fs::read(photo("group6.jpg")).unwrap()).unwrap().into_rgb8();
    let truth = ground_truth("group6.gt");
    for query in ["max_faces=1", "confidence=0.99", "nms_threshold=0.01", "categories=license_plates", "max_faces=1&confidence=1&categories=plates"] {
        let form = Form::new().part("image", file_part("group6.jpg"));
        let resp = c.post(d.url(&format!("/api/v1/mask?format=png&{query}"))).header("X-API-Key", &d.key).multipart(form).send().unwrap();
        assert_eq!(resp.status(), 200, "{query}");
        let reported: usize = resp.headers()["x-face-count"].to_str().unwrap().parse().unwrap();
        assert!(reported <= 1 || query.starts_with("nms"), "{query}: reported {reported}");
        assert_eq!(resp.headers()["x-masked-face-count"], "6", "{query}");
        let after = image::load_from_memory(&resp.bytes().unwrap()).unwrap().into_rgb8();
        privacy::assert_boxes_masked(&before, &after, &truth, privacy::MAX_DETAIL_KEPT);
    }
    // The detect route reports as asked.
    let form = Form::new().part("image", file_part("group6.jpg"));
    let resp = c.post(d.url("/api/v1/detect?max_faces=1")).header("X-API-Key", &d.key).multipart(form).send().unwrap();
    assert_eq!(resp.headers()["x-masked-face-count"], "6");
    assert_eq!(json(resp).1["face_count"], 1);
    // A MaskIt client turning faces off still gets them masked, and is told so.
    let form = Form::new().part("image", file_part("group6.jpg")).text("faces", "false").text("licensePlates", "true");
    let (s, v) = json(c.post(d.url("/api/v1/masking/process-image")).header("X-API-Key", &d.key).multipart(form).send().unwrap());
    assert_eq!(s, 200, "{v}");
    let id = v["jobId"].as_str().unwrap().to_string();
    let st = poll("the MaskIt job", || {
        let (_, v) = json(c.get(d.url(&format!("/api/v1/masking/image-status?jobId={id}"))).header("X-API-Key", &d.key).send().unwrap());
        (v["status"] == "ReadyToDownload" || v["status"] == "Failed").then_some(v)
    });
    assert_eq!(st["facesMasked"], 6, "{st}");
    let got = c.get(d.url(&format!("/api/v1/masking/image-download?jobId={id}"))).header("X-API-Key", &d.key).send().unwrap();
    assert_eq!(got.status(), 200);
    let after = image::load_from_memory(&got.bytes().unwrap()).unwrap().into_rgb8();
    privacy::assert_boxes_masked(&before, &after, &truth, privacy::MAX_DETAIL_KEPT);
}

/// With `api.always_mask = []` the operator lets clients turn face masking off.
#[test]
fn an_operator_may_let_clients_turn_faces_off() {
    let (_tmp, d) = daemon("[api]\nalways_mask = []\n");
    let form = Form::new().part("image", file_part("group6.jpg"));
    let resp = client().post(d.url("/api/v1/mask?format=png&categories=license_plates")).header("X-API-Key", &d.key).multipart(form).send().unwrap();
    assert_eq!(resp.headers()["x-masked-face-count"], "0");
    let after = image::load_from_memory(&resp.bytes().unwrap()).unwrap().into_rgb8();
    let before = image::load_from_memory(&std::fs::read(photo("group6.jpg")).unwrap()).unwrap().into_rgb8();
    for face in ground_truth("group6.gt") {
        assert!(privacy::mean_abs_diff(&before, &after, face) < 3.0, "face {face:?} was masked");
    }
}

#[test]
fn piiblur_style_media_lifecycle_listing_usage_and_rate_headers() {
    let (_tmp, d) = daemon("");
    let c = client();
    let redact = |cats: &[&str], file: &str| {
        let mut form = Form::new().part("file", file_part(file)).text("obfuscation_type", "pixelation");
        for cat in cats {
            form = form.text("pii_categories[]", cat.to_string());
        }
        c.post(d.url("/api/v1/media/redact")).bearer_auth(&d.key).multipart(form).send().unwrap()
    };
    let (s, body) = json(redact(&["heads", "tattoos"], "group6.jpg"));
    assert_eq!(s, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("heads"), "{body}");
    assert_eq!(body["supported_categories"][0], "heads");
    let (s, body) = json(redact(&[], "group6.jpg"));
    assert_eq!(s, 422, "{body}");

    let resp = redact(&["heads"], "group6.jpg");
    for h in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
        assert!(resp.headers().contains_key(h), "{h} missing");
    }
    let (s, body) = json(resp);
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["status"], "queued");
    let id = body["media_id"].as_str().unwrap().to_string();
    let media = poll("media completion", || {
        let (_, v) = json(c.get(d.url(&format!("/api/v1/media/{id}"))).bearer_auth(&d.key).send().unwrap());
        (v["status"] == "completed" || v["status"] == "failed").then_some(v)
    });
    assert_eq!(media["status"], "completed", "{media}");
    assert_eq!(media["detections_count"], 6);
    assert_eq!(media["obfuscation_type"], "pixelation");
    // PiiBlur's documented names beside veil's.
    assert_eq!(media["original_filename"], "group6.jpg");
    assert_eq!(media["processed_at"], media["completed_at"]);
    assert!(media["processed_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(media["error_message"], Value::Null);
    let resp = c.get(d.url(&format!("/api/v1/media/{id}/download"))).bearer_auth(&d.key).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_faces_hidden(&resp.bytes().unwrap(), "jpg", "group6.gt");
    // No retention: the original is gone.
    let (s, _) = json(c.get(d.url(&format!("/api/v1/media/{id}/original"))).bearer_auth(&d.key).send().unwrap());
    assert_eq!(s, 404);

    // 21 more uploads: two pages.
    for _ in 0..21 {
        assert_eq!(redact(&["heads"], "astronaut.png").status(), 201);
    }
    let (s, page1) = json(c.get(d.url("/api/v1/media?media_type=image")).bearer_auth(&d.key).send().unwrap());
    assert_eq!(s, 200);
    assert_eq!((page1["total"].as_i64(), page1["per_page"].as_i64(), page1["last_page"].as_i64()), (Some(22), Some(20), Some(2)));
    assert_eq!(page1["data"].as_array().unwrap().len(), 20);
    let (_, page2) = json(c.get(d.url("/api/v1/media?page=2")).bearer_auth(&d.key).send().unwrap());
    assert_eq!((page2["current_page"].as_i64(), page2["data"].as_array().unwrap().len()), (Some(2), 2));
    let (s, _) = json(c.get(d.url("/api/v1/media?status=nonsense")).bearer_auth(&d.key).send().unwrap());
    assert_eq!(s, 422);
    poll("all processed", || {
        let (_, v) = json(c.get(d.url("/api/v1/media?status=completed")).bearer_auth(&d.key).send().unwrap());
        (v["total"] == 22).then_some(v)
    });

    // Another key sees none of it.
    let other = common::daemon::create_key(&d.state_dir, "other");
    let (s, _) = json(c.get(d.url(&format!("/api/v1/media/{id}"))).bearer_auth(&other).send().unwrap());
    assert_eq!(s, 404);
    let (_, list) = json(c.get(d.url("/api/v1/media")).bearer_auth(&other).send().unwrap());
    assert_eq!(list["total"], 0);

    let resp = c.delete(d.url(&format!("/api/v1/media/{id}"))).bearer_auth(&d.key).send().unwrap();
    assert_eq!(resp.status(), 204);
    let (s, _) = json(c.get(d.url(&format!("/api/v1/media/{id}"))).bearer_auth(&d.key).send().unwrap());
    assert_eq!(s, 404);
    let (s, usage) = json(c.get(d.url("/api/v1/usage")).bearer_auth(&d.key).send().unwrap());
    assert_eq!(s, 200);
    assert_eq!(usage["media"]["completed"], 21, "{usage}");
    assert!(usage["requests_today"].as_i64().unwrap() > 25, "{usage}");
    // PiiBlur's documented usage shape: a plan, its period, images and video minutes.
    assert_eq!(usage["plan"], "device");
    assert!(usage["period_start"].as_str().unwrap().ends_with("-01T00:00:00.000Z"), "{usage}");
    assert!(usage["period_start"].as_str().unwrap() < usage["period_end"].as_str().unwrap());
    assert_eq!(usage["images"]["used"], 21, "{usage}");
    assert_eq!(usage["images"]["limit"], Value::Null);
    assert_eq!(usage["video_minutes"]["used"], 0.0);
}

/// veil's own controls on the PiiBlur upload (what the field page sends): bad values are refused
/// up front naming the field; good ones shape the mask.
#[test]
fn piiblur_uploads_take_veils_method_shape_strength_and_padding() {
    let (_tmp, d) = daemon("");
    let c = client();
    let redact = |fields: &[(&str, &str)]| {
        let mut form = Form::new().part("file", file_part("group6.jpg")).text("pii_categories[]", "faces");
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        json(c.post(d.url("/api/v1/media/redact")).bearer_auth(&d.key).multipart(form).send().unwrap())
    };
    for (field, value) in [("method", "smudge"), ("strength", "strong"), ("padding", "5"), ("shape", "star")] {
        let (s, body) = redact(&[(field, value)]);
        assert_eq!(s, 422, "{field}={value}: {body}");
        let said = body["error"].as_str().unwrap();
        assert!(said.contains(field) || said.contains(value), "{field}={value}: {said}");
    }
    let (s, body) = redact(&[("method", "solid"), ("shape", "rect"), ("padding", "0.1")]);
    assert_eq!(s, 201, "{body}");
    let id = body["media_id"].as_str().unwrap().to_string();
    let media = poll("media completion", || {
        let (_, v) = json(c.get(d.url(&format!("/api/v1/media/{id}"))).bearer_auth(&d.key).send().unwrap());
        (v["status"] == "completed" || v["status"] == "failed").then_some(v)
    });
    assert_eq!(media["status"], "completed", "{media}");
    assert_eq!(media["method"], "solid");
    assert!(media["processing_ms"].as_i64().is_some_and(|ms| ms >= 0), "{media}");
    let bytes = c.get(d.url(&format!("/api/v1/media/{id}/download"))).bearer_auth(&d.key).send().unwrap().bytes().unwrap();
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    // A solid black rectangle over every face: its centre is black.
    for f in ground_truth("group6.gt") {
        let p = img.get_pixel(((f[0] + f[2]) / 2.0) as u32, ((f[1] + f[3]) / 2.0) as u32);
        assert!(p.0.iter().all(|&v| v < 30), "face {f:?} centre is {p:?}, not the solid fill");
    }
}

#[test]
fn originals_are_kept_when_retention_is_configured() {
    let (_tmp, d) = daemon("keep_originals_hours = 1.0\n[api]\nserve_originals = true\n");
    let c = client();
    let form = Form::new().part("file", file_part("group6.jpg")).text("pii_categories[]", "heads");
    let (_, body) = json(c.post(d.url("/api/v1/media/redact")).bearer_auth(&d.key).multipart(form).send().unwrap());
    let id = body["media_id"].as_str().unwrap().to_string();
    poll("completion", || {
        let (_, v) = json(c.get(d.url(&format!("/api/v1/media/{id}"))).bearer_auth(&d.key).send().unwrap());
        (v["status"] == "completed").then_some(v)
    });
    let resp = c.get(d.url(&format!("/api/v1/media/{id}/original"))).bearer_auth(&d.key).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap().as_ref(), std::fs::read(photo("group6.jpg")).unwrap().as_slice());
}

#[test]
fn maskit_style_any_case_fields_download_once_and_multipart_webhook() {
    let hook = Receiver::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("veil.toml");
    std::fs::write(
        &cfg,
        format!("[webhooks]\nsecret = \"{SECRET}\"\ndefault_url = \"{}\"\nretry_base_s = 0.3\nallow = [\"127.0.0.1\"]\n", hook.url),
    )
    .unwrap();
    let d = Daemon::start(&tmp.path().join("state"), &["--config", cfg.to_str().unwrap()]);
    let c = client();
    let form = Form::new()
        .part("image", file_part("group6.jpg"))
        .text("Faces", "true")
        .text("licenseplates", "false")
        .text("HUMANS", "false")
        .text("Shape", "Rectangle")
        .text("Method", "BlackFill")
        .text("blurStrength", "30")
        .text("EdgeBlurSize", "0.2")
        .text("metadata", "rig-7/frame-42")
        .text("useWebhook", "true");
    let (s, body) = json(c.post(d.url("/api/v1/masking/process-image")).header("x-api-key", &d.key).multipart(form).send().unwrap());
    assert_eq!(s, 200, "{body}");
    let id = body["jobId"].as_str().unwrap().to_string();
    let status = poll("ready", || {
        let (_, v) = json(c.get(d.url(&format!("/api/v1/masking/image-status?jobId={id}"))).header("X-Api-Key", &d.key).send().unwrap());
        (v["status"] == "ReadyToDownload" || v["status"] == "Failed").then_some(v)
    });
    assert_eq!(status["status"], "ReadyToDownload", "{status}");
    let resp = c.get(d.url(&format!("/api/v1/masking/image-download?jobid={id}"))).header("X-Api-Key", &d.key).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-disposition"], "attachment; filename=\"masked-group6.jpg\"");
    let bytes = resp.bytes().unwrap();
    assert_faces_hidden(&bytes, "jpg", "group6.gt");
    // Other APIs do not see this job (download-once holds).
    let (s, _) = json(c.get(d.url(&format!("/api/v1/media/{id}/download"))).bearer_auth(&d.key).send().unwrap());
    assert_eq!(s, 404);
    // Once only.
    let (s, _) = json(c.get(d.url(&format!("/api/v1/masking/image-download?jobId={id}"))).header("X-Api-Key", &d.key).send().unwrap());
    assert_eq!(s, 404);
    let (_, v) = json(c.get(d.url(&format!("/api/v1/masking/image-status?jobId={id}"))).header("X-Api-Key", &d.key).send().unwrap());
    assert_eq!(v["status"], "Succeeded");
    let (s, _) = json(c.get(d.url("/api/v1/masking/image-status")).header("X-Api-Key", &d.key).send().unwrap());
    assert_eq!(s, 400);
    let (s, _) = json(c.get(d.url("/api/v1/masking/image-status?jobId=00000000-0000-4000-8000-000000000000")).header("X-Api-Key", &d.key).send().unwrap());
    assert_eq!(s, 404);

    // The webhook is multipart with the metadata and the masked image, signed both ways.
    let got = hook.wait_for(1, Duration::from_secs(30));
    let r = got.iter().find(|r| r.headers["content-type"].starts_with("multipart/form-data")).expect("multipart webhook");
    assert_eq!(r.headers["x-signature"], hmac_hex(&r.body));
    assert_eq!(r.headers["x-veil-signature"], format!("sha256={}", hmac_hex(&r.body)));
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("name=\"metadata\"\r\n\r\nrig-7/frame-42"), "{}", &text[..300.min(text.len())]);
    assert!(text.contains("name=\"maskedImage\""));
    let soi = r.body.windows(2).position(|w| w == [0xFF, 0xD8]).unwrap();
    let eoi = r.body.windows(2).rposition(|w| w == [0xFF, 0xD9]).unwrap();
    assert_eq!(&r.body[soi..eoi + 2], bytes.as_ref(), "the webhook carries the masked image");
}

#[test]
fn faceblurest_style_base64_in_and_out_with_coded_errors() {
    use base64::Engine;
    let (_tmp, d) = daemon("");
    let c = client();
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(photo("group6.jpg")).unwrap());
    let body = serde_json::json!({"base64_Photo_String": b64, "photo_url": "NO"});
    let resp = c.post(d.url("/faceblurest")).basic_auth("rig", Some(&d.key)).json(&body).send().unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().unwrap();
    // Clients cut the photo out of the text: it is the last field.
    let tail = text.rsplit_once("\"final_photo\":\"").unwrap().1;
    assert!(tail.ends_with("\"}"), "final_photo is not last");
    let v: Value = serde_json::from_str(&text).unwrap();
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 6);
    assert!(preds.iter().all(|p| p["tagName"] == "Human Face"));
    let bb = &preds[0]["boundingBox"];
    for k in ["left", "top", "width", "height"] {
        assert!((0.0..=1.0).contains(&bb[k].as_f64().unwrap()), "{bb}");
    }
    assert!(v["created"].is_string());
    let photo_bytes = base64::engine::general_purpose::STANDARD.decode(v["final_photo"].as_str().unwrap()).unwrap();
    assert_faces_hidden(&photo_bytes, "jpg", "group6.gt");
    // The same route under the original path.
    let resp = c.post(d.url("/FaceBlurest.aspx")).basic_auth("rig", Some(&d.key)).json(&body).send().unwrap();
    assert_eq!(resp.status(), 200);

    let coded = |resp: Response| -> (u16, u64) {
        let (s, v) = json(resp);
        (s, v[0]["cd"].as_u64().unwrap_or_else(|| panic!("{v}")))
    };
    assert_eq!(coded(c.post(d.url("/faceblurest")).basic_auth("rig", Some("wrong")).json(&body).send().unwrap()), (401, 1001));
    let big = serde_json::json!({"base64_Photo_String": "A".repeat(8 << 20), "photo_url": "NO"});
    assert_eq!(coded(c.post(d.url("/faceblurest")).basic_auth("rig", Some(&d.key)).json(&big).send().unwrap()).1, 1013);
    let bad = serde_json::json!({"base64_Photo_String": "!!!not base64", "photo_url": "NO"});
    assert_eq!(coded(c.post(d.url("/faceblurest")).basic_auth("rig", Some(&d.key)).json(&bad).send().unwrap()), (400, 1014));
    let not_image = serde_json::json!({"base64_Photo_String": "aGVsbG8=", "photo_url": "NO"});
    assert_eq!(coded(c.post(d.url("/faceblurest")).basic_auth("rig", Some(&d.key)).json(&not_image).send().unwrap()).1, 1014);
    assert_eq!(coded(c.post(d.url("/faceblurest")).basic_auth("rig", Some(&d.key)).body("{").send().unwrap()), (400, 1014));
    // photo_url fetching is off by default (SSRF).
    let url = serde_json::json!({"base64_Photo_String": "NO", "photo_url": "http://169.254.169.254/latest"});
    let (s, v) = json(c.post(d.url("/faceblurest")).basic_auth("rig", Some(&d.key)).json(&url).send().unwrap());
    assert_eq!((s, v[0]["cd"].as_u64()), (400, Some(1014)));
    assert!(v[0]["description"].as_str().unwrap().contains("photo_url"));
}

#[test]
fn per_key_rate_limits_answer_429_with_retry_after() {
    let (_tmp, d) = daemon("[api]\nrate_per_minute = 3\n");
    let c = client();
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let resp = c.get(d.url("/v1/backends")).header("X-API-Key", &d.key).send().unwrap();
        assert_eq!(resp.status(), 200);
        remaining.push(resp.headers()["x-ratelimit-remaining"].to_str().unwrap().to_string());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let resp = c.get(d.url("/v1/backends")).header("X-API-Key", &d.key).send().unwrap();
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    let (_, body) = json(resp);
    assert!(body["detail"].as_str().unwrap().contains("Rate limit"));
    // PiiBlur-style error shape for the same limit; another key is not limited.
    let (s, body) = json(c.get(d.url("/api/v1/usage")).bearer_auth(&d.key).send().unwrap());
    assert_eq!((s, body["error"].is_string()), (429, true));
    // FaceBlurest's own coded shape, with Basic auth as its clients send it.
    let resp = c
        .post(d.url("/faceblurest"))
        .basic_auth("rig", Some(&d.key))
        .json(&serde_json::json!({"base64_Photo_String": "", "photo_url": "NO"}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let (_, body) = json(resp);
    assert_eq!(body[0]["cd"], 1029, "{body}");
    assert!(body[0]["description"].as_str().unwrap().contains("Rate limit"), "{body}");
    let other = common::daemon::create_key(&d.state_dir, "other");
    assert_eq!(c.get(d.url("/v1/backends")).header("X-API-Key", &other).send().unwrap().status(), 200);
    // Health stays open.
    assert_eq!(c.get(d.url("/v1/health")).send().unwrap().status(), 200);
}

#[test]
fn serves_https_with_the_configured_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    std::fs::write(tmp.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(tmp.path().join("key.pem"), &key_pem).unwrap();
    let cfg = config(
        tmp.path(),
        &format!("[api]\ntls_cert = {:?}\ntls_key = {:?}\n", tmp.path().join("cert.pem"), tmp.path().join("key.pem")),
    );
    let d = Daemon::start(&tmp.path().join("state"), &["--config", &cfg]);
    assert!(d.base.starts_with("https://"), "{}", d.base);
    let port = d.addr.rsplit_once(':').unwrap().1;
    let c = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let (s, v) = json(c.get(format!("https://localhost:{port}/v1/backends")).header("X-API-Key", &d.key).send().unwrap());
    assert_eq!((s, v["active"].as_str()), (200, Some("yunet+plates+codes+text+persons-fp32")));
    // Under TLS the admin console's session cookie is marked Secure.
    let mut add = std::process::Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["admin", "add-user", "ops", "--state-dir", d.state_dir.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut add.stdin.take().unwrap(), b"tls admin password\n").unwrap();
    assert!(add.wait().unwrap().success());
    let login = serde_json::json!({"username": "ops", "password": "tls admin password"});
    let resp = c.post(format!("https://localhost:{port}/api/v1/admin/auth/login")).json(&login).send().unwrap();
    assert_eq!(resp.status(), 204);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    // Plain HTTP to the TLS port gets no answer.
    assert!(client().get(format!("http://127.0.0.1:{port}/v1/health")).send().is_err());
}

#[test]
fn bench_http_loads_a_real_daemon_and_reports_memory() {
    let out = veil_ok(&["bench", "--http", "--clients", "3", "--seconds", "3", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for run in ["reference", "loaded"] {
        let r = &v[run];
        assert!(r["requests"].as_u64().unwrap() > 0 && r["errors"] == 0, "{v}");
        assert!(r["p95_ms"].as_f64().unwrap() >= r["p50_ms"].as_f64().unwrap());
        assert!(r["rss_mb_peak"].as_f64().unwrap() > 10.0, "{v}");
    }
    assert_eq!(v["loaded"]["clients"], 3);
    assert!(v["throughput_ratio"].as_f64().unwrap() > 0.0);
}

#[test]
fn admin_keys_manage_keys_over_http_and_others_get_403() {
    let (_tmp, d) = daemon("");
    let c = client();
    let out = veil_ok(&["keys", "create", "--name", "ops", "--admin", "--state-dir", d.state_dir.to_str().unwrap()]);
    let admin = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().to_string();
    let (s, body) = json(c.get(d.url("/api/v1/admin/keys")).header("X-API-Key", &d.key).send().unwrap());
    assert_eq!(s, 403, "{body}");
    let (s, list) = json(c.get(d.url("/api/v1/admin/keys")).bearer_auth(&admin).send().unwrap());
    assert_eq!(s, 200);
    assert_eq!(list["keys"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&d.key[14..]), "a listing never shows a key");
    let (s, made) = json(c.post(d.url("/api/v1/admin/keys")).bearer_auth(&admin).json(&serde_json::json!({"name": "laptop 2"})).send().unwrap());
    assert_eq!(s, 201, "{made}");
    let new_key = made["key"].as_str().unwrap().to_string();
    assert_eq!(made["record"]["admin"], false);
    assert_eq!(c.get(d.url("/v1/backends")).header("X-API-Key", &new_key).send().unwrap().status(), 200);
    let (s, _) = json(c.post(d.url("/api/v1/admin/keys")).bearer_auth(&admin).json(&serde_json::json!({"nom": "x"})).send().unwrap());
    assert_eq!(s, 422);
    let id = made["record"]["id"].as_i64().unwrap();
    let (s, revoked) = json(c.delete(d.url(&format!("/api/v1/admin/keys/{id}"))).bearer_auth(&admin).send().unwrap());
    assert_eq!(s, 200);
    assert!(revoked["record"]["revoked_at"].is_i64());
    assert_eq!(c.get(d.url("/v1/backends")).header("X-API-Key", &new_key).send().unwrap().status(), 401);
    let (s, _) = json(c.delete(d.url("/api/v1/admin/keys/999")).bearer_auth(&admin).send().unwrap());
    assert_eq!(s, 404);
}

#[test]
fn health_answers_503_while_the_model_loads_then_200() {
    // A 1080p camera: the detector's plan for that size is built before the daemon is ready,
    // which keeps it loading for about 2 s after the port opens.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "[detector]\nbackend = \"yunet\"\n[camera]\nsource = \"test-pattern\"\nwidth = 1920\nheight = 1080\n");
    let state = tmp.path().join("state");
    let key = common::daemon::create_key(&state, "e2e");
    let d = Daemon::start_listening(&state, key, &["--config", &cfg]);
    let c = client();
    let (s, v) = json(c.get(d.url("/health")).send().unwrap());
    assert_eq!((s, v["status"].as_str(), v["model_loaded"].as_bool()), (503, Some("loading"), Some(false)), "{v}");
    let (s, _) = json(c.get(d.url("/v1/backends")).header("X-API-Key", &d.key).send().unwrap());
    assert_eq!(s, 503);
    let v = poll("ready", || {
        let (s, v) = json(c.get(d.url("/health")).send().unwrap());
        (s == 200).then_some(v)
    });
    assert_eq!((v["status"].as_str(), v["model_loaded"].as_bool()), (Some("ok"), Some(true)));
    assert!(d.log().contains("veil: ready"));
}

#[test]
fn webhook_retries_survive_a_kill_9() {
    let hook = Receiver::start(&[500]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    // Retries wait 2 s: long enough to kill the daemon in between.
    let text = std::fs::read_to_string(&cfg).unwrap().replace("retry_base_s = 0.3", "retry_base_s = 2");
    std::fs::write(&cfg, text).unwrap();
    let state = tmp.path().join("state");
    let mut d = Daemon::start(&state, &["--config", &cfg]);
    let form = Form::new().part("file", file_part("group6.jpg")).text("webhook_url", hook.url.clone());
    let (s, _) = json(c_post_protect(&d, form));
    assert_eq!(s, 200);
    let first = hook.wait_for(1, Duration::from_secs(60));
    assert_eq!(first[0].answered, 500);
    d.kill9();
    let seen_before_restart = hook.received.lock().unwrap().len();
    let key = d.key.clone();
    drop(d);
    let _d = Daemon::start_with_key(&state, key, &["--config", &cfg]);
    let resent = poll("the retry after the restart", || {
        let got = hook.received.lock().unwrap().clone();
        got.iter().skip(seen_before_restart).find(|r| r.body == first[0].body).map(|r| {
            assert_eq!(r.headers["x-veil-signature"], format!("sha256={}", hmac_hex(&r.body)));
            Value::from(r.answered)
        })
    });
    assert_eq!(resent, 200, "the restarted daemon resent the stored delivery");
}

fn c_post_protect(d: &Daemon, form: Form) -> Response {
    client().post(d.url("/v1/protect")).header("X-API-Key", &d.key).multipart(form).send().unwrap()
}
