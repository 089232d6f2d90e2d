//! Reading a `multipart/form-data` upload into files and text fields, with field names matched
//! in any letter case, and the body-size limit reported as 413 in the route's own style.

use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::StatusCode;
use bytes::Bytes;

use super::api_error::{ApiError, ApiStyle};

pub struct FormFile {
    pub field: String,
    pub filename: Option<String>,
    pub bytes: Bytes,
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
        let mut mp = mp.map_err(|e| {
            ApiError::new(style, StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Expected multipart/form-data: {}", e.body_text()))
        })?;
        let mut form = UploadForm::default();
        while let Some(field) = mp.next_field().await.map_err(|e| multipart_error(style, e))? {
            if form.files.len() + form.fields.len() >= MAX_PARTS {
                return Err(ApiError::bad_request(style, format!("More than {MAX_PARTS} form fields")));
            }
            let name = field.name().unwrap_or("").to_string();
            let filename = field.file_name().map(str::to_string);
            let is_file = filename.is_some()
                || field.content_type().is_some_and(|c| !c.starts_with("text/") && c != "application/json");
            let bytes = field.bytes().await.map_err(|e| multipart_error(style, e))?;
            if is_file {
                form.files.push(FormFile { field: name, filename, bytes });
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
