//! A unit's whole image as a response, for the station that provisioned it and for the unit in
//! the field alike: streamed from the release's bytes, with only the key TLV's value (and a few
//! bytes around it) copied per unit.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use touchmark_authority::delivery::UnitImage;

use crate::error::ApiError;

/// The response that streams `image`, with its hash, release id and version in headers.
pub(super) fn response(image: &UnitImage) -> Result<Response, ApiError> {
    let body = Body::from_stream(futures_util::stream::iter(
        chunks(image)
            .into_iter()
            .map(Ok::<_, std::convert::Infallible>),
    ));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, image.release_image.len())
        .header("x-touchmark-image-sha256", image.sha256.to_hex())
        .header("x-touchmark-release", image.release.id.as_str())
        .header("x-touchmark-version", image.release.version.as_str())
        .body(body)
        .map_err(|e| ApiError::from(touchmark_authority::AuthorityError::internal(e)))
}

/// The least a chunk after the first holds, when the image has that much left: an HTTP/2 peer
/// counts DATA frames much smaller than this as framing overhead, and closes a connection that
/// sends too many (h2's `too_many_data_frames`).
const MIN_CHUNK: usize = 16 * 1024;

/// A unit's image as body chunks: the release's bytes before the key TLV's value, shared with
/// every unit's response; then the unit's value with at least [`MIN_CHUNK`] of the bytes after
/// it (the only bytes copied per unit); then the rest of the release, shared.
fn chunks(image: &UnitImage) -> Vec<Bytes> {
    let shared = Bytes::from_owner(SharedImage(Arc::clone(&image.release_image)));
    let size = shared.len();
    let start = image.value_offset.min(size);
    let end = (start + image.value.len()).min(size);
    let copied_to = (end + MIN_CHUNK).min(size);
    let mut tail = Vec::with_capacity(image.value.len() + (copied_to - end));
    tail.extend_from_slice(&image.value);
    tail.extend_from_slice(&shared[end..copied_to]);
    [
        shared.slice(..start),
        Bytes::from(tail),
        shared.slice(copied_to..),
    ]
    .into_iter()
    .filter(|b| !b.is_empty())
    .collect()
}

/// A release's image shared by every unit's response.
struct SharedImage(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedImage {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
