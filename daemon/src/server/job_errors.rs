//! How the job engine's errors become HTTP statuses, the same for every API style.

use axum::http::{header, StatusCode};

use super::api_error::{ApiError, ApiStyle};
use crate::jobs::memory_budget::BudgetError;
use crate::jobs::{InlineError, ProcessError, SubmitError};
use crate::photo::PhotoError;

pub fn photo_error(style: ApiStyle, e: &PhotoError) -> ApiError {
    let status = match e {
        PhotoError::TooLarge { .. } | PhotoError::Dimensions { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        PhotoError::UnknownFormat => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        PhotoError::Empty | PhotoError::Corrupt { .. } => StatusCode::BAD_REQUEST,
        PhotoError::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(style, status, e.to_string())
}

fn busy(style: ApiStyle, message: String) -> ApiError {
    ApiError::new(style, StatusCode::SERVICE_UNAVAILABLE, message).with_header(header::RETRY_AFTER, "5")
}

pub fn submit_error(style: ApiStyle, e: SubmitError) -> ApiError {
    match e {
        SubmitError::BadImage(p) => photo_error(style, &p),
        SubmitError::BadOptions(m) => ApiError::unprocessable(style, m),
        SubmitError::BadVideo(m) => ApiError::unprocessable(style, format!("Unreadable video: {m}")),
        SubmitError::VideoTooLong { .. } => ApiError::new(style, StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        SubmitError::QueueFull(_) => busy(style, e.to_string()),
        SubmitError::Io(_) | SubmitError::Store(_) => ApiError::internal(style, e.to_string()),
    }
}

pub fn process_error(style: ApiStyle, e: &ProcessError) -> ApiError {
    match e {
        ProcessError::Image(p) => photo_error(style, p),
        ProcessError::NoFace => ApiError::unprocessable(style, "No face detected"),
        ProcessError::Detection(_) | ProcessError::Internal(_) => ApiError::internal(style, e.to_string()),
        ProcessError::Budget(BudgetError::TooBig { .. }) => ApiError::new(style, StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        ProcessError::Budget(BudgetError::Busy { .. }) => busy(style, e.to_string()),
    }
}

pub fn inline_error(style: ApiStyle, e: InlineError) -> ApiError {
    match e {
        InlineError::Failed(p) => process_error(style, &p),
        InlineError::Busy(_) | InlineError::Timeout(_) | InlineError::Stopped => busy(style, e.to_string()),
    }
}
