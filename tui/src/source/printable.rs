//! What a source read, made safe to draw: names, attributes, SQL and error
//! reasons come from the wire and are drawn on the operator's terminal,
//! where an escape sequence must not retitle or clear it (see
//! `jvmapm_analyzer::printable`). [`Printable`] wraps a source so that every
//! string of every answer, and of every error, is printable.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use jvmapm_analyzer::meter::EndpointStats;
use jvmapm_analyzer::point::{SpanId, TraceId};
use jvmapm_analyzer::printable::{printable, printable_json};
use jvmapm_analyzer::query::answers::{
    AreaProfile, ChildSpan, Edge, EdgeCalls, InstanceList, PointRow, Profile, Scope, ServiceMap,
    SpanBody, SpanEvent, SpanInFull, SpanRecord, SpanStatus, Stats, Trace, TraceSpan, Transaction,
    XlogPage,
};
use jvmapm_analyzer::query::jvm::{GcPause, JvmView};
use jvmapm_analyzer::query::profile::Area;
use jvmapm_analyzer::store::instances::InstanceInfo;
use jvmapm_contract::names;
use serde_json::{Map, Value};

use super::{Source, SourceError};

/// A source whose answers and errors hold only printable strings.
pub struct Printable(pub Box<dyn Source>);

/// `answer` with every string printable, in place.
fn clean<T: MakePrintable>(answer: Result<T, SourceError>) -> Result<T, SourceError> {
    match answer {
        Ok(mut value) => {
            value.make_printable();
            Ok(value)
        }
        Err(mut error) => {
            error.make_printable();
            Err(error)
        }
    }
}

impl Source for Printable {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn note(&self) -> Option<String> {
        self.0.note().map(|note| printable(&note).into_owned())
    }
    fn xlog(&mut self, from_ms: u64, to_ms: u64, after: u64) -> Result<XlogPage, SourceError> {
        clean(self.0.xlog(from_ms, to_ms, after))
    }
    fn stats(&mut self, from_ms: u64, to_ms: u64) -> Result<Stats, SourceError> {
        clean(self.0.stats(from_ms, to_ms))
    }
    fn instances(&mut self) -> Result<InstanceList, SourceError> {
        clean(self.0.instances())
    }
    fn jvm(&mut self, instance: &str, from_ms: u64, to_ms: u64) -> Result<JvmView, SourceError> {
        clean(self.0.jvm(instance, from_ms, to_ms))
    }
    fn transaction(
        &mut self,
        trace_id: TraceId,
        span_id: SpanId,
        end_ms: u64,
    ) -> Result<Transaction, SourceError> {
        clean(self.0.transaction(trace_id, span_id, end_ms))
    }
    fn profile(&mut self, area: &Area, limit: usize) -> Result<AreaProfile, SourceError> {
        clean(self.0.profile(area, limit))
    }
    fn trace(&mut self, trace_id: TraceId, around_ms: u64) -> Result<Trace, SourceError> {
        clean(self.0.trace(trace_id, around_ms))
    }
    fn service_map(&mut self, from_ms: u64, to_ms: u64) -> Result<ServiceMap, SourceError> {
        clean(self.0.service_map(from_ms, to_ms))
    }
    fn edge_calls(
        &mut self,
        from_ms: u64,
        to_ms: u64,
        caller: &str,
        callee: &str,
    ) -> Result<EdgeCalls, SourceError> {
        clean(self.0.edge_calls(from_ms, to_ms, caller, callee))
    }
}

/// Something read from a source whose strings can be made printable.
trait MakePrintable {
    fn make_printable(&mut self);
}

impl MakePrintable for String {
    fn make_printable(&mut self) {
        if let Cow::Owned(clean) = printable(self) {
            *self = clean;
        }
    }
}

impl MakePrintable for Arc<str> {
    fn make_printable(&mut self) {
        if let Cow::Owned(clean) = printable(self) {
            *self = clean.into();
        }
    }
}

impl MakePrintable for Value {
    fn make_printable(&mut self) {
        printable_json(self);
    }
}

impl MakePrintable for Map<String, Value> {
    fn make_printable(&mut self) {
        let mut object = Value::Object(std::mem::take(self));
        printable_json(&mut object);
        if let Value::Object(clean) = object {
            *self = clean;
        }
    }
}

/// Makes the keys of `map` printable.
fn printable_keys<V>(map: &mut BTreeMap<String, V>) {
    if map.keys().any(|k| k.chars().any(char::is_control)) {
        *map = std::mem::take(map)
            .into_iter()
            .map(|(k, v)| (printable(&k).into_owned(), v))
            .collect();
    }
}

impl<T: MakePrintable> MakePrintable for Vec<T> {
    fn make_printable(&mut self) {
        self.iter_mut().for_each(T::make_printable);
    }
}

impl<T: MakePrintable> MakePrintable for Option<T> {
    fn make_printable(&mut self) {
        if let Some(value) = self {
            value.make_printable();
        }
    }
}

impl<T: MakePrintable> MakePrintable for Box<T> {
    fn make_printable(&mut self) {
        T::make_printable(self);
    }
}

