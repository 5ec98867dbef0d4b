"""Deviations: raise, classify, affected batches, due dates and lifecycle (pure core).

- ``batch``: :class:`Batch`, the one batch model (release review reuses it).
- ``model``: enums, :class:`ExcursionSummary`, :class:`Evidence`, :class:`Deviation`,
  :class:`Transition` (audit entry per action), errors.
- ``rules``: classification rules as data (first match wins, named), :class:`DuePolicy`.
- ``lifecycle``: ``raise_deviation``, ``start_investigation``, ``amend``, ``close``,
  ``cancel``, each with required fields and optimistic concurrency (``expected_version``).
- ``autoraise``: ``decide`` (raise? class, rule, affected batches, due dates) and ``draft``.

No I/O: the service persists deviations (``to_dict``/``from_dict``), stores the version
it read and writes each transition to the audit trail (``Transition.audit_kwargs()``).
"""

from gmp_edge.deviations.autoraise import RaiseDecision, affected_batches, decide, draft, escalates
from gmp_edge.deviations.batch import Batch
from gmp_edge.deviations.lifecycle import (
    allowed_actions,
    amend,
    cancel,
    close,
    raise_deviation,
    start_investigation,
)
from gmp_edge.deviations.model import (
    Action,
    Classification,
    Deviation,
    DeviationError,
    Evidence,
    ExcursionKind,
    ExcursionSummary,
    IllegalDeviationTransition,
    InvalidValue,
    MissingDeviationFields,
    ProductionState,
    Source,
    StaleVersion,
    Status,
    Transition,
)
from gmp_edge.deviations.rules import (
    DEFAULT_RULES,
    ClassificationRule,
    DueDates,
    DuePolicy,
    Proposal,
    classify,
    due_dates,
    rules_from_dicts,
)

__all__ = [
    "DEFAULT_RULES",
    "Action",
    "Batch",
    "Classification",
    "ClassificationRule",
    "Deviation",
    "DeviationError",
    "DueDates",
    "DuePolicy",
    "Evidence",
    "ExcursionKind",
    "ExcursionSummary",
    "IllegalDeviationTransition",
    "InvalidValue",
    "MissingDeviationFields",
    "ProductionState",
    "Proposal",
    "RaiseDecision",
    "Source",
    "StaleVersion",
    "Status",
    "Transition",
    "affected_batches",
    "allowed_actions",
    "amend",
    "cancel",
    "classify",
    "close",
    "decide",
    "draft",
    "due_dates",
    "escalates",
    "raise_deviation",
    "rules_from_dicts",
    "start_investigation",
]
