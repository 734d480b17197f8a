//! ClickHouse as the store (`jvmapm serve --clickhouse URL`), so many
//! analyzers in front of one ClickHouse (or a cluster of them) keep and
//! answer everything together.
//!
//! - [`config`] reads the URL, [`schema`] creates and versions the tables
//!   (`schema/*.sql`), [`rows`] are their rows;
//! - [`writer`] takes the receivers' batches like the local store's writer
//!   and inserts them in groups, answering each export once ClickHouse has
//!   its rows;
//! - [`read`] answers the query API from ClickHouse, with the live-tail
//!   order of [`seq`] that holds across analyzers.
//!
//! On a cluster the analyzers' database holds `Distributed` tables of the
//! same names over each shard's tables; they are read and written as they
//! are, inserts synchronously.
//!
//! The client is the `clickhouse` crate over HTTP in RowBinary, without the
//! schema validation of its default format (RowBinaryWithNamesAndTypes,
//! which ClickHouse 18.16 lacks).

pub mod config;
pub mod read;
pub mod rows;
mod schema;
pub mod seq;
pub mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clickhouse::Client;

pub use config::Config;

use crate::store::Strings;

/// How long a query may take before it is given up.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to ClickHouse: its client, and the ids this process gives
/// the names it reads back (the query layer works on ids).
pub struct ClickHouse {
    pub config: Config,
    client: Client,
    strings: Strings,
    ids: Mutex<HashMap<Arc<str>, u32>>,
    /// Where the query layer's blocking reads run their requests.
    runtime: tokio::runtime::Handle,
}

impl ClickHouse {
    /// Reaches the server, creates the database and the tables it lacks.
    pub async fn connect(config: Config) -> Result<ClickHouse, String> {
        // Inserts through a `Distributed` table (a cluster's layout) are
        // answered once every shard has its rows, not when they are queued
        // for sending: acknowledged means stored there too. A plain table
        // ignores the setting.
        let mut server = Client::default()
            .with_url(&config.base)
            .with_validation(false)
            .with_option("insert_distributed_sync", "1");
        if let Some(user) = &config.user {
            server = server.with_user(user);
        }
        if let Some(password) = &config.password {
            server = server.with_password(password);
        }
        let client = server.clone().with_database(&config.database);
        schema::migrate(&server, &client, &config.database)
            .await
            .map_err(|e| format!("cannot use ClickHouse at {}: {e}", config.shown()))?;
        Ok(ClickHouse {
            config,
            client,
            strings: Strings::default(),
            ids: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The id of `name` in [`Self::strings`], given on first sight.
    pub fn id(&self, name: &str) -> u32 {
        let mut ids = crate::lock(&self.ids);
        if let Some(&id) = ids.get(name) {
            return id;
        }
        let name: Arc<str> = Arc::from(name);
        let id = self.strings.add(name.clone());
        ids.insert(name, id);
        id
    }

    pub fn strings(&self) -> &Strings {
        &self.strings
    }

    /// Drops the day partitions whose whole day ended before `cutoff_ms`.
    pub async fn expire(&self, cutoff_ms: u64) -> clickhouse::error::Result<usize> {
        let first_kept = cutoff_ms / 86_400_000;
        let tables = ["points", "spans", "jvm_metrics", "jvm_events", "instances"];
        let parts: Vec<(String, String)> = self
            .client
            .query(
                "SELECT DISTINCT table, partition FROM system.parts \
                 WHERE active AND database = ? AND has(?, table)",
            )
            .bind(&self.config.database)
            .bind(tables.as_slice())
            .fetch_all()
            .await?;
        let mut dropped = 0;
        for (table, partition) in parts {
            if partition.parse::<u64>().is_ok_and(|day| day < first_kept) {
                self.client
                    .query(&format!("ALTER TABLE {table} DROP PARTITION {partition}"))
                    .execute()
                    .await?;
                tracing::info!(
                    table,
                    partition,
                    "dropped a ClickHouse partition past retention"
                );
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

/// A query of at most [`QUERY_TIMEOUT`].
async fn timed<T>(
    what: impl std::future::Future<Output = clickhouse::error::Result<T>>,
) -> std::io::Result<T> {
    match tokio::time::timeout(QUERY_TIMEOUT, what).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(std::io::Error::other(format!("ClickHouse: {e}"))),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("ClickHouse did not answer within {QUERY_TIMEOUT:?}"),
        )),
    }
}
