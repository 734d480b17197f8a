-- jvmapm's tables in ClickHouse, schema version 1.
--
-- `jvmapm serve --clickhouse URL` applies this file on first start (each
-- statement in turn; all of them are IF NOT EXISTS, so analyzers starting
-- together do no harm) and records it in jvmapm_migrations. It is kept to
-- SQL that ClickHouse 18.16 (Debian 12's) and current releases both accept:
-- no LowCardinality, no DateTime64, no TTL, no data-skipping indexes.
--
-- Times are Unix milliseconds in UInt64. Every table is partitioned by UTC
-- day (intDiv(time, 86400000), a plain number such as 20512), and retention
-- drops whole partitions: ALTER TABLE points DROP PARTITION 20512.
-- Trace and span ids are their bytes: FixedString(16) and FixedString(8).

-- One row per transaction (an XLog point). Sorted for the viewer's reads:
-- a time range of a service, of one of its endpoints, and the slow ones.
CREATE TABLE IF NOT EXISTS points (
    -- Live-tail order, unique per analyzer: (ms since 2024 << 22) |
    -- (analyzer number << 12) | index within that millisecond.
    seq UInt64,
    end_ms UInt64,
    elapsed_us UInt64,
    trace_id FixedString(16),
    span_id FixedString(8),
    -- All zero for a root span.
    parent_span_id FixedString(8),
    service String,
    instance String,
    endpoint String,
    -- HTTP status, 0 when the transaction had none.
    status_code UInt16,
    error UInt8,
    -- CPU time and the SQL and outgoing call totals; has_* says they were sent.
    has_cpu UInt8,
    cpu_us UInt64,
    has_sql UInt8,
    sql_count UInt32,
    sql_us UInt64,
    has_http UInt8,
    http_count UInt32,
    http_us UInt64
) ENGINE = MergeTree
PARTITION BY intDiv(end_ms, 86400000)
ORDER BY (service, endpoint, end_ms);

-- Every span kept: each transaction's own span and the spans inside it (SQL
-- calls, outgoing requests, steps), as the OTLP protobuf it arrived in, with
-- the resource and scope it came with. Sorted by trace, so a trace, a
-- transaction and its children are found by primary key.
CREATE TABLE IF NOT EXISTS spans (
    trace_id FixedString(16),
    span_id FixedString(8),
    parent_span_id FixedString(8),
    end_ms UInt64,
    -- 1 for a transaction's own span (it has a row in points), 0 inside one.
    is_point UInt8,
    -- An encoded ResourceSpans holding one ScopeSpans without spans.
    resource String,
    -- An encoded Span.
    span String
) ENGINE = MergeTree
PARTITION BY intDiv(end_ms, 86400000)
ORDER BY (trace_id, span_id);

-- JVM metric samples: one value of one series (NAME{attr=value,...}).
CREATE TABLE IF NOT EXISTS jvm_metrics (
    t_ms UInt64,
    instance String,
    series String,
    value Float64
) ENGINE = MergeTree
PARTITION BY intDiv(t_ms, 86400000)
ORDER BY (instance, series, t_ms);

-- JVM events (GC pauses, heap dumps, stuck transactions) as JSON.
CREATE TABLE IF NOT EXISTS jvm_events (
    t_ms UInt64,
    instance String,
    event String
) ENGINE = MergeTree
PARTITION BY intDiv(t_ms, 86400000)
ORDER BY (instance, t_ms);

-- Who sent data and when: each analyzer adds a row per instance it heard
-- from, at most once a second; the list is their union.
CREATE TABLE IF NOT EXISTS instances (
    seen_ms UInt64,
    service String,
    instance String,
    -- The resource attributes the registry keeps, as a JSON object.
    attributes String
) ENGINE = MergeTree
PARTITION BY intDiv(seen_ms, 86400000)
ORDER BY (service, instance, seen_ms);
