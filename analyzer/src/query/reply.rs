//! Large answers of the query API within a memory budget. An answer is made
//! whole (in its turn, see `api::SCANS_AT_ONCE`) and then sent in chunks;
//! until its last chunk is handed to the connection it holds its size of
//! [`REPLY_BUDGET_MB`], and an answer that finds no room within a few
//! seconds is a 503. So the answers in flight take at most that much memory
//! however many clients ask at once (a client that stops reading is cut off
//! by the listener's stall timeout, which frees its share).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Memory the answers in flight may take, in MB.
pub const REPLY_BUDGET_MB: usize = 128;
/// The budget is counted in units of this many bytes.
const UNIT: usize = 64 * 1024;
/// How long an answer waits for room before it is a 503.
const ROOM_WAIT: Duration = Duration::from_secs(5);

/// The shared budget of answers in flight.
#[derive(Clone)]
pub struct ReplyBudget(Arc<Semaphore>);

impl Default for ReplyBudget {
    fn default() -> Self {
        ReplyBudget(Arc::new(Semaphore::new(
            REPLY_BUDGET_MB * 1024 * 1024 / UNIT,
        )))
    }
}

impl ReplyBudget {
    /// A JSON answer of `json`'s bytes once there is room for it; `None`
    /// when there is none within a few seconds.
    pub async fn json(&self, json: Vec<u8>) -> Option<Response> {
        // What the answer holds is its capacity, not only its length.
        let units = json
            .capacity()
            .div_ceil(UNIT)
            .clamp(1, REPLY_BUDGET_MB * 1024 * 1024 / UNIT);
        let room = tokio::time::timeout(ROOM_WAIT, self.0.clone().acquire_many_owned(units as u32))
            .await
            .ok()?
            .ok()?;
        let body = Body::new(Chunks {
            bytes: Bytes::from(json),
            room: Some(room),
        });
        let mut response = (StatusCode::OK, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Some(response)
    }
}

/// An answer handed out a chunk at a time, holding its room until the last.
struct Chunks {
    bytes: Bytes,
    room: Option<OwnedSemaphorePermit>,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.bytes.is_empty() {
            self.room = None;
            return Poll::Ready(None);
        }
        let n = self.bytes.len().min(UNIT);
        let chunk = self.bytes.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.bytes.len() as u64)
    }
}
