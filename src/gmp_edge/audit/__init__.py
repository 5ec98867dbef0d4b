"""The audit trail: who did what, when (UTC), why, old and new value — hash-chained.

Append-only in the product; `gmp-edge audit verify` proves nobody edited, deleted or
reordered entries behind its back (21 CFR Part 11 §11.10(e), EU Annex 11 §9).
"""
