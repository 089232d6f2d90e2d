//! The Xylolabs admin API over real HTTP against a running `veil serve`: admin users made with
//! `veil admin add-user`, cookie sessions with CSRF, HTTP Basic, admin keys, API key management
//! (a disabled or deleted key is refused at once), stored images and jobs with their redacted
//! results (judged by labelled boxes and a second detector), the test mask, stats, sign-in limits.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::daemon::Daemon;
use common::*;
use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";

fn client() -> Client {
    // Redirects are checked by hand: the admin downloads answer 302.
    Client::builder().timeout(Duration::from_secs(120)).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn json_of(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

fn add_user(state_dir: &Path, name: &str, password: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["admin", "add-user", name, "--state-dir", state_dir.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn daemon(extra: &str) -> (tempfile::TempDir, Daemon) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("veil.toml");
    std::fs::write(&cfg, format!("[jobs]\nsweep_interval_s = 0.2\n{extra}")).unwrap();
    let state = tmp.path().join("state");
    let out = add_user(&state, "ops", PASSWORD);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d = Daemon::start(&state, &["--config", cfg.to_str().unwrap()]);
    (tmp, d)
}

/// A signed-in console: the session cookie and its CSRF token.
struct Console {
    cookie: String,
    csrf: String,
}

impl Console {
    fn sign_in(c: &Client, d: &Daemon) -> Console {
        let resp = c
            .post(d.url("/api/v1/admin/auth/login"))
            .json(&json!({"username": "ops", "password": PASSWORD}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 204);
        let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
        for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=43200", "Path=/api/v1/admin"] {
            assert!(set.contains(attribute), "{set}");
        }
        assert!(!set.contains("Secure"), "plain HTTP: no Secure flag ({set})");
        let cookie = set.split(';').next().unwrap().to_string();
        let (s, session) =
            json_of(c.get(d.url("/api/v1/admin/auth/session")).header("Cookie", &cookie).send().unwrap());
        assert_eq!(s, 200, "{session}");
        assert_eq!((session["username"].as_str(), session["auth_method"].as_str()), (Some("ops"), Some("session")));
        let csrf = session["csrf_token"].as_str().unwrap().to_string();
        Console { cookie, csrf }
    }

    /// A request with the cookie and, for state changes, the CSRF token.
    fn send(&self, b: RequestBuilder) -> Response {
        b.header("Cookie", &self.cookie).header("X-CSRF-Token", &self.csrf).send().unwrap()
    }
}

fn image_part(name: &str) -> Part {
    Part::bytes(std::fs::read(photo(name)).unwrap()).file_name(name.to_string()).mime_str("image/jpeg").unwrap()
}

fn check_hidden(bytes: &[u8]) {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("out.jpg");
    std::fs::write(&p, bytes).unwrap();
    privacy::assert_faces_hidden(&p, "group6.gt");
}

#[test]
fn admin_users_sessions_keys_records_and_test_mask() {
    let (_tmp, d) = daemon("");
    let c = client();
    let state = d.state_dir.to_str().unwrap();

    // The password never comes from the command line; a short one is refused.
    assert!(!veil(&["admin", "add-user", "eve", "--password", PASSWORD, "--state-dir", state]).status.success());
    assert!(!add_user(&d.state_dir, "eve", "short").status.success());

    // No credentials: 401 in the service's error shape; an ordinary API key: 403.
    let (s, body) = json_of(c.get(d.url("/api/v1/admin/stats")).send().unwrap());
    assert_eq!(s, 401, "{body}");
    assert!(body["detail"].is_string());
    let (s, _) = json_of(c.get(d.url("/api/v1/admin/stats")).header("X-API-Key", &d.key).send().unwrap());
    assert_eq!(s, 403);

    // A wrong password, then the right one.
    let (s, body) = json_of(
        c.post(d.url("/api/v1/admin/auth/login"))
            .json(&json!({"username": "ops", "password": "wrong password"}))
            .send()
            .unwrap(),
    );
    assert_eq!(s, 401, "{body}");
    assert!(c
        .post(d.url("/api/v1/admin/auth/login"))
        .json(&json!({"username": "ops", "password": "wrong password"}))
        .send()
        .unwrap()
        .headers()
        .get("set-cookie")
        .is_none());
    let console = Console::sign_in(&c, &d);

    // A state change with the cookie but without the CSRF token is refused.
    let resp = c
        .post(d.url("/api/v1/admin/api-keys"))
        .header("Cookie", &console.cookie)
        .json(&json!({"name": "csrf"}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);

    // Keys: created (shown once), used, listed with preview and use, disabled, enabled, deleted.
    let (s, made) =
        json_of(console.send(c.post(d.url("/api/v1/admin/api-keys")).json(&json!({"name": "field laptop"}))));
    assert_eq!(s, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_string();
    let id = made["id"].as_i64().unwrap();
    assert!(
        key.starts_with(made["key_prefix"].as_str().unwrap()) && key.ends_with(made["key_suffix"].as_str().unwrap())
    );
    assert_eq!(
        made["key_preview"].as_str().unwrap(),
        format!("{}...{}", made["key_prefix"].as_str().unwrap(), &key[key.len() - 4..])
    );
    assert_eq!((made["is_active"].as_bool(), made["request_count"].as_i64()), (Some(true), Some(0)));
    assert_eq!(c.get(d.url("/api/v1/usage")).header("X-API-Key", &key).send().unwrap().status(), 200);
    let (s, page) = json_of(console.send(c.get(d.url("/api/v1/admin/api-keys?page=1&page_size=10"))));
    assert_eq!(s, 200);
    assert_eq!(
        (page["total"].as_i64(), page["page"].as_i64(), page["page_size"].as_i64(), page["total_pages"].as_i64()),
        (Some(2), Some(1), Some(10), Some(1))
    );
    assert!(!page.to_string().contains(&key[14..]), "a listing never shows a key");
    let listed = page["items"].as_array().unwrap().iter().find(|k| k["id"] == id).unwrap().clone();
    assert_eq!(listed["request_count"], 1, "{listed}");
    assert!(listed["last_used_at"].is_string());

    let (s, off) = json_of(
        console.send(
            c.patch(d.url(&format!("/api/v1/admin/api-keys/{id}")))
                .json(&json!({"is_active": false, "name": "laptop (lost)"})),
        ),
    );
    assert_eq!(s, 200, "{off}");
    assert_eq!((off["is_active"].as_bool(), off["name"].as_str()), (Some(false), Some("laptop (lost)")));
    assert_eq!(c.get(d.url("/api/v1/usage")).header("X-API-Key", &key).send().unwrap().status(), 401);
    console.send(c.patch(d.url(&format!("/api/v1/admin/api-keys/{id}"))).json(&json!({"is_active": true})));
    assert_eq!(c.get(d.url("/api/v1/usage")).header("X-API-Key", &key).send().unwrap().status(), 200);
    assert_eq!(console.send(c.delete(d.url(&format!("/api/v1/admin/api-keys/{id}")))).status(), 204);
    assert_eq!(c.get(d.url("/api/v1/usage")).header("X-API-Key", &key).send().unwrap().status(), 401);
    let (s, _) = json_of(console.send(c.get(d.url(&format!("/api/v1/admin/api-keys/{id}")))));
    assert_eq!(s, 404);
    let (s, _) = json_of(console.send(c.patch(d.url("/api/v1/admin/api-keys/1")).json(&json!({"bogus": 1}))));
    assert_eq!(s, 422);

    // An upload through PiiBlur's API shows up as an image and a masking job.
    let form = Form::new().part("file", image_part("group6.jpg")).text("pii_categories[]", "heads");
    let (s, queued) =
        json_of(c.post(d.url("/api/v1/media/redact")).header("X-API-Key", &d.key).multipart(form).send().unwrap());
    assert_eq!(s, 201, "{queued}");
    let media = queued["media_id"].as_str().unwrap().to_string();
    poll_for("the job", Duration::from_secs(120), || {
        let (_, v) = json_of(console.send(c.get(d.url(&format!("/api/v1/admin/jobs/{media}")))));
        (v["status"] == "completed").then_some(v)
    });
    let (s, images) = json_of(console.send(c.get(d.url("/api/v1/admin/images"))));
    assert_eq!(s, 200);
    let image = &images["items"][0];
    assert_eq!(
        (image["id"].as_str(), image["width"].as_i64(), image["job_count"].as_i64()),
        (Some(media.as_str()), Some(1280), Some(1))
    );
    assert_eq!(image["original_filename"], "group6.jpg");
    assert!(image["original_url"].is_null(), "originals are deleted once processed: {image}");
    // The original is gone (the default), so its download is 404.
    let (s, _) = json_of(console.send(c.get(d.url(&format!("/api/v1/admin/images/{media}/download")))));
    assert_eq!(s, 404);

    let count = |query: &str| {
        let (s, v) = json_of(console.send(c.get(d.url(&format!("/api/v1/admin/jobs?{query}")))));
        assert_eq!(s, 200, "{query}: {v}");
        v["total"].as_i64().unwrap()
    };
    assert_eq!(count(""), 1);
    assert_eq!(count("job_type=mask&method=gaussian"), 1);
    assert_eq!(count("job_type=detect"), 0);
    assert_eq!(count("method=pixelate"), 0);
    assert_eq!(count("status=failed"), 0);
    let (s, _) = json_of(console.send(c.get(d.url("/api/v1/admin/jobs?job_type=teleport"))));
    assert_eq!(s, 422);
    let (s, job) = json_of(console.send(c.get(d.url(&format!("/api/v1/admin/jobs/{media}")))));
    assert_eq!(s, 200);
    assert_eq!(
        (job["job_type"].as_str(), job["method"].as_str(), job["face_count"].as_i64()),
        (Some("mask"), Some("gaussian"), Some(6))
    );
    assert_eq!(job["detections"].as_array().map(Vec::len), Some(6), "{job}");
    let resp = console.send(c.get(d.url(&format!("/api/v1/admin/jobs/{media}/download"))));
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let resp = console.send(c.get(d.url(&location)));
    assert_eq!(resp.status(), 200);
    check_hidden(&resp.bytes().unwrap());

    // The test mask: the detect fields, masking and the masked image inline.
    let form = Form::new().part("image", image_part("group6.jpg"));
    let (s, tried) =
        json_of(console.send(c.post(d.url("/api/v1/admin/test/mask?method=gaussian&strength=199")).multipart(form)));
    assert_eq!(s, 200, "{tried}");
    assert_eq!(tried["summary"]["face_count"], 6);
    assert!(tried["masking"]["regions_masked"].as_i64().unwrap() >= 6, "{}", tried["masking"]);
    assert_eq!(
        (tried["masking"]["method"].as_str(), tried["masking"]["strength"].as_i64()),
        (Some("gaussian"), Some(199))
    );
    assert_eq!((tried["output"]["format"].as_str(), tried["output"]["quality"].as_i64()), (Some("jpeg"), Some(95)));
    let masked =
        base64::engine::general_purpose::STANDARD.decode(tried["output"]["image_base64"].as_str().unwrap()).unwrap();
    assert_eq!(masked.len() as i64, tried["output"]["size_bytes"].as_i64().unwrap());
    check_hidden(&masked);
    assert!(tried["processing"]["inference_ms"].as_f64().unwrap() > 0.0);

    // Stats, over HTTP Basic with the admin's password and with an admin key.
    let (s, stats) = json_of(c.get(d.url("/api/v1/admin/stats")).basic_auth("ops", Some(PASSWORD)).send().unwrap());
    assert_eq!(s, 200, "{stats}");
    assert_eq!((stats["total_jobs"].as_i64(), stats["total_faces_detected"].as_i64()), (Some(1), Some(6)));
    assert_eq!(stats["jobs_by_status"]["completed"], 1);
    let admin_key =
        String::from_utf8(veil_ok(&["keys", "create", "--name", "ops", "--admin", "--state-dir", state]).stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_string();
    let (s, _) = json_of(c.get(d.url("/api/v1/admin/api-keys")).header("X-API-Key", &admin_key).send().unwrap());
    assert_eq!(s, 200);
    // The field page opens the console for an admin key, and only for one.
    let (_, device) = json_of(c.get(d.url("/api/v1/device")).header("X-API-Key", &admin_key).send().unwrap());
    assert_eq!(device["admin_key"], true);
    let (_, device) = json_of(c.get(d.url("/api/v1/device")).header("X-API-Key", &d.key).send().unwrap());
    assert_eq!(device["admin_key"], false);

    // Deleting the image removes its job and result.
    assert_eq!(console.send(c.delete(d.url(&format!("/api/v1/admin/images/{media}")))).status(), 204);
    let (s, _) = json_of(console.send(c.get(d.url(&format!("/api/v1/admin/jobs/{media}")))));
    assert_eq!(s, 404);

    // Password attempts are limited per client: ten a minute (a minute may turn over once).
    let mut tries = 0;
    let limited = loop {
        tries += 1;
        let resp = c.get(d.url("/api/v1/admin/stats")).basic_auth("ops", Some("not the password")).send().unwrap();
        if resp.status() == 429 {
            break resp;
        }
        assert_eq!(resp.status(), 401);
        assert!(tries <= 21, "no 429 after {tries} wrong passwords");
    };
    assert!(limited.headers().contains_key("retry-after"));
    let (s, _) = json_of(
        c.post(d.url("/api/v1/admin/auth/login"))
            .json(&json!({"username": "ops", "password": PASSWORD}))
            .send()
            .unwrap(),
    );
    assert_eq!(s, 429, "sign-in is limited too");
    // The console's session is not: sign out ends it.
    let resp = console.send(c.post(d.url("/api/v1/admin/auth/logout")));
    assert_eq!(resp.status(), 204);
    assert!(resp.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let (s, _) = json_of(c.get(d.url("/api/v1/admin/auth/session")).header("Cookie", &console.cookie).send().unwrap());
    assert_eq!(s, 401);
}

#[test]
fn kept_originals_download_through_a_redirect() {
    let (_tmp, d) = daemon("keep_originals_hours = 1.0\n[api]\nserve_originals = true\n");
    let c = client();
    let form = Form::new().part("file", image_part("group6.jpg")).text("pii_categories[]", "heads");
    let (_, queued) =
        json_of(c.post(d.url("/api/v1/media/redact")).header("X-API-Key", &d.key).multipart(form).send().unwrap());
    let media = queued["media_id"].as_str().unwrap().to_string();
    let basic = |b: RequestBuilder| b.basic_auth("ops", Some(PASSWORD)).send().unwrap();
    poll_for("the job", Duration::from_secs(120), || {
        let (_, v) = json_of(basic(c.get(d.url(&format!("/api/v1/admin/images/{media}")))));
        v["original_url"].is_string().then_some(v)
    });
    let resp = basic(c.get(d.url(&format!("/api/v1/admin/images/{media}/download"))));
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let resp = basic(c.get(d.url(&location)));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap().as_ref(), std::fs::read(photo("group6.jpg")).unwrap().as_slice());
}
