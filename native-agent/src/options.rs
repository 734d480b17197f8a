//! The agent's option string (`key=value,key=value` after the `=` of
//! `-agentpath`, or `key:value,...` where `=` cannot be used) and the standard `OTEL_*` variables that apply when an option
//! is absent. A bad key or value is an error that names it and says what is
//! accepted; the agent then refuses to load, and so the JVM refuses to start.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How spans and metrics travel to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// Where the agent's own log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    File(PathBuf),
}

/// How much the agent logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

/// Everything the agent is configured with, options and environment resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub service: String,
    pub endpoint: String,
    pub protocol: Protocol,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// `OTEL_RESOURCE_ATTRIBUTES`, added to the resource.
    pub resource_attributes: Vec<(String, String)>,
    /// How often JVM numbers are sampled.
    pub interval: Duration,
    /// How often telemetry is exported.
    pub export_interval: Duration,
    pub log: LogTarget,
    pub log_level: LogLevel,
    pub heapdump: HeapDumpSettings,
    /// Methods whose calls are application transactions (`hook=`).
    pub hooks: Vec<MethodHook>,
    /// How long a transaction runs before its stack is captured (`stuck=`).
    pub stuck: Duration,
    /// The share of successful transactions sent with full detail (`sample=`).
    pub sample: f64,
    /// Whether transactions measure their thread's CPU time (`cpu=on|off`):
    /// two `CLOCK_THREAD_CPUTIME_ID` reads each, a real system call in
    /// many VMs.
    pub cpu: bool,
    /// Stack samples of slow transactions; `None` when `profile_after=off`.
    pub profile: Option<ProfileSettings>,
}

/// How the agent samples the stacks of slow transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileSettings {
    /// Transactions open longer than this are sampled (`profile_after=`).
    pub after: Duration,
    /// Between two samples of one transaction (`profile_interval=`).
    pub interval: Duration,
    /// Samples a second over all transactions (`profile_budget=`); the
    /// samples due beyond it are dropped and counted.
    pub budget: u32,
}

/// `com.acme.Batch#run`: a class and a method name, or `*` for all its methods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodHook {
    pub class: String,
    pub method: String,
}

/// When the agent writes a heap dump by itself.
#[derive(Clone, Debug, PartialEq)]
pub struct HeapDumpSettings {
    pub dir: Option<PathBuf>,
    pub on_finalizer_pending: Option<u64>,
    /// Percent of the heap limit.
    pub on_heap_used: Option<u8>,
    pub min_interval: Duration,
}

/// A bad option or environment variable, and what would have been accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionError {
    /// `option service` or `environment variable OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub source: String,
    pub problem: String,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.problem)
    }
}

impl std::error::Error for OptionError {}

/// Keys the option string accepts.
pub const KEYS: [&str; 19] = [
    "service",
    "endpoint",
    "protocol",
    "headers",
    "interval",
    "export_interval",
    "log",
    "log_level",
    "heapdump_dir",
    "heapdump_on_finalizer_pending",
    "heapdump_on_heap_used",
    "heapdump_min_interval",
    "hook",
    "stuck",
    "sample",
    "cpu",
    "profile_after",
    "profile_interval",
    "profile_budget",
];

fn option_error(key: &str, problem: impl Into<String>) -> OptionError {
    OptionError {
        source: format!("option {key}"),
        problem: problem.into(),
    }
}

fn env_error(name: &str, problem: impl Into<String>) -> OptionError {
    OptionError {
        source: format!("environment variable {name}"),
        problem: problem.into(),
    }
}

/// A positive duration as `jvmapm_contract::duration` reads it: `500ms`,
/// `5s`, `30m`, `2h`, `1d` or several, such as `1m30s`.
fn duration(text: &str) -> Result<Duration, String> {
    match jvmapm_contract::duration::parse(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{text:?} is not a duration: use a positive number with ms, s, m, h or d, e.g. 5s or 1m30s"
        )),
    }
}

