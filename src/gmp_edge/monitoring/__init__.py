"""Limit evaluation, alarms and deviations wired to the store (persistence and engine)."""
