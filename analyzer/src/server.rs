//! `jvmapm serve`: opens the store (a data directory, or ClickHouse with
//! `--clickhouse`), binds the OTLP/gRPC and OTLP/HTTP + query API
//! listeners, runs until told to stop, then stops accepting, lets requests
//! in flight finish and waits for the store writer to flush.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jvmapm_contract::clock::unix_ms;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clickhouse::{self, ClickHouse};
use crate::http_listener;
use crate::meter::Meter;
use crate::query::api::{self, ApiState};
use crate::query::Points;
use crate::receiver::{grpc, http, Receiver};
use crate::store::instances::Instances;
use crate::store::{writer, Mode, Store, StoreError};

/// Queued store batches before receivers answer "busy".
const QUEUE_CAPACITY: usize = 512;
/// How often expired data is removed.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub token: Option<String>,
    pub retention: Duration,
    pub max_body: usize,
    /// Store in ClickHouse instead of `data_dir`.
    pub clickhouse: Option<clickhouse::Config>,
}

/// Where the server keeps what it receives.
#[derive(Clone)]
enum Backend {
    Local(Arc<Store>),
    ClickHouse(Arc<ClickHouse>),
}

impl Backend {
    fn points(&self) -> Arc<dyn Points> {
        match self {
            Backend::Local(store) => store.clone(),
            Backend::ClickHouse(ch) => ch.clone(),
        }
    }

    /// Where the data is, for the log.
    fn shown(&self) -> String {
        match self {
            Backend::Local(store) => store.dir().display().to_string(),
            Backend::ClickHouse(ch) => ch.config.shown(),
        }
    }
}

#[derive(Debug)]
pub enum ServeError {
    Store(StoreError),
    /// ClickHouse cannot be used: where and why.
    ClickHouse(String),
    /// A listener could not be bound: which flag, which address, why.
    Bind {
        flag: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    Io(std::io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Store(e) => write!(f, "{e}"),
            ServeError::ClickHouse(e) => write!(f, "{e}"),
            ServeError::Bind { flag, addr, source } => {
                write!(f, "cannot listen on {addr} ({flag}): {source}")
            }
            ServeError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// A bound server, ready to run.
pub struct Server {
    config: ServeConfig,
    backend: Backend,
    meter: Arc<Mutex<Meter>>,
    instances: Arc<Instances>,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
}

impl Server {
    /// Opens the store (recovering it after a crash) and binds both listeners.
    pub async fn bind(config: ServeConfig) -> Result<Server, ServeError> {
        let backend = match &config.clickhouse {
            Some(ch) => Backend::ClickHouse(Arc::new(
                ClickHouse::connect(ch.clone())
                    .await
                    .map_err(ServeError::ClickHouse)?,
            )),
            None => Backend::Local(Arc::new(
                Store::open(&config.data_dir, Mode::Write).map_err(ServeError::Store)?,
            )),
        };
        let instances = Arc::new(Instances::load(config.data_dir.join("instances.json")));
        let meter = Arc::new(Mutex::new(Meter::new(unix_ms())));
        let bind = |flag, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { flag, addr, source })
        };
        let grpc_listener = bind("--grpc", config.grpc).await?;
        let http_listener = bind("--http", config.http).await?;
        if config.token.is_none() {
            for (flag, addr) in [("--grpc", config.grpc), ("--http", config.http)] {
                if !addr.ip().is_loopback() {
                    tracing::warn!(
                        "{flag} {addr} takes connections from other machines and no --token is set: anyone who reaches it can send data and read it"
                    );
                }
            }
        }
        Ok(Server {
            config,
            backend,
            meter,
            instances,
            grpc_listener,
            http_listener,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then drains and flushes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            config,
            backend,
            meter,
            instances,
            grpc_listener,
            http_listener,
        } = self;
        let (writer, writer_done) = match &backend {
            Backend::Local(store) => {
                let (handle, thread) = writer::spawn(
                    writer::Shared {
                        store: store.clone(),
                        meter: meter.clone(),
                        instances: instances.clone(),
                    },
                    QUEUE_CAPACITY,
                )
                .map_err(ServeError::Io)?;
                (handle, WriterDone::Thread(thread))
            }
            Backend::ClickHouse(ch) => {
                let (handle, task) = clickhouse::writer::spawn(ch.clone(), QUEUE_CAPACITY);
                (handle, WriterDone::Task(task))
            }
        };
        // Counters that started after the meters did were never seen before.
        let started_ns = crate::lock(&meter).started_ms() * 1_000_000;
        let receiver = Arc::new(Receiver::new(
            writer,
            config.token.clone(),
            config.max_body,
            started_ns,
        ));

        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };

        // At start, before anything is received: what is past retention goes.
        expire(&backend, &instances, config.retention).await;
        let retention = tokio::spawn(expire_loop(
            backend.clone(),
            instances.clone(),
            config.retention,
            stop_rx.clone(),
        ));

        let grpc_server = tonic::transport::Server::builder()
            .add_routes(grpc::routes(receiver.clone()))
            .serve_with_incoming_shutdown(
                // Without TCP_NODELAY a small reply waits for the client's delayed ACK (~40 ms).
                tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
                stopped(stop_rx.clone()),
            );
        let app = api::routes(ApiState::new(backend.points(), meter, instances))
            .merge(http::routes(receiver.clone()))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(
                receiver.clone(),
                require_token,
            ));
        let http_server = http_listener::serve(http_listener, app, stopped(stop_rx.clone()));
        drop(receiver);

        let grpc_task = tokio::spawn(grpc_server);
        let http_task = tokio::spawn(http_server);
        shutdown.await;
        tracing::info!("shutting down: no new requests; finishing those in flight");
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            let grpc = grpc_task.await;
            let http = http_task.await;
            (grpc, http)
        })
        .await;
        retention.abort();
        match drained {
            Ok((grpc, http)) => {
                if let Ok(Err(e)) = grpc {
                    tracing::warn!(error = %e, "the gRPC listener ended with an error");
                }
                if let Err(e) = http {
                    tracing::warn!(error = %e, "the HTTP listener failed");
                }
                // Every receiver is gone: the writer drains its queue and stops.
                writer_done.wait().await?;
            }
            Err(_) => tracing::warn!(
                "requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway (everything acknowledged is already stored)"
            ),
        }
        tracing::info!(store = %backend.shown(), "stopped");
        Ok(())
    }
}