/// `com.acme.Batch#run;com.acme.Job#*`.
fn hooks(text: &str) -> Result<Vec<MethodHook>, String> {
    let java_name = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
            })
    };
    text.split(';')
        .filter(|h| !h.trim().is_empty())
        .map(|h| {
            let h = h.trim();
            match h.split_once('#') {
                Some((class, method))
                    if java_name(class)
                        && (method == "*" || java_name(method) && !method.contains('.')) =>
                {
                    Ok(MethodHook {
                        class: class.to_string(),
                        method: method.to_string(),
                    })
                }
                _ => Err(format!(
                    "{h:?} is not Class#method: use e.g. hook=com.acme.Batch#run;com.acme.Job#*"
                )),
            }
        })
        .collect()
}

fn protocol(text: &str) -> Result<Protocol, String> {
    match text {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        other => Err(format!(
            "{other:?} is not supported: use grpc or http/protobuf"
        )),
    }
}

/// `k=v` pairs separated by `separator`, values percent-decoding left to the caller.
fn pairs(text: &str, separator: char) -> Result<Vec<(String, String)>, String> {
    text.split(separator)
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!("{p:?} is not key=value")),
        })
        .collect()
}

/// Resolves the option string and the environment (`env` looks a variable up).
/// Options override the environment; the environment overrides the defaults.
pub fn resolve(
    options: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Settings, OptionError> {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let given = Given::parse(options)?;
    let resource_attributes = match env("OTEL_RESOURCE_ATTRIBUTES") {
        Some(v) => pairs(&v, ',').map_err(|e| env_error("OTEL_RESOURCE_ATTRIBUTES", e))?,
        None => Vec::new(),
    };
    let service = service_name(&given, &env, &resource_attributes)?;
    let protocol = match (given.get("protocol"), env("OTEL_EXPORTER_OTLP_PROTOCOL")) {
        (Some(v), _) => protocol(v).map_err(|e| option_error("protocol", e))?,
        (None, Some(v)) => protocol(&v).map_err(|e| env_error("OTEL_EXPORTER_OTLP_PROTOCOL", e))?,
        (None, None) => Protocol::Grpc,
    };
    let endpoint = endpoint_url(&given, &env, protocol)?;
    let headers = export_headers(&given, &env)?;
    let timeout = export_timeout(&env)?;
    let log = match given.get("log") {
        None | Some("stderr") => LogTarget::Stderr,
        Some("") => return Err(option_error("log", "is empty: use stderr or a file path")),
        Some(path) => LogTarget::File(PathBuf::from(path)),
    };
    let log_level = log_level(&given)?;
    Ok(Settings {
        service,
        endpoint,
        protocol,
        headers,
        timeout,
        resource_attributes,
        interval: given.duration("interval", Duration::from_secs(1))?,
        export_interval: given.duration("export_interval", Duration::from_secs(5))?,
        log,
        log_level,
        heapdump: heapdump_settings(&given)?,
        hooks: match given.get("hook") {
            Some(v) => hooks(v).map_err(|e| option_error("hook", e))?,
            None => Vec::new(),
        },
        stuck: given.duration("stuck", Duration::from_secs(10))?,
        sample: sample_ratio(&given)?,
        cpu: match given.get("cpu") {
            None | Some("on") => true,
            Some("off") => false,
            Some(v) => return Err(option_error("cpu", format!("{v:?} is not on or off"))),
        },
        profile: profile_settings(&given)?,
    })
}

/// `profile_after` (100 ms, or `off`), `profile_interval` (10 ms, from
/// 1 ms to 1 s) and `profile_budget` (200 samples a second).
fn profile_settings(given: &Given) -> Result<Option<ProfileSettings>, OptionError> {
    const SHORTEST: Duration = Duration::from_millis(1);
    const LONGEST: Duration = Duration::from_secs(1);
    let interval = given.duration("profile_interval", Duration::from_millis(10))?;
    if !(SHORTEST..=LONGEST).contains(&interval) {
        return Err(option_error(
            "profile_interval",
            format!(
                "{:?} is not from 1ms to 1s",
                given.get("profile_interval").unwrap_or_default()
            ),
        ));
    }
    let budget = given.number("profile_budget", 100_000)?.unwrap_or(200) as u32;
    if given.get("profile_after") == Some("off") {
        return Ok(None);
    }
    Ok(Some(ProfileSettings {
        after: given.duration("profile_after", Duration::from_millis(100))?,
        interval,
        budget,
    }))
}

/// The option string split into its options: each a known key, given once.
struct Given<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Given<'a> {
    fn parse(options: &'a str) -> Result<Given<'a>, OptionError> {
        let mut given: Vec<(&str, &str)> = Vec::new();
        for part in options.split(',').filter(|p| !p.is_empty()) {
            // `key=value`, or `key:value` for `jcmd ... JVMTI.agent_load`, whose
            // argument parser swallows everything after an `=`.
            let Some((key, value)) = part.split_once(['=', ':']) else {
                return Err(option_error(
                    part,
                    format!(
                        "needs a value ({part}=...); accepted options: {}",
                        KEYS.join(", ")
                    ),
                ));
            };
            if !KEYS.contains(&key) {
                return Err(option_error(
                    key,
                    format!("is unknown; accepted options: {}", KEYS.join(", ")),
                ));
            }
            if given.iter().any(|(k, _)| *k == key) {
                return Err(option_error(key, "is given twice"));
            }
            given.push((key, value));
        }
        Ok(Given(given))
    }

    /// The value of option `key`, if given.
    fn get(&self, key: &str) -> Option<&'a str> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// Option `key` as a duration, or `default` when absent.
    fn duration(&self, key: &str, default: Duration) -> Result<Duration, OptionError> {
        match self.get(key) {
            Some(v) => duration(v).map_err(|e| option_error(key, e)),
            None => Ok(default),
        }
    }

    /// Option `key` as a whole number from 1 to `max`, if given.
    fn number(&self, key: &str, max: u64) -> Result<Option<u64>, OptionError> {
        self.get(key)
            .map(|v| match v.parse::<u64>() {
                Ok(n) if n > 0 && n <= max => Ok(n),
                _ => Err(option_error(
                    key,
                    format!("{v:?} is not a whole number from 1 to {max}"),
                )),
            })
            .transpose()
    }
}

/// `service=`, else `OTEL_SERVICE_NAME`, else `service.name` among the
/// resource attributes, else the OpenTelemetry default.
fn service_name(
    given: &Given,
    env: &impl Fn(&str) -> Option<String>,
    resource_attributes: &[(String, String)],
) -> Result<String, OptionError> {
    let service = given
        .get("service")
        .map(str::to_string)
        .or_else(|| env("OTEL_SERVICE_NAME"))
        .or_else(|| {
            resource_attributes
                .iter()
                .find(|(k, _)| k == jvmapm_contract::names::resource::SERVICE_NAME)
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| "unknown_service:java".to_string());
    if service.trim().is_empty() {
        return Err(option_error("service", "is empty"));
    }
    Ok(service)
}

/// `endpoint=`, else `OTEL_EXPORTER_OTLP_ENDPOINT`, else the local
/// collector's port for `protocol`; plain `http://` only.
fn endpoint_url(
    given: &Given,
    env: &impl Fn(&str) -> Option<String>,
    protocol: Protocol,
) -> Result<String, OptionError> {
    let endpoint = given
        .get("endpoint")
        .map(str::to_string)
        .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .unwrap_or_else(|| match protocol {
            Protocol::Grpc => "http://127.0.0.1:4317".to_string(),
            Protocol::HttpProtobuf => "http://127.0.0.1:4318".to_string(),
        });
    // TLS is not built into the agent (it would double its size); a local
    // collector or `jvmapm serve` on the same host takes plain HTTP.
    let problem = if endpoint.starts_with("https://") {
        format!(
            "{endpoint:?} uses https, which this agent does not support: send to http:// (jvmapm serve, or an OpenTelemetry Collector on this host that forwards over TLS)"
        )
    } else if !endpoint.starts_with("http://") {
        format!("{endpoint:?} is not a URL: use e.g. http://127.0.0.1:4317")
    } else {
        return Ok(endpoint);
    };
    let source = if given.get("endpoint").is_some() {
        option_error("endpoint", "")
    } else {
        env_error("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    };
    Err(OptionError { problem, ..source })
}

/// `headers=` (separated by `;`, as commas separate options), else
/// `OTEL_EXPORTER_OTLP_HEADERS` (separated by `,`).
fn export_headers(
    given: &Given,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, OptionError> {
    match (given.get("headers"), env("OTEL_EXPORTER_OTLP_HEADERS")) {
        (Some(v), _) => pairs(v, ';').map_err(|e| {
            option_error("headers", format!("{e}: use headers=name=value;name=value"))
        }),
        (None, Some(v)) => pairs(&v, ',').map_err(|e| env_error("OTEL_EXPORTER_OTLP_HEADERS", e)),
        (None, None) => Ok(Vec::new()),
    }
}

/// `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds), else 10 s.
fn export_timeout(env: &impl Fn(&str) -> Option<String>) -> Result<Duration, OptionError> {
    match env("OTEL_EXPORTER_OTLP_TIMEOUT") {
        Some(v) => match v.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
            _ => Err(env_error(
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                format!("{v:?} is not a positive number of milliseconds"),
            )),
        },
        None => Ok(Duration::from_secs(10)),
    }
}

fn log_level(given: &Given) -> Result<LogLevel, OptionError> {
    match given.get("log_level") {
        None | Some("info") => Ok(LogLevel::Info),
        Some("error") => Ok(LogLevel::Error),
        Some("warn") => Ok(LogLevel::Warn),
        Some("debug") => Ok(LogLevel::Debug),
        Some(other) => Err(option_error(
            "log_level",
            format!("{other:?} is not a level: use error, warn, info or debug"),
        )),
    }
}

fn heapdump_settings(given: &Given) -> Result<HeapDumpSettings, OptionError> {
    Ok(HeapDumpSettings {
        dir: given
            .get("heapdump_dir")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from),
        on_finalizer_pending: given.number("heapdump_on_finalizer_pending", u64::MAX)?,
        on_heap_used: given.number("heapdump_on_heap_used", 100)?.map(|p| p as u8),
        min_interval: given.duration("heapdump_min_interval", Duration::from_secs(30 * 60))?,
    })
}

/// `sample=`: a ratio from 0 to 1, else 1 (everything in full).
fn sample_ratio(given: &Given) -> Result<f64, OptionError> {
    match given.get("sample") {
        None => Ok(1.0),
        Some(v) => match v.parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
            _ => Err(option_error(
                "sample",
                format!("{v:?} is not a ratio from 0 to 1, e.g. sample=0.1"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let s = resolve("", no_env).unwrap();
        assert_eq!(s.service, "unknown_service:java");
        assert_eq!(s.endpoint, "http://127.0.0.1:4317");
        assert_eq!(s.protocol, Protocol::Grpc);
        assert_eq!(
            (s.interval, s.export_interval),
            (Duration::from_secs(1), Duration::from_secs(5))
        );
        assert_eq!(s.heapdump.min_interval, Duration::from_secs(1800));
        assert_eq!((s.log, s.log_level), (LogTarget::Stderr, LogLevel::Info));
        assert!(s.hooks.is_empty());
        assert_eq!(s.stuck, Duration::from_secs(10));
        assert_eq!(
            s.profile,
            Some(ProfileSettings {
                after: Duration::from_millis(100),
                interval: Duration::from_millis(10),
                budget: 200,
            })
        );
        assert_eq!(s.sample, 1.0);
        assert!(s.cpu, "thread CPU time is measured by default");
    }

    #[test]
    fn hooks_name_a_class_and_a_method_or_all_of_them() {
        let s = resolve("hook=com.acme.Batch#run;com.acme.Job$Inner#*", no_env).unwrap();
        let hook = |class: &str, method: &str| MethodHook {
            class: class.into(),
            method: method.into(),
        };
        assert_eq!(
            s.hooks,
            [
                hook("com.acme.Batch", "run"),
                hook("com.acme.Job$Inner", "*")
            ]
        );
    }

    #[test]
    fn options_override_the_environment() {
        let env = |name: &str| match name {
            "OTEL_SERVICE_NAME" => Some("from-env".to_string()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".to_string()),
            "OTEL_EXPORTER_OTLP_HEADERS" => Some("a=1,b=2".to_string()),
            "OTEL_RESOURCE_ATTRIBUTES" => {
                Some("deployment.environment=prod,service.name=ignored".to_string())
            }
            _ => None,
        };
        let s = resolve("", env).unwrap();
        assert_eq!(s.service, "from-env");
        assert_eq!(s.protocol, Protocol::HttpProtobuf);
        assert_eq!(
            s.endpoint, "http://127.0.0.1:4318",
            "the default follows the protocol"
        );
        assert_eq!(
            s.headers,
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(
            s.resource_attributes[0],
            ("deployment.environment".into(), "prod".into())
        );
        let s = resolve("service=orders,protocol=grpc,headers=x-token=abc;x-team=pay,interval=500ms,heapdump_on_heap_used=85", env).unwrap();
        assert_eq!(s.service, "orders");
        assert_eq!(s.protocol, Protocol::Grpc);
        assert_eq!(
            s.headers,
            [
                ("x-token".into(), "abc".into()),
                ("x-team".into(), "pay".into())
            ]
        );
        assert_eq!(s.interval, Duration::from_millis(500));
        assert_eq!(s.heapdump.on_heap_used, Some(85));
    }

    #[test]
    fn a_colon_separates_keys_from_values_too() {
        let s = resolve(
            "service:orders,endpoint:http://10.0.0.5:4317,headers:x-token=abc",
            no_env,
        )
        .unwrap();
        assert_eq!(s.service, "orders");
        assert_eq!(s.endpoint, "http://10.0.0.5:4317");
        assert_eq!(s.headers, [("x-token".into(), "abc".into())]);
    }

    #[test]
    fn durations_take_several_units_as_the_cli_does() {
        let off = resolve("profile_after=off,profile_interval=5ms", no_env).unwrap();
        assert_eq!(off.profile, None);
        let s = resolve("stuck=1m30s,interval=1s500ms", no_env).unwrap();
        assert_eq!(s.stuck, Duration::from_secs(90));
        assert_eq!(s.interval, Duration::from_millis(1_500));
    }

    #[test]
    fn errors_name_the_option_and_what_is_accepted() {
        let cases = [
            (
                "colour=red",
                "option colour: is unknown; accepted options: service, endpoint",
            ),
            ("service", "option service: needs a value"),
            ("service=a,service=b", "option service: is given twice"),
            (
                "protocol=pigeon",
                "option protocol: \"pigeon\" is not supported: use grpc or http/protobuf",
            ),
            ("interval=5", "option interval: \"5\" is not a duration"),
            ("interval=0s", "option interval: \"0s\" is not a duration"),
            (
                "export_interval=5w",
                "option export_interval: \"5w\" is not a duration",
            ),
            (
                "heapdump_on_heap_used=120",
                "option heapdump_on_heap_used: \"120\" is not a whole number from 1 to 100",
            ),
            (
                "log_level=loud",
                "option log_level: \"loud\" is not a level",
            ),
            (
                "endpoint=127.0.0.1:4317",
                "option endpoint: \"127.0.0.1:4317\" is not a URL",
            ),
            (
                "headers=novalue",
                "option headers: \"novalue\" is not key=value",
            ),
            (
                "hook=com.acme.Batch.run",
                "option hook: \"com.acme.Batch.run\" is not Class#method",
            ),
            ("hook=#run", "option hook: \"#run\" is not Class#method"),
            (
                "sample=2",
                "option sample: \"2\" is not a ratio from 0 to 1",
            ),
            ("stuck=soon", "option stuck: \"soon\" is not a duration"),
            ("cpu=maybe", "option cpu: \"maybe\" is not on or off"),
            (
                "profile_after=-100ms",
                "option profile_after: \"-100ms\" is not a duration",
            ),
            (
                "profile_interval=100us",
                "option profile_interval: \"100us\" is not a duration",
            ),
            (
                "profile_interval=1h",
                "option profile_interval: \"1h\" is not from 1ms to 1s",
            ),
            (
                "profile_budget=0",
                "option profile_budget: \"0\" is not a whole number from 1 to 100000",
            ),
            (
                "endpoint=https://collector:4317",
                "option endpoint: \"https://collector:4317\" uses https",
            ),
        ];
        for (options, expected) in cases {
            let err = resolve(options, no_env).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{options}: {err}");
        }
        let env = |name: &str| (name == "OTEL_EXPORTER_OTLP_TIMEOUT").then(|| "soon".to_string());
        let err = resolve("", env).unwrap_err().to_string();
        assert!(
            err.starts_with("environment variable OTEL_EXPORTER_OTLP_TIMEOUT"),
            "{err}"
        );
    }
}
