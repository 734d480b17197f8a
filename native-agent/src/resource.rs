//! The OpenTelemetry resource that names this JVM on every span and metric:
//! the service, this run's instance id, the process, the JVM and the host.
//! Its own module so the bench (`exporter_bench`) can build the same one
//! without reaching into the agent's lifecycle.

use jvmapm_contract::names::resource::{
    HOST_NAME, PROCESS_PID, PROCESS_RUNTIME_NAME, PROCESS_RUNTIME_VERSION, SERVICE_INSTANCE_ID,
    SERVICE_NAME, TELEMETRY_SDK_NAME, TELEMETRY_SDK_VERSION,
};
use jvmapm_contract::random::Rng;
use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

use crate::options::Settings;

/// Facts about the JVM read while loading.
pub struct JvmFacts {
    pub vm_name: String,
    pub vm_version: String,
    /// `java.specification.version`: `17`, `21`, or `1.8` before JDK 9.
    pub java_version: String,
}

/// The resource every span and metric carries. The `service` option wins
/// over a `service.name` among the resource attributes.
pub(crate) fn build(settings: &Settings, jvm: &JvmFacts) -> Resource {
    let mut attributes: Vec<KeyValue> = settings
        .resource_attributes
        .iter()
        .filter(|(k, _)| k != SERVICE_NAME)
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    attributes.extend([
        KeyValue::new(SERVICE_NAME, settings.service.clone()),
        KeyValue::new(SERVICE_INSTANCE_ID, instance_id()),
        KeyValue::new(PROCESS_PID, i64::from(std::process::id())),
        KeyValue::new(PROCESS_RUNTIME_NAME, jvm.vm_name.clone()),
        KeyValue::new(PROCESS_RUNTIME_VERSION, jvm.vm_version.clone()),
        KeyValue::new(TELEMETRY_SDK_NAME, "jvmapm-agent"),
        KeyValue::new(TELEMETRY_SDK_VERSION, env!("CARGO_PKG_VERSION")),
    ]);
    if let Some(host) = host_name() {
        attributes.push(KeyValue::new(HOST_NAME, host));
    }
    Resource::builder_empty()
        .with_attributes(attributes)
        .build()
}

/// A random id for this JVM's run.
fn instance_id() -> String {
    let mut rng = Rng::from_entropy();
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
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
