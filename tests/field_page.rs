//! The field page in a real browser: Debian's Chromium, driven by Playwright
//! (`tests/field_page/drive.mjs`), against a running `veil serve` with a camera replay. `make test`
//! installs Chromium and the locked `playwright-core`; either missing is a failure.

mod common;

use std::path::Path;
use std::process::Command;

use common::daemon::Daemon;
use common::*;
use serde_json::Value;

/// The one member of a zip archive, read by Python's zipfile (which checks the CRC).
fn unzip_single(zip: &Path) -> (String, Vec<u8>) {
    let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\n\
                  names = z.namelist()\nassert len(names) == 1, names\nsys.stdout.write(names[0] + '\\n')\n\
                  sys.stdout.flush()\nsys.stdout.buffer.write(z.read(names[0]))";
    let out = Command::new("python3").args(["-c", script]).arg(zip).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let split = out.stdout.iter().position(|&b| b == b'\n').unwrap();
    (String::from_utf8(out.stdout[..split].to_vec()).unwrap(), out.stdout[split + 1..].to_vec())
}

#[test]
fn a_field_crew_signs_in_redacts_a_photo_downloads_it_and_watches_the_device() {
    let driver = root().join("tests/field_page");
    assert!(
        driver.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `npm ci --prefix tests/field_page` (make test does)"
    );
    assert!(Path::new("/usr/bin/chromium").is_file(), "Debian's chromium is missing (make test installs it)");
    let tmp = tempfile::tempdir().unwrap();
    let frames = frames_dir(tmp.path(), &["astronaut.png"]);
    let state = tmp.path().join("state");
    // Uploads get faces and plates (the default backend); the camera replay masks faces only, so
    // its one frame is redacted (and its inference time shown) well before the page looks.
    let config = camera_config(tmp.path(), &frames, "categories = [\"faces\"]\n");
    let d = Daemon::start(&state, &["--config", config.to_str().unwrap()]);
    let out = root().join("target/field-page");
    std::fs::create_dir_all(&out).unwrap();
    let upload = tmp.path().join("group6.jpg");
    std::fs::copy(photo("group6.jpg"), &upload).unwrap();

    let run = Command::new("node")
        .arg(driver.join("drive.mjs"))
        .args([&d.base, &d.key, upload.to_str().unwrap(), out.to_str().unwrap()])
        .current_dir(&driver)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    println!("{}", serde_json::to_string_pretty(&seen).unwrap());
    assert!(seen.get("failure").is_none(), "the browser run failed: {}\ndaemon: {}", seen["failure"], d.log());
    assert_eq!(seen["page_errors"], serde_json::json!([]), "script errors on the page");
    // The console's only errors are the browser's own notes of the refused wrong key (401).
    let console: Vec<&str> = seen["console_errors"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(console.iter().all(|m| m.contains("401")), "console errors: {console:?}");

    // Sign in: a wrong key says so and keeps the app closed; the right key opens it and lives in
    // this tab's sessionStorage only, until logout.
    assert_eq!(seen["focused_on_load"], "key");
    let wrong = seen["wrong_key_error"].as_str().unwrap();
    assert!(wrong.contains("refused this key") && wrong.len() > "refused this key".len() + 20, "{wrong}");
    assert_eq!(seen["app_hidden_after_wrong_key"], true);
    assert_eq!(seen["key_storage"], serde_json::json!({"session": 1, "local": 0}));
    assert_eq!(seen["key_storage_after_logout"], 0);
    // The form shows the device's defaults.
    assert_eq!(seen["defaults_note"], "Device defaults: Blur, strength 0.6, Ellipse, padding 0.3, categories faces, license_plates.");
    assert_eq!(seen["method"], "gaussian");

    // The photo's result: every labelled face counted and masked in what the browser downloaded.
    assert_eq!(seen["card_state"], "done", "{}", seen["card_text"]);
    let labelled = ground_truth("group6.gt").len();
    assert_eq!(seen["faces"].as_str().unwrap().parse::<usize>().unwrap(), labelled, "face count on the card");
    assert_eq!(seen["faces_text"], format!("{labelled} faces"));
    assert!(seen["timing_text"].as_str().unwrap().ends_with("ms on the device"), "{}", seen["timing_text"]);
    assert_eq!(seen["download_name"], "redacted-group6.jpg");
    let downloaded = out.join("downloaded-result");
    let result = std::fs::read(&downloaded).unwrap();
    let original = std::fs::read(&upload).unwrap();
    assert_ne!(result, original);
    let (rw, rh) = image::load_from_memory(&result).expect("the download is an image").to_rgb8().dimensions();
    assert_eq!((rw, rh), load_rgb(&upload).dimensions());
    let as_jpeg = tmp.path().join("downloaded.jpg");
    std::fs::write(&as_jpeg, &result).unwrap();
    privacy::assert_faces_hidden(&as_jpeg, "group6.gt");
    // Download all: a valid zip holding the same redacted bytes.
    assert_eq!(seen["zip_name"], "veil-redacted.zip");
    let (name, bytes) = unzip_single(&out.join("downloaded.zip"));
    assert_eq!(name, "redacted-group6.jpg");
    assert!(bytes == result, "the zip holds other bytes than the single download");

    // Device panel: telemetry, the live preview from the camera replay, the job in the list.
    let status = &seen["status"];
    for k in ["Camera", "Frames per second", "Inference", "Temperature", "Queue", "Disk free"] {
        assert!(status.get(k).is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty())), "status lacks {k}: {status}");
    }
    assert!(status["Inference"].as_str().unwrap().contains("ms median"), "{status}");
    assert_eq!(seen["preview_caption"], "Live, redacted on the device");
    // The preview's pixels: the camera replay's frame with its face hidden.
    privacy::assert_faces_hidden(&out.join("preview.png"), "astronaut.gt");
    let rows = seen["jobs_rows"].as_array().unwrap();
    assert!(
        rows.iter().any(|r| r[0] == "group6.jpg" && r[1] == "completed" && r[2] == labelled.to_string().as_str()),
        "{rows:?}"
    );
    // The comparison shows the user's own file from this computer (a blob URL), not a download.
    assert_eq!(seen["original_shown"], true);
    assert!(seen["original_src"].as_str().unwrap().starts_with("blob:"), "{}", seen["original_src"]);
    assert!(seen["phone_overflow"].as_i64().unwrap() <= 0, "wider than a phone: {}", seen["phone_overflow"]);

    // Nothing left the device: every request went to it (or to the page's own blob URLs).
    let requests = seen["requests"].as_array().unwrap();
    assert!(requests.len() > 8, "{requests:?}");
    for url in requests {
        let url = url.as_str().unwrap();
        assert!(url.starts_with(&format!("{}/", d.base)) || url.starts_with("blob:") || url.starts_with("data:"), "{url}");
    }
    // The server never sent an original back: no request for one.
    assert!(requests.iter().all(|u| !u.as_str().unwrap().contains("/original")), "{requests:?}");
    assert!(out.join("field-page.png").is_file() && out.join("field-page-phone.png").is_file());
}

