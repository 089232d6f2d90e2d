//! The metadata policy for `--keep-metadata`: EXIF is rebuilt without any GPS field, without the
//! thumbnail (it shows the unredacted photo) and with the orientation reset (pixels are upright).

use std::io::Cursor;

use exif::{experimental::Writer, In, Reader, Tag};

/// Rebuild raw EXIF keeping only primary-image, non-GPS fields (orientation forced to 1).
/// Returns `None` when nothing is left or the EXIF cannot be parsed (it is then dropped).
pub fn exif_without_gps(raw: &[u8]) -> Option<Vec<u8>> {
    let parsed = Reader::new().read_raw(raw.to_vec()).ok()?;
    let kept: Vec<&exif::Field> = parsed
        .fields()
        .filter(|f| f.ifd_num == In::PRIMARY)
        .filter(|f| !is_gps(f.tag))
        .filter(|f| {
            !matches!(
                f.tag,
                Tag::Orientation
                    | Tag::MakerNote
                    | Tag::ExifIFDPointer
                    | Tag::GPSInfoIFDPointer
                    | Tag::InteropIFDPointer
            )
        })
        .filter(|f| f.tag.context() != exif::Context::Interop)
        .collect();
    let orientation = exif::Field { tag: Tag::Orientation, ifd_num: In::PRIMARY, value: exif::Value::Short(vec![1]) };
    let mut writer = Writer::new();
    for f in &kept {
        writer.push_field(f);
    }
    writer.push_field(&orientation);
    let mut out = Cursor::new(Vec::new());
    writer.write(&mut out, parsed.little_endian()).ok()?;
    Some(out.into_inner())
}

fn is_gps(tag: Tag) -> bool {
    tag.context() == exif::Context::Gps
}