impl MakePrintable for SourceError {
    fn make_printable(&mut self) {
        match self {
            SourceError::Client(why)
            | SourceError::Unreachable { why, .. }
            | SourceError::Malformed { why, .. } => why.make_printable(),
            SourceError::Refused { reason, .. } => reason.make_printable(),
            SourceError::Store(_)
            | SourceError::Unreadable { .. }
            | SourceError::NoTransaction { .. } => {}
        }
    }
}

impl MakePrintable for PointRow {
    fn make_printable(&mut self) {
        self.service.make_printable();
        self.instance.make_printable();
        self.endpoint.make_printable();
    }
}

impl MakePrintable for XlogPage {
    fn make_printable(&mut self) {
        self.points.make_printable();
    }
}

impl MakePrintable for Trace {
    fn make_printable(&mut self) {
        self.spans.make_printable();
    }
}

impl MakePrintable for TraceSpan {
    fn make_printable(&mut self) {
        self.service.make_printable();
        self.instance.make_printable();
        self.name.make_printable();
        self.kind.make_printable();
        self.endpoint.make_printable();
        self.attributes.make_printable();
    }
}

impl MakePrintable for ServiceMap {
    fn make_printable(&mut self) {
        self.edges.make_printable();
    }
}

impl MakePrintable for Edge {
    fn make_printable(&mut self) {
        self.caller.make_printable();
        self.callee.make_printable();
    }
}

impl MakePrintable for EdgeCalls {
    fn make_printable(&mut self) {
        self.points.make_printable();
    }
}

impl MakePrintable for EndpointStats {
    fn make_printable(&mut self) {
        self.service.make_printable();
        self.endpoint.make_printable();
    }
}

impl MakePrintable for Stats {
    fn make_printable(&mut self) {
        self.endpoints.make_printable();
    }
}

impl MakePrintable for InstanceInfo {
    fn make_printable(&mut self) {
        self.service.make_printable();
        self.instance.make_printable();
        printable_keys(&mut self.attributes);
        self.attributes
            .values_mut()
            .for_each(String::make_printable);
    }
}

impl MakePrintable for InstanceList {
    fn make_printable(&mut self) {
        self.instances.make_printable();
    }
}

impl MakePrintable for GcPause {
    fn make_printable(&mut self) {
        self.gc_name.make_printable();
        self.action.make_printable();
    }
}

impl MakePrintable for JvmView {
    fn make_printable(&mut self) {
        printable_keys(&mut self.series);
        self.gc_pauses.make_printable();
        for event in &mut self.events {
            // A stuck transaction's stack is lines, one a frame: each line
            // is made printable, the line breaks between them stay.
            let stack = event
                .get_mut("attributes")
                .and_then(|attributes| attributes.get_mut(names::event::STACK))
                .map(Value::take);
            event.make_printable();
            if let Some(Value::String(stack)) = stack {
                let lines: Vec<_> = stack.split('\n').map(printable).collect();
                event["attributes"][names::event::STACK] = Value::String(lines.join("\n"));
            }
        }
    }
}

impl MakePrintable for Transaction {
    fn make_printable(&mut self) {
        self.point.make_printable();
        self.span.make_printable();
        self.profile.make_printable();
    }
}

impl MakePrintable for AreaProfile {
    fn make_printable(&mut self) {
        self.profile.make_printable();
    }
}

impl MakePrintable for Profile {
    fn make_printable(&mut self) {
        self.tree = self.tree.renamed(printable);
    }
}

impl<T: MakePrintable> MakePrintable for SpanRecord<T> {
    fn make_printable(&mut self) {
        match self {
            SpanRecord::Read(span) => span.make_printable(),
            SpanRecord::Unreadable { detail_error } => detail_error.make_printable(),
        }
    }
}

impl MakePrintable for SpanInFull {
    fn make_printable(&mut self) {
        self.span.make_printable();
        self.resource.make_printable();
        self.scope.make_printable();
        self.children.make_printable();
    }
}

impl MakePrintable for ChildSpan {
    fn make_printable(&mut self) {
        self.span.make_printable();
    }
}

impl MakePrintable for SpanBody {
    fn make_printable(&mut self) {
        self.name.make_printable();
        self.kind.make_printable();
        self.status.make_printable();
        self.attributes.make_printable();
        self.events.make_printable();
    }
}

impl MakePrintable for SpanStatus {
    fn make_printable(&mut self) {
        self.message.make_printable();
    }
}

impl MakePrintable for SpanEvent {
    fn make_printable(&mut self) {
        self.name.make_printable();
        self.attributes.make_printable();
    }
}

impl MakePrintable for Scope {
    fn make_printable(&mut self) {
        self.name.make_printable();
        self.version.make_printable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stuck_stack_keeps_its_lines_and_loses_its_escapes() {
        let mut view = JvmView {
            series: BTreeMap::new(),
            gc_pauses: Vec::new(),
            events: vec![serde_json::json!({
                "kind": "stuck",
                "attributes": {
                    "jvmapm.stack": "at A.run(A.java:1)\n\u{1b}[2Jat B.call(B.java:2)",
                    "thread.name": "pool-1\nthread-2",
                },
            })],
        };
        view.make_printable();
        let attributes = &view.events[0]["attributes"];
        assert_eq!(
            attributes["jvmapm.stack"],
            "at A.run(A.java:1)\n\u{FFFD}[2Jat B.call(B.java:2)"
        );
        assert_eq!(attributes["thread.name"], "pool-1\u{FFFD}thread-2");
    }
}
