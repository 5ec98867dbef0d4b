"""The service's own health in the Prometheus text format (``GET /metrics``).

Pure: it renders numbers it is given. Counters end in ``_total``; every device, sink and
destination is a label, so one scrape config covers any plant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Exposition:
    """Collects samples grouped by metric name, then renders them."""

    def __init__(self) -> None:
        self._metrics: dict[str, tuple[str, str, list[str]]] = {}

    def add(
        self,
        name: str,
        kind: str,
        help_text: str,
        value: float | int | bool | None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """One sample (None values are skipped: unknown is not zero)."""
        if value is None:
            return
        _, _, samples = self._metrics.setdefault(name, (kind, help_text, []))
        lab = ""
        if labels:
            lab = "{" + ",".join(f'{k}="{_esc(str(v))}"' for k, v in labels.items()) + "}"
        samples.append(f"{name}{lab} {float(value)!r}")

    def render(self) -> str:
        """The exposition text."""
        out: list[str] = []
        for name, (kind, help_text, samples) in self._metrics.items():
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)
        return "\n".join(out) + "\n"


def flatten(prefix: str, values: Mapping[str, object]) -> Iterable[tuple[str, float]]:
    """Numeric entries of a status dict as (name, value); others are left out."""
    for k, v in values.items():
        if isinstance(v, int | float):  # bool is an int: True -> 1.0
            yield f"{prefix}_{k}", float(v)
