//! Reading an instance's JVM health back: metric series, GC pause events and
//! other JVM events (heap dumps, stuck transactions) over a time range.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use jvmapm_contract::names;

use crate::store::Store;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JvmView {
    /// `NAME{attr=value,...}` → `[t_ms, value]` in time order.
    pub series: BTreeMap<String, Vec<(u64, f64)>>,
    pub gc_pauses: Vec<GcPause>,
    pub events: Vec<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GcPause {
    pub start_ms: u64,
    pub duration_ms: f64,
    pub gc_name: String,
    pub action: String,
}

/// The JVM data of `instance` in `[from_ms, to_ms]` in a local data
/// directory (what `Points::jvm` answers for it).
pub(crate) fn read_local(
    store: &Store,
    instance: &str,
    from_ms: u64,
    to_ms: u64,
) -> io::Result<JvmView> {
    let mut view = JvmView::default();
    let instance_id = store.strings.id_of(instance);
    let in_range = |t: u64| (from_ms..=to_ms).contains(&t);
    for seg in store.segments_in(from_ms, to_ms) {
        if let Some(id) = instance_id {
            for s in seg.read_samples()? {
                if s.instance == id && in_range(s.t_ms) {
                    view.series
                        .entry(store.strings.get(s.series).to_string())
                        .or_default()
                        .push((s.t_ms, s.value));
                }
            }
        }
        for payload in seg.read_events()? {
            view.add_event(&payload, instance, from_ms, to_ms);
        }
    }
    view.sort();
    Ok(view)
}

impl JvmView {
    /// Adds a stored event (JSON) if it is of `instance` and starts in
    /// `[from_ms, to_ms]`: a GC pause to the pauses, others to the events.
    pub(crate) fn add_event(&mut self, payload: &[u8], instance: &str, from_ms: u64, to_ms: u64) {
        let Ok(event) = serde_json::from_slice::<Value>(payload) else {
            return;
        };
        let start = event["start_ms"].as_u64().unwrap_or(0);
        if event["instance"] != instance || !(from_ms..=to_ms).contains(&start) {
            return;
        }
        if event["kind"] == names::event::GC_PAUSE {
            let attr = |k: &str| event["attributes"][k].as_str().unwrap_or("").to_string();
            self.gc_pauses.push(GcPause {
                start_ms: start,
                duration_ms: event["duration_ms"].as_f64().unwrap_or(0.0),
                gc_name: attr(names::metric::GC_NAME),
                action: attr(names::metric::GC_ACTION),
            });
        } else {
            self.events.push(event);
        }
    }

    /// Puts series, pauses and events in time order.
    pub(crate) fn sort(&mut self) {
        for points in self.series.values_mut() {
            points.sort_by_key(|&(t, _)| t);
        }
        self.gc_pauses.sort_by_key(|p| p.start_ms);
    }
}
