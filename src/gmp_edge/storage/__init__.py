"""SQLite plumbing shared by every store: versioned schemas and their migrations (ADR 0021)."""
