//! The versioned schema: the SQL files of `schema/`, applied in order on
//! first start, each recorded in `jvmapm_migrations` once applied, so an
//! analyzer of a later version adds what it needs and an older one never
//! undoes it.

use clickhouse::Client;
use jvmapm_contract::clock::unix_ms;

/// The migrations, in order: (version, name, SQL).
const MIGRATIONS: [(u32, &str, &str); 1] = [(1, "tables", include_str!("schema/001_tables.sql"))];

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS jvmapm_migrations (
    version UInt32, name String, applied_ms UInt64
) ENGINE = MergeTree ORDER BY version";

/// Creates the database when missing and applies the migrations it lacks.
/// `server` is a client without a database, `client` one with it.
pub async fn migrate(
    server: &Client,
    client: &Client,
    database: &str,
) -> clickhouse::error::Result<()> {
    server
        .query(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
        .execute()
        .await?;
    client.query(MIGRATIONS_TABLE).execute().await?;
    let applied: u32 = client
        .query("SELECT toUInt32(max(version)) FROM jvmapm_migrations")
        .fetch_one()
        .await?;
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > applied) {
        for statement in statements(sql) {
            client.query(&statement).execute().await?;
        }
        let record = format!(
            "INSERT INTO jvmapm_migrations (version, name, applied_ms) VALUES ({version}, '{name}', {})",
            unix_ms()
        );
        client.query(&record).execute().await?;
        tracing::info!(version, name, "applied a ClickHouse schema migration");
    }
    Ok(())
}

/// The statements of a SQL file: comments dropped, split at `;`.
fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .map(|line| line.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_splits_into_its_create_statements() {
        let statements = statements(MIGRATIONS[0].2);
        assert_eq!(statements.len(), 5);
        assert!(statements
            .iter()
            .all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS")));
        assert!(statements.iter().all(|s| !s.contains("--")));
    }
}
