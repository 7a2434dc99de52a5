"""Tables of a fuzz run: counts per entry point, failures grouped, vague refusals."""

from __future__ import annotations

import re

from fuzz_inputs import KINDS, Outcome


def table(results: dict[str, list[Outcome]]) -> str:
    """Counts per entry point: tried, ConfigError, other exceptions, silent garbage."""
    head = (
        f"{'entry point':<20} {'tried':>6} {'ConfigError':>12} {'accepted-ok':>12} "
        f"{'other exc.':>11} {'garbage':>8} {'unnamed':>8}"
    )
    lines = [head, "-" * len(head)]
    totals = dict.fromkeys((*KINDS, "unnamed"), 0)
    for entry, outs in results.items():
        c = {k: sum(o.kind == k for o in outs) for k in KINDS}
        c["unnamed"] = sum(o.kind == "refused" and not o.named for o in outs)
        for k in totals:
            totals[k] += c[k]
        lines.append(
            f"{entry:<20} {len(outs):6d} {c['refused']:12d} {c['accepted-ok']:12d} "
            f"{c['raw']:11d} {c['garbage']:8d} {c['unnamed']:8d}"
        )
    lines.append("-" * len(head))
    lines.append(
        f"{'total':<20} {sum(totals[k] for k in KINDS):6d} {totals['refused']:12d} "
        f"{totals['accepted-ok']:12d} {totals['raw']:11d} {totals['garbage']:8d} "
        f"{totals['unnamed']:8d}"
    )
    must = sum(o.case.refuse for outs in results.values() for o in outs)
    lines.append(
        f"({must} of the {sum(totals[k] for k in KINDS)} inputs must be refused; the "
        "others may be accepted with a sane result)"
    )
    return "\n".join(lines)


def failures(results: dict[str, list[Outcome]]) -> str:
    """Failures grouped by entry point and kind of failure, one minimal reproducer each."""
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for entry, outs in results.items():
        for o in outs:
            if not o.ok:
                groups.setdefault((entry, f"{o.kind}: {_group(o)}"), []).append(o)
    lines = []
    for (entry, kind), outs in sorted(groups.items()):
        first = min(outs, key=lambda o: len(o.case.text))
        lines.append(
            f"[{entry}] {kind} ({len(outs)} case(s)); e.g.\n    {first.case.text}\n"
            f"    -> {first.detail}"
        )
    return "\n".join(lines) if lines else "no failures"


def _group(outcome: Outcome) -> str:
    """What failures of one kind share: the exception type and where it was raised, or the
    first words of a garbage verdict."""
    if outcome.detail.startswith("exit status"):
        return outcome.detail.split(":")[0]
    if outcome.kind == "raw":
        where = re.search(r"\[[^\]]*\]$", outcome.detail)
        return outcome.detail.split(":")[0] + (f" {where.group(0)}" if where else "")
    return re.split(r"[,(]", outcome.detail)[0].strip()


def unnamed(results: dict[str, list[Outcome]]) -> str:
    """Refusals whose message does not name the bad parameter, one example per entry point."""
    lines = []
    for entry, outs in results.items():
        vague = [o for o in outs if o.kind == "refused" and not o.named]
        if vague:
            first = min(vague, key=lambda o: len(o.case.text))
            lines.append(
                f"[{entry}] {len(vague)} refusal(s) without {' / '.join(first.case.names)}; "
                f"e.g.\n    {first.case.text}\n    -> {first.detail[:200]}"
            )
    return "\n".join(lines) if lines else "none"
