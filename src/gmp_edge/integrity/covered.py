"""Which tables are the original record, and which of their columns are sealed.

``readings`` is sealed as rowid ranges, one per transaction (it is the hot path and
append-only); every other table here row by row. Left out, because they are derived or
operational, never the record: ``segments`` (derived from readings), ``meta`` (heartbeat,
cursors), ``outbox_cursors``, ``engine_state`` (the engine's restart state, rebuilt from
the alarms), ``quarantine`` (copies of readings a destination refused), ``schema_versions``
and the audit trail, which has its own hash chain (both heads go into every anchor).

A migration that adds a column to one of these tables changes what a row is: it must add
the column here and seal the rows again (``tests/unit/test_integrity.py`` compares this
list with the tables a fully migrated store has).
"""

from __future__ import annotations

READINGS = "readings"
READINGS_COLUMNS = (
    "tag_id",
    "ts_us",
    "ts_edge_us",
    "ts_source_us",
    "value",
    "text",
    "quality",
    "message",
    "cause",
)

# table -> sealed columns, in declared order (the rowid is always sealed too)
ROW_TABLES: dict[str, tuple[str, ...]] = {
    "tags": ("id", "path", "unit", "kind", "device"),
    "gaps": ("id", "tag_id", "start_us", "end_us", "cause", "message"),
    "service_runs": ("id", "started_us", "stopped_us", "config_sha256", "note"),
    "sample_intervals": ("tag_id", "from_us", "interval_s"),
    "alarms": ("id", "tag", "state", "last_transition_us", "json"),
    "alarm_transitions": ("id", "alarm_id", "tag", "at_us", "json"),
    "deviations": (
        "id",
        "status",
        "version",
        "discovered_us",
        "raised_by",
        "updated_us",
        "json",
    ),
    "deviation_batches": ("deviation_id", "batch_id"),
    "batches": ("id", "product", "start_us", "end_us", "json"),
    "limit_sets": (
        "id",
        "version",
        "status",
        "origin",
        "proposed_by",
        "approved_by",
        "effective_from_us",
        "created_us",
        "decided_by",
        "decided_us",
        "json",
    ),
    "audit_reviews": (
        "id",
        "start_us",
        "end_us",
        "first_seq",
        "last_seq",
        "last_hash",
        "entries",
        "comment",
        "created_by",
        "created_us",
        "updated_us",
    ),
    "batch_decisions": (
        "id",
        "batch_id",
        "n",
        "decision",
        "comment",
        "review_sha256",
        "blockers",
        "decided_by",
        "decided_us",
    ),
    "signatures": (
        "id",
        "record_type",
        "record_id",
        "content_sha256",
        "signer",
        "printed_name",
        "meaning",
        "ts_us",
        "reason",
    ),
    "users": (
        "id",
        "full_name",
        "role",
        "password_hash",
        "active",
        "created_us",
        "created_by",
        "password_changed_us",
        "failed_attempts",
        "locked_us",
    ),
    "api_tokens": ("id", "role", "token_sha256", "created_us", "created_by", "revoked_us"),
    "password_history": ("user_id", "password_hash", "replaced_us"),
}

SEALED_TABLES = (READINGS, *ROW_TABLES)


def select_rows(table: str) -> str:
    """``select rowid, <sealed columns> from <table>`` (append a where/order clause)."""
    cols = READINGS_COLUMNS if table == READINGS else ROW_TABLES[table]
    return f"select rowid, {', '.join(cols)} from {table}"
