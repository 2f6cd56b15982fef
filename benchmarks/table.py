"""Result rows: each figure with its baseline, their ratio, the target and whether it is met -- printed
as one table and saved as JSON, all from the same run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class Row:
    """One measurement.  ``goal`` is checked against ``ratio`` when ``on`` is "ratio", else against
    ``figure``; ``op`` is ">=" or "<".  A row without a goal has ``met`` None (informational)."""

    section: str
    name: str
    figure: float | None
    unit: str = ""
    baseline: float | None = None
    baseline_name: str = ""
    goal: float | None = None
    op: str = ">="
    on: str = "figure"
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.figure is None or not self.baseline:
            return None
        return self.figure / self.baseline

    @property
    def met(self) -> bool | None:
        value = self.ratio if self.on == "ratio" else self.figure
        if self.goal is None or value is None:
            return None
        return value >= self.goal if self.op == ">=" else value < self.goal

    @property
    def target(self) -> str:
        if self.goal is None:
            return "-"
        subject = "ratio" if self.on == "ratio" else self.unit
        return f"{self.op} {_num(self.goal)} {subject}".strip()

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(ratio=self.ratio, met=self.met, target=self.target)
        return out


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 100_000:
        return f"{value / 1e6:.2f}M" if abs(value) >= 1e6 else f"{value / 1e3:.0f}k"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def render(rows: list[Row]) -> str:
    """A plain-text table (it goes to logs and CI output, so no colours)."""
    header = ("section", "name", "figure", "baseline", "ratio", "target", "met")
    lines = [header]
    for r in rows:
        figure = "not measured" if r.figure is None else f"{_num(r.figure)} {r.unit}".strip()
        base = "-" if r.baseline is None else f"{_num(r.baseline)} ({r.baseline_name})"
        met = {True: "yes", False: "NO", None: "-"}[r.met]
        lines.append((r.section, r.name, figure, base, _num(r.ratio), r.target, met))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  [{r.section}] {r.name}: {r.note}" for r in rows if r.note]
    if notes:
        out += ["", "notes:"] + notes
    return "\n".join(out)


def save(rows: list[Row], path: str, meta: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"meta": meta, "rows": [r.as_dict() for r in rows]}, fh, indent=2)
        fh.write("\n")