/// The store writer running, to wait for when it drains.
enum WriterDone {
    Thread(std::thread::JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

impl WriterDone {
    async fn wait(self) -> Result<(), ServeError> {
        let panicked = || ServeError::Io(std::io::Error::other("the store writer panicked"));
        match self {
            WriterDone::Thread(thread) => tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|e| ServeError::Io(std::io::Error::other(e)))?
                .map_err(|_| panicked()),
            WriterDone::Task(task) => task.await.map_err(|_| panicked()),
        }
    }
}

async fn expire_loop(
    backend: Backend,
    instances: Arc<Instances>,
    retention: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        expire(&backend, &instances, retention).await;
    }
}

/// Removes the segments (or ClickHouse partitions) and instances older
/// than `retention`.
async fn expire(backend: &Backend, instances: &Instances, retention: Duration) {
    let cutoff = unix_ms().saturating_sub(retention.as_millis() as u64);
    match backend {
        Backend::Local(store) => {
            let store = store.clone();
            let _ = tokio::task::spawn_blocking(move || store.expire(cutoff)).await;
        }
        Backend::ClickHouse(ch) => {
            if let Err(e) = ch.expire(cutoff).await {
                tracing::warn!(error = %e, "could not drop ClickHouse partitions past retention");
            }
        }
    }
    instances.expire(cutoff);
}

async fn require_token(
    State(receiver): State<Arc<Receiver>>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if receiver.authorized(header) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "error": "a valid bearer token is required (Authorization: Bearer TOKEN)" })),
        )
            .into_response()
    }
}

async fn not_found(request: Request) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no such endpoint: {} {}", request.method(), request.uri().path()) })),
    )
        .into_response()
}
