"""Batch release: QA decisions on a compiled batch review, signed (21 CFR 11.50)."""
