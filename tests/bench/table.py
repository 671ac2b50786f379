"""Rows of the benchmark table: a measurement, its baseline, their ratio."""


class Row:
    def __init__(self, section, what, value, unit, base_name=None, base_value=None,
                 goal="", note="", lower_is_better=True, paired_ratio=None):
        self.section, self.what = section, what
        self.value, self.unit = value, unit
        self.base_name, self.base_value = base_name, base_value
        self.goal, self.note = goal, note
        self.lower_is_better = lower_is_better
        self.paired_ratio = paired_ratio

    @property
    def ratio(self):
        """value / base_value, or the median of ratios taken pair by pair
        when the row measured in pairs (its note says so)."""
        if self.paired_ratio is not None:
            return self.paired_ratio
        if self.value is None or not self.base_value:
            return None
        return self.value / self.base_value


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "s":
        if v < 1e-3:
            return f"{v * 1e6:.0f} µs"
        if v < 1:
            return f"{v * 1e3:.2f} ms"
        return f"{v:.2f} s"
    if unit == "MiB":
        return f"{v:.1f} MiB"
    if unit == "/s":
        return f"{v:.1f}/s"
    if isinstance(v, float):
        return f"{v:.3g} {unit}".strip()
    return f"{v} {unit}".strip()


HEAD = ("#", "measurement", "bananafs", "baseline", "baseline value", "ratio", "goal", "note")


def cells(r):
    ratio = "n/a" if r.ratio is None else f"{r.ratio:.2f}×"
    return (r.section, r.what, fmt(r.value, r.unit), r.base_name or "—",
            fmt(r.base_value, r.unit) if r.base_name else "—", ratio, r.goal, r.note)


def markdown(rows):
    out = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    for r in rows:
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells(r)) + " |")
    return "\n".join(out)


def text(rows):
    table = [HEAD] + [cells(r) for r in rows]
    width = [max(len(t[i]) for t in table) for i in range(len(HEAD) - 1)]
    lines = []
    for t in table:
        lines.append("  ".join(c.ljust(w) for c, w in zip(t, width)) + "  " + t[-1])
    return "\n".join(lines)
