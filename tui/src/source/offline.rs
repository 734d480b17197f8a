//! A data directory read in place, beside a running server or not: the
//! analyzer's store and query functions answer directly, in the same types
//! the query API sends.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jvmapm_analyzer::meter::Meter;
use jvmapm_analyzer::point::{SpanId, TraceId};
use jvmapm_analyzer::query::answers::{
    AreaProfile, EdgeCalls, InstanceList, PointRow, ServiceMap, Stats, Trace, Transaction, XlogPage,
};
use jvmapm_analyzer::query::jvm::JvmView;
use jvmapm_analyzer::query::profile::{self, Area};
use jvmapm_analyzer::query::{self, service_map, trace, transaction, Cancel, XlogFilter};
use jvmapm_analyzer::store::instances::Instances;
use jvmapm_analyzer::store::{Mode, Store};

use super::{Source, SourceError, PAGE};

/// A data directory read in place.
pub struct Offline {
    dir: PathBuf,
    store: Store,
    /// Empty: statistics are computed from the stored points.
    meter: Mutex<Meter>,
}

impl Offline {
    pub fn open(dir: &Path) -> Result<Offline, SourceError> {
        let store = Store::open(dir, Mode::ReadOnly).map_err(SourceError::Store)?;
        Ok(Offline {
            dir: dir.to_path_buf(),
            store,
            meter: Mutex::new(Meter::new(u64::MAX)),
        })
    }

    /// End time of the newest stored point, where an offline view opens.
    pub fn latest_end_ms(&self) -> Option<u64> {
        let seg = self.store.segments_in(0, u64::MAX / 2).pop()?;
        let count = seg.point_count();
        let points = seg.read_points(count.saturating_sub(4096), count).ok()?;
        points.iter().map(|p| p.end_ms).max()
    }

    fn unreadable(&self, why: std::io::Error) -> SourceError {
        SourceError::Unreadable {
            dir: self.dir.clone(),
            why,
        }
    }
}

impl Source for Offline {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn note(&self) -> Option<String> {
        jvmapm_analyzer::store::damage::report()
    }

    fn xlog(&mut self, from_ms: u64, to_ms: u64, after: u64) -> Result<XlogPage, SourceError> {
        let filter = XlogFilter::range(from_ms, to_ms);
        let page =
            query::page(&self.store, &filter, after, PAGE).map_err(|e| self.unreadable(e))?;
        Ok(XlogPage {
            points: page
                .points
                .iter()
                .map(|p| PointRow::new(p, &self.store))
                .collect(),
            cursor: page.cursor,
        })
    }

    fn stats(&mut self, from_ms: u64, to_ms: u64) -> Result<Stats, SourceError> {
        let endpoints = query::stats(
            &self.store,
            &self.meter,
            from_ms,
            to_ms,
            u64::MAX / 2,
            &Cancel::default(),
        )
        .map_err(|e| self.unreadable(e))?;
        Ok(Stats {
            endpoints,
            ..Stats::default()
        })
    }

    fn instances(&mut self) -> Result<InstanceList, SourceError> {
        let instances = Instances::load(self.dir.join("instances.json"));
        Ok(InstanceList {
            instances: instances.list(),
        })
    }

    fn jvm(&mut self, instance: &str, from_ms: u64, to_ms: u64) -> Result<JvmView, SourceError> {
        query::Points::jvm(&self.store, instance, from_ms, to_ms).map_err(|e| self.unreadable(e))
    }

    fn transaction(
        &mut self,
        trace_id: TraceId,
        span_id: SpanId,
        end_ms: u64,
    ) -> Result<Transaction, SourceError> {
        transaction::find(&self.store, trace_id, span_id, Some(end_ms))
            .map_err(|e| self.unreadable(e))?
            .ok_or(SourceError::NoTransaction { trace_id, span_id })
    }

    fn profile(&mut self, area: &Area, limit: usize) -> Result<AreaProfile, SourceError> {
        profile::area(&self.store, &area.filter(), limit).map_err(|e| self.unreadable(e))
    }

    fn trace(&mut self, trace_id: TraceId, around_ms: u64) -> Result<Trace, SourceError> {
        let within = trace::DEFAULT_WITHIN_MS;
        trace::find(&self.store, trace_id, around_ms, within, &Cancel::default())
            .map_err(|e| self.unreadable(e))
    }

    fn service_map(&mut self, from_ms: u64, to_ms: u64) -> Result<ServiceMap, SourceError> {
        service_map::edges(&self.store, from_ms, to_ms, &Cancel::default())
            .map_err(|e| self.unreadable(e))
    }

    fn edge_calls(
        &mut self,
        from_ms: u64,
        to_ms: u64,
        caller: &str,
        callee: &str,
    ) -> Result<EdgeCalls, SourceError> {
        let limit = service_map::MAX_LIMIT;
        let cancel = Cancel::default();
        service_map::edge_points(&self.store, from_ms, to_ms, caller, callee, limit, &cancel)
            .map_err(|e| self.unreadable(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::instance_label;
    use jvmapm_analyzer::ingest::xlog::Identity;

    #[test]
    fn offline_instances_are_named_by_service_host_and_pid() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), Mode::Write).unwrap());
        let registry = Instances::load(dir.path().join("instances.json"));
        let identity = |instance: &str, attributes: &[(&str, &str)]| Identity {
            service: "orders".into(),
            instance: instance.into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let with_host = [("host.name", "web-01"), ("process.pid", "4242")];
        registry.seen(&identity("f444e8abf2e375e57ba9795da1c0ffee", &with_host), 1);
        registry.seen(&identity("orders-2", &[("host.name", "web-02")]), 1);
        registry.save_if_dirty().unwrap();

        let mut offline = Offline::open(dir.path()).unwrap();
        let rows = offline.instances().unwrap().instances;
        let labels: Vec<String> = rows.iter().map(instance_label).collect();
        assert_eq!(labels, ["orders@web-01:4242", "orders-2"], "no pid: the id");
        assert_eq!(rows[0].instance, "f444e8abf2e375e57ba9795da1c0ffee");
    }

    #[test]
    fn an_unknown_transaction_is_named_by_its_ids() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), Mode::Write).unwrap());
        let mut offline = Offline::open(dir.path()).unwrap();
        let missing = offline
            .transaction(TraceId::from([0xab; 16]), SpanId::from([0xcd; 8]), 1_000)
            .unwrap_err();
        assert_eq!(
            missing.to_string(),
            format!("no transaction {}/{}", "ab".repeat(16), "cd".repeat(8))
        );
    }
}
