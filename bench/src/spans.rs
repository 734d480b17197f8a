//! Realistic OTLP trace exports for load and benchmarks: HTTP SERVER spans
//! with the stable semantic-convention attributes and our `jvmapm.` extras,
//! from five JVM instances of two services, varied routes, log-normal
//! durations and about 2% 5xx, generated from a fixed seed.

use jvmapm_contract::random::Rng;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status as SpanStatus,
};

/// What the generated data draws beyond the shared generator's integers.
trait Draws {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64;
    /// A standard normal deviate.
    fn normal(&mut self) -> f64;
    /// A random id of `N` bytes, never all zero.
    fn nonzero_id<const N: usize>(&mut self) -> Vec<u8>;
}

impl Draws for Rng {
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Box-Muller.
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn nonzero_id<const N: usize>(&mut self) -> Vec<u8> {
        let mut id = vec![0u8; N];
        for chunk in id.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        id[0] |= 1;
        id
    }
}

/// One HTTP route of the simulated services.
struct Route {
    method: &'static str,
    route: &'static str,
    /// `url.path` with `{}` standing for a generated id.
    path: &'static str,
    /// Median response time, milliseconds.
    median_ms: f64,
    /// Spread of the log-normal response time.
    sigma: f64,
    /// Relative frequency.
    weight: u32,
    /// Typical SQL statements per request (0: no database).
    sql: u32,
}

const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        route: "/api/orders/{id}",
        path: "/api/orders/{}",
        median_ms: 12.0,
        sigma: 0.6,
        weight: 30,
        sql: 2,
    },
    Route {
        method: "GET",
        route: "/api/orders",
        path: "/api/orders",
        median_ms: 35.0,
        sigma: 0.7,
        weight: 12,
        sql: 3,
    },
    Route {
        method: "POST",
        route: "/api/orders",
        path: "/api/orders",
        median_ms: 80.0,
        sigma: 0.8,
        weight: 8,
        sql: 6,
    },
    Route {
        method: "GET",
        route: "/api/customers/{id}",
        path: "/api/customers/{}",
        median_ms: 9.0,
        sigma: 0.5,
        weight: 15,
        sql: 1,
    },
    Route {
        method: "PUT",
        route: "/api/customers/{id}",
        path: "/api/customers/{}",
        median_ms: 45.0,
        sigma: 0.7,
        weight: 3,
        sql: 4,
    },
    Route {
        method: "GET",
        route: "/api/products/search",
        path: "/api/products/search",
        median_ms: 120.0,
        sigma: 1.0,
        weight: 10,
        sql: 8,
    },
    Route {
        method: "GET",
        route: "/api/products/{sku}",
        path: "/api/products/SKU-{}",
        median_ms: 6.0,
        sigma: 0.5,
        weight: 12,
        sql: 1,
    },
    Route {
        method: "POST",
        route: "/api/payments",
        path: "/api/payments",
        median_ms: 250.0,
        sigma: 0.9,
        weight: 4,
        sql: 5,
    },
    Route {
        method: "DELETE",
        route: "/api/carts/{id}/items/{item}",
        path: "/api/carts/{}/items/3",
        median_ms: 18.0,
        sigma: 0.6,
        weight: 3,
        sql: 2,
    },
    Route {
        method: "GET",
        route: "/actuator/health",
        path: "/actuator/health",
        median_ms: 1.5,
        sigma: 0.4,
        weight: 3,
        sql: 0,
    },
];

/// A JVM instance the spans come from.
struct Instance {
    service: &'static str,
    instance_id: String,
    host: String,
    pid: i64,
    port: i64,
}

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "okhttp/4.12.0",
    "Apache-HttpClient/5.3.1 (Java/17.0.11)",
    "Java-http-client/17.0.12",
    "curl/8.5.0",
];

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn i(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

fn instances(rng: &mut Rng) -> Vec<Instance> {
    let mut out = Vec::new();
    for (service, count) in [("orders", 3), ("catalog", 2)] {
        for n in 0..count {
            out.push(Instance {
                service,
                instance_id: format!(
                    "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                    rng.next_u64() as u32,
                    rng.below(1 << 16),
                    rng.below(1 << 12),
                    rng.below(1 << 12),
                    rng.below(1 << 48)
                ),
                host: format!("{service}-{n}.prod.internal.example.com"),
                pid: 1000 + rng.below(60_000) as i64,
                port: 8080,
            });
        }
    }
    out
}

fn resource(inst: &Instance) -> Resource {
    Resource {
        attributes: vec![
            s("service.name", inst.service),
            s("service.namespace", "shop"),
            s("service.version", "2.14.3"),
            s("service.instance.id", inst.instance_id.clone()),
            s("deployment.environment.name", "production"),
            s("host.name", inst.host.clone()),
            s("host.arch", "amd64"),
            s("os.type", "linux"),
            i("process.pid", inst.pid),
            s("process.runtime.name", "OpenJDK Runtime Environment"),
            s("process.runtime.version", "17.0.12+7"),
            s("telemetry.sdk.name", "jvmapm"),
            s("telemetry.sdk.language", "java"),
            s("telemetry.sdk.version", "0.1.0"),
        ],
        ..Default::default()
    }
}

/// Picks a route by weight.
fn pick_route(rng: &mut Rng) -> &'static Route {
    let total: u32 = ROUTES.iter().map(|r| r.weight).sum();
    let mut x = rng.below(u64::from(total)) as u32;
    for route in ROUTES {
        if x < route.weight {
            return route;
        }
        x -= route.weight;
    }
    &ROUTES[0]
}

