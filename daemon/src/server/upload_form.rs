//! Reading a `multipart/form-data` upload into files and text fields, with field names matched
//! in any letter case, and the body-size limit reported as 413 in the route's own style.

use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::StatusCode;
use bytes::Bytes;

use super::api_error::{ApiError, ApiStyle};

pub struct FormFile {
    pub field: String,
    pub filename: Option<String>,
    /// The file's bytes (empty when it was spooled to disk as a video).
    pub bytes: Bytes,
    /// A video, written to a temporary file as it arrived (only routes that take videos).
    pub video: Option<SpooledVideo>,
}

/// A video part of an upload, on disk.
pub struct SpooledVideo {
    pub path: tempfile::TempPath,
    pub bytes: u64,
}

/// Where a route that takes videos spools them, and the size limits of each kind of file
/// (the route's body limit is the larger of the two).
pub struct VideoSpool<'a> {
    pub dir: &'a std::path::Path,
    pub max_video_bytes: u64,
    pub max_image_bytes: u64,
}

#[derive(Default)]
pub struct UploadForm {
    pub files: Vec<FormFile>,
    pub fields: Vec<(String, String)>,
}

/// Text fields longer than this are refused (no option needs more).
const MAX_TEXT_FIELD: usize = 64 * 1024;
/// Parts per request (a batch of 20 files plus options fits easily).
const MAX_PARTS: usize = 200;

fn multipart_error(style: ApiStyle, e: MultipartError) -> ApiError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(style, status, "Upload too large: the body exceeds the size limit")
    } else {
        ApiError::bad_request(style, format!("Malformed multipart body: {}", e.body_text()))
    }
}

impl UploadForm {
    /// Read every part. A part with a file name (or a non-text content type) is a file.
    pub async fn read(mp: Result<Multipart, MultipartRejection>, style: ApiStyle) -> Result<Self, ApiError> {
        Self::read_with(mp, style, None).await
    }

    /// As [`read`](Self::read), but a file part whose first bytes are a video container is
    /// written to a temporary file under `spool` as it arrives instead of being held in memory.
    pub async fn read_with(
        mp: Result<Multipart, MultipartRejection>,
        style: ApiStyle,
        spool: Option<&VideoSpool<'_>>,
    ) -> Result<Self, ApiError> {
        let mut mp = mp.map_err(|e| {
            ApiError::new(style, StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Expected multipart/form-data: {}", e.body_text()))
        })?;
        let mut form = UploadForm::default();
        // With a spool the route's body limit is the video limit: what is held in memory (photos,
        // text) is capped at the photo limit over all parts instead.
        let mut memory_left = spool.map(|s| s.max_image_bytes + (MAX_TEXT_FIELD as u64) * 4);
        while let Some(mut field) = mp.next_field().await.map_err(|e| multipart_error(style, e))? {
            if form.files.len() + form.fields.len() >= MAX_PARTS {
                return Err(ApiError::bad_request(style, format!("More than {MAX_PARTS} form fields")));
            }
            let name = field.name().unwrap_or("").to_string();
            let filename = field.file_name().map(str::to_string);
            let is_file = filename.is_some()
                || field.content_type().is_some_and(|c| !c.starts_with("text/") && c != "application/json");
            if let (true, Some(spool), Some(left)) = (is_file, spool, memory_left.as_mut()) {
                let (bytes, video) = read_file_part(field, style, spool, left).await?;
                form.files.push(FormFile { field: name, filename, bytes, video });
                continue;
            }
            let bytes = match memory_left.as_mut() {
                // A text part, read no further than a text field may be long.
                Some(left) => {
                    let mut text = Vec::new();
                    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(style, e))? {
                        text.extend_from_slice(&chunk);
                        if text.len() > MAX_TEXT_FIELD || text.len() as u64 > *left {
                            return Err(ApiError::bad_request(style, format!("Field '{name}' is longer than {MAX_TEXT_FIELD} bytes")));
                        }
                    }
                    *left -= text.len() as u64;
                    Bytes::from(text)
                }
                None => field.bytes().await.map_err(|e| multipart_error(style, e))?,
            };
            if is_file {
                form.files.push(FormFile { field: name, filename, bytes, video: None });
            } else {
                if bytes.len() > MAX_TEXT_FIELD {
                    return Err(ApiError::bad_request(style, format!("Field '{name}' is longer than {MAX_TEXT_FIELD} bytes")));
                }
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::bad_request(style, format!("Field '{name}' is not UTF-8 text")))?;
                form.fields.push((name, text));
            }
        }
        Ok(form)
    }

    /// The first value of text field `name` (any letter case).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    }

    /// Every value of the text fields named any of `names` (any letter case).
    pub fn texts(&self, names: &[&str]) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// Files sent under any of `names` (any letter case).
    pub fn files_named(&self, names: &[&str]) -> Vec<&FormFile> {
        self.files.iter().filter(|f| names.iter().any(|n| f.field.eq_ignore_ascii_case(n))).collect()
    }

    /// Take the spooled video of the first file under one of `names`, if it is one.
    pub fn take_video(&mut self, names: &[&str]) -> Option<SpooledVideo> {
        self.files.iter_mut().find(|f| names.iter().any(|n| f.field.eq_ignore_ascii_case(n)))?.video.take()
    }

    /// Exactly one file under one of `names`; 400 naming the field otherwise. A text field of
    /// that name (a client that forgot `@` in curl) is reported as such.
    pub fn single_file(&self, names: &[&str], style: ApiStyle) -> Result<&FormFile, ApiError> {
        let files = self.files_named(names);
        match files.as_slice() {
            [one] => Ok(one),
            [] if !self.texts(names).is_empty() => Err(ApiError::unprocessable(
                style,
                format!("Field '{}' must be a file upload, not text", names[0]),
            )),
            [] => Err(ApiError::unprocessable(style, format!("Missing file field '{}'", names[0]))),
            _ => Err(ApiError::bad_request(style, format!("Send one file in '{}', got {}", names[0], files.len()))),
        }
    }

    /// A boolean text field: true/false, 1/0, yes/no, on/off (any case).
    pub fn flag(&self, name: &str, style: ApiStyle) -> Result<Option<bool>, ApiError> {
        self.text(name).map(|v| parse_flag(v).ok_or_else(|| bad_value(style, name, v, "true or false"))).transpose()
    }

    /// A numeric text field.
    pub fn number<T: std::str::FromStr>(&self, name: &str, style: ApiStyle) -> Result<Option<T>, ApiError> {
        self.text(name).map(|v| v.parse::<T>().map_err(|_| bad_value(style, name, v, "a number"))).transpose()
    }
}