#[test]
fn an_operator_uses_the_admin_console_with_a_cookie_session() {
    use std::io::Write;
    let driver = root().join("tests/field_page");
    assert!(driver.join("node_modules/playwright-core").is_dir(), "playwright-core is missing (make test installs it)");
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let password = "console password for the test";
    let mut add = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["admin", "add-user", "ops", "--state-dir", state.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    assert!(add.wait().unwrap().success());
    let d = Daemon::start(&state, &[]);
    // One stored job, uploaded through PiiBlur's API by a field laptop.
    let c = reqwest::blocking::Client::new();
    let part = reqwest::blocking::multipart::Part::bytes(std::fs::read(photo("group6.jpg")).unwrap())
        .file_name("group6.jpg")
        .mime_str("image/jpeg")
        .unwrap();
    let form = reqwest::blocking::multipart::Form::new().part("file", part).text("pii_categories[]", "heads");
    let queued: Value = c.post(d.url("/api/v1/media/redact")).bearer_auth(&d.key).multipart(form).send().unwrap().json().unwrap();
    let id = queued["media_id"].as_str().unwrap().to_string();
    poll_for("the upload's job", std::time::Duration::from_secs(120), || {
        let v: Value = c.get(d.url(&format!("/api/v1/media/{id}"))).bearer_auth(&d.key).send().unwrap().json().unwrap();
        (v["status"] == "completed").then_some(())
    });
    let out = root().join("target/field-page");
    std::fs::create_dir_all(&out).unwrap();
    let upload = tmp.path().join("group6.jpg");
    std::fs::copy(photo("group6.jpg"), &upload).unwrap();

    let run = Command::new("node")
        .arg(driver.join("admin.mjs"))
        .args([&d.base, "ops", password, upload.to_str().unwrap(), out.to_str().unwrap()])
        .current_dir(&driver)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    let seen: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    println!("{}", serde_json::to_string_pretty(&seen).unwrap());
    assert!(seen.get("failure").is_none(), "the browser run failed: {}\ndaemon: {}", seen["failure"], d.log());
    assert_eq!(seen["page_errors"], serde_json::json!([]), "script errors on the page");
    let console: Vec<&str> = seen["console_errors"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(console.iter().all(|m| m.contains("401")), "console errors: {console:?}");

    // Sign-in: the wrong password is refused in the device's words; the session cookie is
    // invisible to the page's scripts (HttpOnly).
    let wrong = seen["wrong_password_error"].as_str().unwrap();
    assert!(wrong.contains("Invalid username or password"), "{wrong}");
    assert_eq!(seen["console_hidden_after_wrong_password"], true);
    assert_eq!(seen["signin_hidden"], true);
    assert!(seen["who"].as_str().unwrap().contains("ops"));
    assert_eq!(seen["cookie_visible_to_scripts"], "");
    assert!(seen["stats"]["Jobs"].as_str().unwrap().starts_with("1 · 1 completed"), "{}", seen["stats"]);
    assert_eq!(seen["stats"]["Faces masked"], "6");

    // The stored job, and its result as the browser showed it: every labelled face hidden.
    let rows = seen["jobs_rows"].as_array().unwrap();
    assert!(rows.iter().any(|r| r[0] == "group6.jpg" && r[1] == "piiblur" && r[2] == "completed" && r[4] == "6"), "{rows:?}");
    privacy::assert_faces_hidden(&out.join("admin-job-result.png"), "group6.gt");

    // Keys: shown once, never listed in full, refused by the API at once when disabled or deleted.
    assert_eq!(seen["new_key_shape"], true);
    assert_eq!(seen["key_listed_in_full"], false);
    assert!(seen["key_row_preview"].as_str().unwrap().contains("..."), "{}", seen["key_row_preview"]);
    assert_eq!(seen["key_status_created"], 200);
    assert_eq!(seen["key_status_disabled"], 401);
    assert_eq!(seen["key_status_enabled"], 200);
    assert_eq!(seen["key_name_after_rename"], "crew laptop (lost)");
    assert_eq!(seen["key_status_deleted"], 401);

    // The test mask: counts, timings and the masked photo.
    let facts = &seen["test_facts"];
    assert_eq!(facts["Faces"], "6", "{facts}");
    assert!(facts["Regions masked"].as_str().unwrap().parse::<u32>().unwrap() >= 6);
    assert!(facts["Inference"].as_str().unwrap().ends_with(" ms"));
    privacy::assert_faces_hidden(&out.join("admin-test-mask.png"), "group6.gt");

    assert!(seen["phone_overflow"].as_i64().unwrap() <= 0, "wider than a phone: {}", seen["phone_overflow"]);
    // Logout ends the session on the device; a reload stays signed out.
    assert_eq!(seen["console_hidden_after_logout"], true);
    assert_eq!(seen["session_after_logout"], 401);
    assert_eq!(seen["console_hidden_after_reload"], true);
    for url in seen["requests"].as_array().unwrap() {
        let url = url.as_str().unwrap();
        assert!(url.starts_with(&format!("{}/", d.base)) || url.starts_with("blob:") || url.starts_with("data:"), "{url}");
    }
}