fn http_span(rng: &mut Rng, inst: &Instance, now_ns: u64) -> Span {
    let route = pick_route(rng);
    let elapsed_ms = (route.median_ms.ln() + route.sigma * rng.normal())
        .exp()
        .min(60_000.0);
    let elapsed_ns = (elapsed_ms * 1e6) as u64 + 1_000;
    // Ends within the last two seconds.
    let end_ns = now_ns - rng.below(2_000_000_000);
    let roll = rng.unit();
    let status_code: i64 = if roll < 0.02 {
        [500, 502, 503][rng.below(3) as usize]
    } else if roll < 0.05 {
        [400, 404, 409][rng.below(3) as usize]
    } else if route.method == "POST" {
        201
    } else {
        200
    };
    let error = status_code >= 500;
    let worker = 1 + rng.below(200);
    let cpu_us = (elapsed_ms * 1000.0 * (0.05 + 0.4 * rng.unit())) as i64;
    let mut attributes = vec![
        s("http.request.method", route.method),
        s(
            "url.path",
            route
                .path
                .replace("{}", &(1 + rng.below(999_999)).to_string()),
        ),
        s("url.scheme", "http"),
        s("http.route", route.route),
        i("http.response.status_code", status_code),
        s("server.address", inst.host.clone()),
        i("server.port", inst.port),
        s("network.protocol.version", "1.1"),
        s(
            "network.peer.address",
            format!("10.0.{}.{}", rng.below(4), 2 + rng.below(250)),
        ),
        s(
            "client.address",
            format!("203.0.113.{}", 1 + rng.below(254)),
        ),
        s(
            "user_agent.original",
            USER_AGENTS[rng.below(USER_AGENTS.len() as u64) as usize],
        ),
        s(
            "thread.name",
            format!("http-nio-{}-exec-{worker}", inst.port),
        ),
        i("thread.id", 40 + worker as i64),
        i("jvmapm.cpu.time", cpu_us.max(1)),
    ];
    if route.sql > 0 {
        let count = i64::from(route.sql) + rng.below(3) as i64;
        let sql_us = (elapsed_ms * 1000.0 * (0.2 + 0.5 * rng.unit())) as i64;
        attributes.push(i("jvmapm.sql.count", count));
        attributes.push(i("jvmapm.sql.time", sql_us));
    }
    if error {
        attributes.push(s("error.type", status_code.to_string()));
    }
    // A third of the requests come through a traced gateway (remote parent).
    let parent_span_id = if rng.below(3) == 0 {
        rng.nonzero_id::<8>()
    } else {
        Vec::new()
    };
    Span {
        trace_id: rng.nonzero_id::<16>(),
        span_id: rng.nonzero_id::<8>(),
        parent_span_id,
        flags: 0x301,
        name: format!("{} {}", route.method, route.route),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: end_ns - elapsed_ns,
        end_time_unix_nano: end_ns,
        attributes,
        status: error.then(|| SpanStatus {
            message: format!("HTTP {status_code}"),
            code: status::StatusCode::Error as i32,
        }),
        ..Default::default()
    }
}

/// Builds `count` export requests of `batch` spans each, every one from a
/// single JVM instance (as an agent sends them), instances taken in turn.
pub fn build_pool(count: usize, batch: usize) -> Vec<ExportTraceServiceRequest> {
    let now_ns = jvmapm_contract::clock::unix_ns();
    let mut rng = Rng::seeded(0x6A76_6D61_706D_2021);
    let instances = instances(&mut rng);
    (0..count)
        .map(|n| {
            let inst = &instances[n % instances.len()];
            let spans = (0..batch)
                .map(|_| http_span(&mut rng, inst, now_ns))
                .collect();
            ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(resource(inst)),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "io.opentelemetry.tomcat-10.0".to_string(),
                            version: "2.6.0-alpha".to_string(),
                            ..Default::default()
                        }),
                        spans,
                        schema_url: "https://opentelemetry.io/schemas/1.26.0".to_string(),
                    }],
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".to_string(),
                }],
            }
        })
        .collect()
}
