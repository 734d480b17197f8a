//! OTLP/HTTP: `POST /v1/traces` and `POST /v1/metrics` with protobuf or JSON
//! bodies, optionally gzip-compressed. The size limit applies to the body as
//! received and again while inflating, so a gzip bomb is refused after at most
//! `limit` bytes of output. Replies follow the OTLP/HTTP specification: 400 for
//! an undecodable body, 413 over the limit, 415 for an unknown content type or
//! encoding, 429/503 with Retry-After when the store cannot take it now.

use std::io::Read;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use flate2::read::GzDecoder;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::{Receiver, Refusal};

/// How a body is encoded, from its Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// `google.rpc.Status`, the error body OTLP/HTTP specifies.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The OTLP/HTTP routes of the receiver.
pub fn routes(receiver: Arc<Receiver>) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        .layer(DefaultBodyLimit::max(receiver.max_body))
        .with_state(receiver)
}

async fn traces(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (format, bytes) = match unwrap_body(&headers, body, receiver.max_body) {
        Ok(unwrapped) => unwrapped,
        Err(refused) => return *refused,
    };
    // The builder reads protobuf in place; JSON is decoded and encoded once.
    let encoded = match format {
        Format::Protobuf => bytes,
        Format::Json => match decode::<ExportTraceServiceRequest>(format, &bytes) {
            Ok(request) => Bytes::from(request.encode_to_vec()),
            Err(refused) => return *refused,
        },
    };
    reply(format, receiver.traces(encoded).await)
}

async fn metrics(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = unwrap_body(&headers, body, receiver.max_body).and_then(|(format, bytes)| {
        Ok((
            format,
            decode::<ExportMetricsServiceRequest>(format, &bytes)?,
        ))
    });
    match request {
        Ok((format, request)) => reply(format, receiver.metrics(request).await),
        Err(refused) => *refused,
    }
}

/// The body's format (from Content-Type) and its bytes, inflated if gzip.
fn unwrap_body(
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<(Format, Bytes), Box<Response>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = match content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase().as_str() {
        "application/x-protobuf" | "application/protobuf" => Format::Protobuf,
        "application/json" => Format::Json,
        other => {
            return Err(Box::new(error(
                Format::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Type {other:?}: send application/x-protobuf or application/json"),
            )))
        }
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok((format, body)),
        "gzip" => inflate(&body, limit)
            .map(|inflated| (format, Bytes::from(inflated)))
            .map_err(|(code, why)| Box::new(error(format, code, why))),
        other => Err(Box::new(error(
            format,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Encoding {other:?}: send gzip or no encoding"),
        ))),
    }
}

fn decode<T: Message + Default + DeserializeOwned>(
    format: Format,
    bytes: &[u8],
) -> Result<T, Box<Response>> {
    let decoded = match format {
        Format::Protobuf => T::decode(bytes).map_err(|e| e.to_string()),
        Format::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
    };
    decoded.map_err(|why| Box::new(malformed(format, why)))
}

fn malformed(format: Format, why: String) -> Response {
    error(
        format,
        StatusCode::BAD_REQUEST,
        format!("cannot decode the body: {why}"),
    )
}

/// Inflates a gzip body, refusing to produce more than `limit` bytes.
fn inflate(body: &[u8], limit: usize) -> Result<Vec<u8>, (StatusCode, String)> {
    let mut out = Vec::new();
    GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("cannot inflate the gzip body: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body inflates to more than the limit of {limit} bytes"),
        ));
    }
    Ok(out)
}

fn encode<T: Message + Serialize>(format: Format, message: &T) -> Vec<u8> {
    match format {
        Format::Protobuf => message.encode_to_vec(),
        Format::Json => serde_json::to_vec(message).expect("OTLP messages serialize"),
    }
}

fn reply<T: Message + Serialize>(format: Format, result: Result<T, Refusal>) -> Response {
    match result {
        Ok(response) => (
            [(header::CONTENT_TYPE, format.content_type())],
            encode(format, &response),
        )
            .into_response(),
        Err(Refusal::Malformed(why)) => malformed(format, why),
        Err(Refusal::Busy) => {
            let mut r = error(
                format,
                StatusCode::TOO_MANY_REQUESTS,
                "the store is busy; retry later".into(),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Err(Refusal::Unavailable(why)) => {
            let mut r = error(format, StatusCode::SERVICE_UNAVAILABLE, why);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
    }
}

fn error(format: Format, code: StatusCode, message: String) -> Response {
    let status = RpcStatus {
        code: i32::from(code.as_u16()),
        message,
    };
    (
        code,
        [(header::CONTENT_TYPE, format.content_type())],
        encode(format, &status),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    #[test]
    fn inflate_stops_at_the_limit() {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 1 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 10_000);
        assert_eq!(inflate(&bomb, 1 << 20).unwrap().len(), 1 << 20);
        assert_eq!(
            inflate(&bomb, (1 << 20) - 1).unwrap_err().0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            inflate(b"not gzip", 100).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn refusals_ask_the_client_to_retry_later() {
        let busy = reply::<RpcStatus>(Format::Protobuf, Err(Refusal::Busy));
        assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
        let down = reply::<RpcStatus>(Format::Json, Err(Refusal::Unavailable("disk full".into())));
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.headers()[header::RETRY_AFTER], "5");
    }
}