fn too_large(style: ApiStyle, what: &str, max: u64) -> ApiError {
    ApiError::new(style, StatusCode::PAYLOAD_TOO_LARGE, format!("Upload too large: {what} may be at most {} MB", max >> 20))
}

/// One file part, chunk by chunk: held in memory up to the image limit, or, if it starts like a
/// video container, written to a temporary file up to the video limit.
async fn read_file_part(
    mut field: axum::extract::multipart::Field<'_>,
    style: ApiStyle,
    spool: &VideoSpool<'_>,
    memory_left: &mut u64,
) -> Result<(Bytes, Option<SpooledVideo>), ApiError> {
    use std::io::Write;
    let mut head: Vec<u8> = Vec::new();
    let mut file: Option<(tempfile::NamedTempFile, u64)> = None;
    let write_error = |e: std::io::Error| ApiError::internal(style, format!("cannot spool the upload: {e}"));
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(style, e))? {
        if let Some((f, written)) = file.as_mut() {
            *written += chunk.len() as u64;
            if *written > spool.max_video_bytes {
                return Err(too_large(style, "a video", spool.max_video_bytes));
            }
            f.write_all(&chunk).map_err(write_error)?;
            continue;
        }
        head.extend_from_slice(&chunk);
        let over = head.len() as u64 > spool.max_image_bytes.min(*memory_left).max(16);
        if over && crate::video::probe::sniff(&head).is_none() {
            return Err(too_large(style, "the photos of a request", spool.max_image_bytes));
        }
        if head.len() >= 16 && crate::video::probe::sniff(&head).is_some() {
            let mut f = tempfile::Builder::new().prefix(".upload-").tempfile_in(spool.dir).map_err(write_error)?;
            f.write_all(&head).map_err(write_error)?;
            file = Some((f, head.len() as u64));
            head = Vec::new();
        }
    }
    match file {
        Some((f, bytes)) => {
            f.as_file().sync_all().map_err(write_error)?;
            Ok((Bytes::new(), Some(SpooledVideo { path: f.into_temp_path(), bytes })))
        }
        None => {
            *memory_left = memory_left.saturating_sub(head.len() as u64);
            Ok((Bytes::from(head), None))
        }
    }
}

pub fn parse_flag(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub fn bad_value(style: ApiStyle, name: &str, value: &str, expected: &str) -> ApiError {
    let shown: String = value.chars().take(40).collect();
    ApiError::unprocessable(style, format!("Field '{name}' is '{shown}'; expected {expected}"))
}
