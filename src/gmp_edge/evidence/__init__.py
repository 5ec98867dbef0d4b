"""Signed, offline-verifiable evidence packages for batch release review.

``evidence.package.build_package`` writes a ZIP with everything recorded about one batch
(readings, gaps, alarms, deviations, limit versions, the audit-trail segment, the plant
configuration) plus a manifest of file hashes signed with the edge box's Ed25519 key
(``gmp_edge.integrity.keys``). ``evidence.verify.verify_package`` checks such a ZIP on any machine
with Python and ``cryptography``: ``python -m gmp_edge.evidence verify FILE [--fingerprint HEX]``.
See docs/decisions/0016-evidence-package.md.

This module imports nothing else, so that verifying does not need the store's packages.
"""
