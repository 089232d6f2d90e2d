//! File and MJPEG sources over the project's fixture photos (`make fixtures`).

use std::path::PathBuf;

use veil_camera::{FrameSource, ImageFiles, MjpegFile};

fn fixtures() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cache");
    assert!(p.join("group6.jpg").is_file(), "run `make fixtures` first");
    p
}

#[test]
fn directory_source_is_sorted_numbered_and_loops() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join("astronaut.png"), dir.path().join("b.png")).unwrap();
    std::fs::copy(fixtures().join("group6.jpg"), dir.path().join("a.jpg")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    let mut src = ImageFiles::from_dir(dir.path(), false).unwrap();
    assert!(src.describe().contains("2 images"));
    let a = src.next_frame().unwrap().unwrap();
    let b = src.next_frame().unwrap().unwrap();
    assert_eq!((a.width, a.height, a.sequence), (1280, 886, 0));
    assert_eq!((b.width, b.height, b.sequence), (512, 512, 1));
    assert_eq!(a.rgb.len(), 1280 * 886 * 3);
    assert!(src.next_frame().unwrap().is_none());
    let mut looped = ImageFiles::from_dir(dir.path(), true).unwrap();
    let seqs: Vec<(u64, u32)> =
        (0..5).map(|_| looped.next_frame().unwrap().unwrap()).map(|f| (f.sequence, f.width)).collect();
    assert_eq!(seqs, vec![(0, 1280), (1, 512), (2, 1280), (3, 512), (4, 1280)]);
    let empty = tempfile::tempdir().unwrap();
    assert!(ImageFiles::from_dir(empty.path(), false).is_err());
}

#[test]
fn mjpeg_stream_splits_into_frames_and_drops_a_truncated_tail() {
    let a = std::fs::read(fixtures().join("group6.jpg")).unwrap();
    let b = std::fs::read(fixtures().join("mask_white.jpg")).unwrap();
    let mut stream = a.clone();
    stream.extend_from_slice(&b);
    stream.extend_from_slice(&a[..a.len() / 2]);
    let mut src = MjpegFile::from_bytes(stream, "test".into(), false).unwrap();
    let f0 = src.next_frame().unwrap().unwrap();
    let f1 = src.next_frame().unwrap().unwrap();
    assert_eq!((f0.width, f0.height), (1280, 886));
    assert_eq!((f1.width, f1.height, f1.sequence), (680, 366, 1));
    assert!(src.next_frame().unwrap().is_none(), "a half frame is not a frame");
    assert!(MjpegFile::from_bytes(b"no jpeg here".to_vec(), "x".into(), false).is_err());
}

/// Remove every DHT (Huffman table) segment, as many UVC webcams send MJPEG frames.
fn strip_huffman_tables(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        let marker = jpeg[i + 1];
        if marker == 0xDA {
            out.extend_from_slice(&jpeg[i..]);
            break;
        }
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        if marker != 0xC4 {
            out.extend_from_slice(&jpeg[i..i + 2 + len]);
        }
        i += 2 + len;
    }
    out
}

#[test]
fn mjpeg_decoding_matches_the_reference_and_accepts_frames_without_huffman_tables() {
    // Reference: the fixture photo's pixels; a camera-like JPEG of it at quality 95 must decode
    // to within a couple of levels, with or without its Huffman tables.
    let reference = image::open(fixtures().join("astronaut.png")).unwrap().into_rgb8();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95).encode_image(&reference).unwrap();
    let bare = strip_huffman_tables(&jpeg);
    assert!(bare.len() < jpeg.len(), "the encoder wrote Huffman tables to strip");
    for (what, data) in [("with tables", &jpeg), ("without tables", &bare)] {
        let mut rgb = Vec::new();
        let (w, h) = veil_camera::decode_mjpeg(data, what, &mut rgb).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!((w, h), reference.dimensions());
        let mae: f64 = rgb.iter().zip(reference.as_raw()).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>()
            / rgb.len() as f64;
        assert!(mae < 2.5, "{what}: mean abs error {mae}");
    }
}
