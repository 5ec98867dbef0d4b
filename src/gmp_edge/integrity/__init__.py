"""Tamper evidence for the whole original record (ADR 0027).

Every write transaction on the store seals what it changed into a hash chain of blocks
(``integrity.ledger``): the readings it appended as one rowid range, every row of the other
record tables it inserted, changed or deleted one by one. The heads of that chain and of
the audit trail are signed with the box's Ed25519 key (``integrity.keys``) into anchors
(``integrity.anchors``) kept outside the database. ``integrity.check`` recomputes all of it
from the tables and names what differs.

This package sits just above ``gmp_edge.storage``: the historian and the audit trail call
it inside their transactions, so it imports neither.
"""
