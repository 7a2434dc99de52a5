"""Issue 17's targets, fast model vs the stored MRG reference: every counted target is met
except the two known misses, which are pinned here so that any change shows.

The known misses (docs/fidelity.md): the per-fibre strength-duration law ``I_rh + Q PW^-beta``
with one global beta overestimates MRG at 300 µs where MRG's strength-duration curve bends
differently, by up to 13.4 % with the source midway between nodes at 1-2 mm (fitted grid) and
10.5 % for 12.8 µm fibres under the tripolar cathode (held out).
"""

import pytest

from closedloop.fidelity.compare import validate

KNOWN_MISSES = {
    "threshold fast/MRG, source ½ internode off the node: max |error|": 0.15,
    "threshold fast/MRG, tripolar guarded cathode (+0.5/-1/+0.5, 7 mm pitch): max |error|": 0.12,
}
"""Relation -> the largest fast/MRG error (fraction) allowed to persist."""


@pytest.fixture(scope="module")
def report():
    return validate()


def test_every_counted_target_is_met_but_the_known_misses(report):
    counted = [r for r in report.rows if r.counted and r.met is not None]
    missed = {r.relation for r in counted if not r.met}
    assert missed <= set(KNOWN_MISSES), missed - set(KNOWN_MISSES)
    assert len(counted) >= 60
    assert sum(r.met for r in counted) >= len(counted) - len(KNOWN_MISSES)


@pytest.mark.parametrize("relation", sorted(KNOWN_MISSES))
def test_known_misses_stay_bounded(report, relation):
    (row,) = [r for r in report.rows if r.relation == relation]
    assert row.unit == "%"
    assert 10.0 < row.fast <= 100 * KNOWN_MISSES[relation]


def test_headline_relations_are_met(report):
    met = {r.relation: r.met for r in report.rows if r.counted}
    for key in (
        "distance slope 2-6 mm",
        "diameter slope",
        "chronaxie",
        "CV, D",
        "SFAP N1",
        "supernormal depth",
        "late subnormal depth",
    ):
        rows = [m for rel, m in met.items() if rel.startswith(key)]
        assert rows and all(rows), key
