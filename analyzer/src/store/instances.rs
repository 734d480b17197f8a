//! The registry of services and instances that have sent data, with first and
//! last-seen times and a few resource attributes; saved as `instances.json` in
//! the data directory so a restart still lists them.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::ingest::xlog::Identity;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub service: String,
    pub instance: String,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub attributes: BTreeMap<String, String>,
}

pub struct Instances {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    map: HashMap<(String, String), InstanceInfo>,
    dirty: bool,
}

impl Instances {
    /// Loads the registry saved at `path`; a missing or unreadable file starts
    /// an empty one (the registry is rebuilt as instances report).
    pub fn load(path: PathBuf) -> Instances {
        let mut state = State::default();
        match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Vec<InstanceInfo>>(&bytes) {
                Ok(list) => {
                    state.map = list
                        .into_iter()
                        .map(|i| ((i.service.clone(), i.instance.clone()), i))
                        .collect()
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable instance registry")
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable instance registry")
            }
        }
        Instances {
            path,
            state: Mutex::new(state),
        }
    }

    /// Notes that `identity` sent something at `now_ms`.
    pub fn seen(&self, identity: &Identity, now_ms: u64) {
        let mut state = crate::lock(&self.state);
        let key = (identity.service.clone(), identity.instance.clone());
        let info = state.map.entry(key).or_insert_with(|| InstanceInfo {
            service: identity.service.clone(),
            instance: identity.instance.clone(),
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            attributes: BTreeMap::new(),
        });
        info.last_seen_ms = info.last_seen_ms.max(now_ms);
        info.attributes.extend(identity.attributes.iter().cloned());
        state.dirty = true;
    }

    /// All instances, by service then instance.
    pub fn list(&self) -> Vec<InstanceInfo> {
        let mut list: Vec<InstanceInfo> = crate::lock(&self.state).map.values().cloned().collect();
        list.sort_by(|a, b| (&a.service, &a.instance).cmp(&(&b.service, &b.instance)));
        list
    }

    /// Forgets instances not seen since `cutoff_ms` (retention).
    pub fn expire(&self, cutoff_ms: u64) {
        let mut state = crate::lock(&self.state);
        let before = state.map.len();
        state.map.retain(|_, i| i.last_seen_ms >= cutoff_ms);
        state.dirty |= state.map.len() != before;
    }

    /// Writes the registry if it changed (write to a temporary file, then rename).
    pub fn save_if_dirty(&self) -> io::Result<()> {
        let list = {
            let mut state = crate::lock(&self.state);
            if !state.dirty {
                return Ok(());
            }
            state.dirty = false;
            state.map.values().cloned().collect::<Vec<_>>()
        };
        let tmp = self.path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(&list)?)?;
        fs::rename(&tmp, &self.path)
    }
}
