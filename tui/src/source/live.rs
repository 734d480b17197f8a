//! A running analyzer's query API, over HTTP: each answer is deserialized
//! into its type, and each failure says whether the server could not be
//! reached, refused, or answered something else.

use std::time::Duration;

use jvmapm_analyzer::point::{SpanId, TraceId};
use jvmapm_analyzer::query::answers::{
    ApiFailure, AreaProfile, EdgeCalls, InstanceList, ServiceMap, Stats, Trace, Transaction,
    XlogPage,
};
use jvmapm_analyzer::query::jvm::JvmView;
use jvmapm_analyzer::query::profile::Area;
use serde::de::DeserializeOwned;

use super::{Source, SourceError, PAGE};

/// A running analyzer's query API.
pub struct Live {
    base: String,
    token: Option<String>,
    client: reqwest::blocking::Client,
}

impl Live {
    pub fn new(base: &str, token: Option<String>) -> Result<Live, SourceError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| SourceError::Client(e.to_string()))?;
        Ok(Live {
            base: base.trim_end_matches('/').to_string(),
            token,
            client,
        })
    }

    fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, SourceError> {
        let endpoint = format!("{}{path}", self.base);
        let mut request = self.client.get(&endpoint).query(query);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let unreachable = |e: reqwest::Error| SourceError::Unreachable {
            url: self.base.clone(),
            why: root_cause(&e),
        };
        let response = request.send().map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().map_err(unreachable)?;
        if !status.is_success() {
            let reason = serde_json::from_slice::<ApiFailure>(&body)
                .map_or_else(|_| "no reason given".to_string(), |failure| failure.error);
            return Err(SourceError::Refused {
                url: self.base.clone(),
                status: status.to_string(),
                reason,
            });
        }
        serde_json::from_slice(&body).map_err(|e| SourceError::Malformed {
            endpoint,
            why: e.to_string(),
        })
    }
}

/// The innermost error, which says what actually failed (refused, timed out).
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut e = e;
    while let Some(source) = e.source() {
        e = source;
    }
    e.to_string()
}

impl Source for Live {
    fn describe(&self) -> String {
        self.base.clone()
    }

    fn xlog(&mut self, from_ms: u64, to_ms: u64, after: u64) -> Result<XlogPage, SourceError> {
        let query = [
            ("from", from_ms.to_string()),
            ("to", to_ms.to_string()),
            ("after", after.to_string()),
            ("limit", PAGE.to_string()),
        ];
        self.get("/api/v1/xlog", &query)
    }

    fn stats(&mut self, from_ms: u64, to_ms: u64) -> Result<Stats, SourceError> {
        let query = [("from", from_ms.to_string()), ("to", to_ms.to_string())];
        self.get("/api/v1/stats", &query)
    }

    fn instances(&mut self) -> Result<InstanceList, SourceError> {
        self.get("/api/v1/instances", &[])
    }

    fn jvm(&mut self, instance: &str, from_ms: u64, to_ms: u64) -> Result<JvmView, SourceError> {
        let query = [
            ("instance", instance.to_string()),
            ("from", from_ms.to_string()),
            ("to", to_ms.to_string()),
        ];
        self.get("/api/v1/jvm", &query)
    }

    fn transaction(
        &mut self,
        trace_id: TraceId,
        span_id: SpanId,
        end_ms: u64,
    ) -> Result<Transaction, SourceError> {
        let path = format!("/api/v1/transactions/{trace_id}/{span_id}");
        self.get(&path, &[("end_ms", end_ms.to_string())])
    }

    fn profile(&mut self, area: &Area, limit: usize) -> Result<AreaProfile, SourceError> {
        let mut query = area.query();
        query.push(("limit", limit.to_string()));
        self.get("/api/v1/profile", &query)
    }

    fn trace(&mut self, trace_id: TraceId, around_ms: u64) -> Result<Trace, SourceError> {
        let path = format!("/api/v1/traces/{trace_id}");
        self.get(&path, &[("around", around_ms.to_string())])
    }

    fn service_map(&mut self, from_ms: u64, to_ms: u64) -> Result<ServiceMap, SourceError> {
        let query = [("from", from_ms.to_string()), ("to", to_ms.to_string())];
        self.get("/api/v1/servicemap", &query)
    }

    fn edge_calls(
        &mut self,
        from_ms: u64,
        to_ms: u64,
        caller: &str,
        callee: &str,
    ) -> Result<EdgeCalls, SourceError> {
        let query = [
            ("from", from_ms.to_string()),
            ("to", to_ms.to_string()),
            ("caller", caller.to_string()),
            ("callee", callee.to_string()),
        ];
        self.get("/api/v1/servicemap/calls", &query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// The address of a server that answers one request with `status` and `body`.
    fn answering(status: &'static str, body: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let _ = stream.read(&mut [0u8; 4096]);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        });
        url
    }

    #[test]
    fn each_failure_says_what_failed_and_where() {
        let url = answering("404 Not Found", r#"{"error":"no transaction ab/cd"}"#);
        let refused = Live::new(&url, None).unwrap().instances().unwrap_err();
        assert!(
            matches!(refused, SourceError::Refused { .. }),
            "{refused:?}"
        );
        assert_eq!(
            refused.to_string(),
            format!("{url} answered 404 Not Found: no transaction ab/cd")
        );

        let url = answering("200 OK", r#"{"instances": 3}"#);
        let malformed = Live::new(&url, None).unwrap().instances().unwrap_err();
        assert!(
            malformed
                .to_string()
                .starts_with(&format!("unexpected answer from {url}/api/v1/instances: ")),
            "{malformed}"
        );

        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let unreachable = Live::new(&url, None).unwrap().instances().unwrap_err();
        assert!(
            unreachable
                .to_string()
                .starts_with(&format!("cannot reach {url}: ")),
            "{unreachable}"
        );
    }
}
