//! The OpenTelemetry resource that names this JVM on every span and metric:
//! the service, this run's instance id, the process, the JVM and the host.
//! Its own module so the bench (`exporter_bench`) can build the same one
//! without reaching into the agent's lifecycle.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

use crate::options::Settings;

/// Facts about the JVM read while loading.
pub struct JvmFacts {
    pub vm_name: String,
    pub vm_version: String,
}

/// The resource every span and metric carries. The `service` option wins
/// over a `service.name` among the resource attributes.
pub(crate) fn build(settings: &Settings, jvm: &JvmFacts) -> Resource {
    let mut attributes: Vec<KeyValue> = settings
        .resource_attributes
        .iter()
        .filter(|(k, _)| k != "service.name")
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    attributes.extend([
        KeyValue::new("service.name", settings.service.clone()),
        KeyValue::new("service.instance.id", instance_id()),
        KeyValue::new("process.pid", i64::from(std::process::id())),
        KeyValue::new("process.runtime.name", jvm.vm_name.clone()),
        KeyValue::new("process.runtime.version", jvm.vm_version.clone()),
        KeyValue::new("telemetry.sdk.name", "jvmapm-agent"),
        KeyValue::new("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
    ]);
    if let Some(host) = host_name() {
        attributes.push(KeyValue::new("host.name", host));
    }
    Resource::builder_empty()
        .with_attributes(attributes)
        .build()
}

/// A random id for this JVM's run.
fn instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    format!("{:016x}{:016x}", half(), half())
}

fn host_name() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is writable for the length given, and
    // gethostname writes no more than that.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return None;
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let name = String::from_utf8_lossy(&buffer[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}
