"""Cohorts of virtual patients: explicit distributions, fixed seeds, train/validation/test splits.

Each patient is drawn from :class:`CohortDistribution` (every parameter with unit and source) and
then goes through an implant screening: a patient whose programming sweep in the reference
posture finds no ECAP threshold, or no discomfort below ``max_discomfort_ma``, would have failed
the trial and is not implanted; the draw is repeated with the next attempt's seed.

The three named cohorts are generated deterministically from :data:`SPLITS` and shipped as JSON
files in ``closedloop/cohorts/`` (``closedloop cohort --regenerate`` rewrites them). The test
cohort is **held out**: code that tunes anything (gains, hyperparameters, distributions) runs
inside :func:`tuning_session`, where loading the test cohort raises :class:`HeldOutError`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import json
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from closedloop._config import ConfigError, check_value, param, short_repr, validate
from closedloop._io import write_text_atomic
from closedloop._parallel import parallel_map
from closedloop.patients.calibration import calibrate
from closedloop.patients.patient import NAMED_PATIENTS, REFERENCE_POSTURE, Patient, named_patient
from closedloop.patients.perception import derive_perception
from closedloop.patients.postures import POSTURES

SPLITS = {"train": (100, 20261101), "validation": (20, 20261102), "test": (20, 20261103)}
"""Cohort name -> (number of patients, seed)."""
HELD_OUT = "test"
FORMAT = "closedloop.cohort/1"
MAX_ATTEMPTS = 50
_TUNING: contextvars.ContextVar[str | None] = contextvars.ContextVar("tuning", default=None)


class HeldOutError(ConfigError):
    """The held-out test cohort was requested inside a tuning session."""


@dataclasses.dataclass(frozen=True)
class CohortDistribution:
    """How cohort patients are drawn. ``sd_ln`` are log-space sds of lognormal multipliers."""

    t11_probability: float = param(
        0.6,
        "1",
        "assumption: T11 vs T12 leads (levels with CSF data in Holsheimer 1994 [C])",
        0.0,
        1.0,
        doc="share of T11 leads",
    )
    csf_mean_t11_mm: float = param(
        3.4,
        "mm",
        "Holsheimer 1994 T11 supine 2-6 mm [C]; mean is an assumption",
        2.0,
        6.0,
        doc="supine CSF mean, T11",
    )
    csf_mean_t12_mm: float = param(
        2.9,
        "mm",
        "Holsheimer 1994 T12 supine 1.5-4.5 mm [C]; mean an assumption",
        1.5,
        4.5,
        doc="supine CSF mean, T12",
    )
    csf_sd_mm: float = param(
        0.4,
        "mm",
        "assumption: thresholds mostly 2-8 mA [C/M]",
        0.0,
        3.0,
        doc="supine CSF sd (normal, truncated to the level's range)",
    )
    prone_t11_mm: float = param(
        2.2, "mm", "Holsheimer 1994 [C]", 0.0, 6.0, doc="prone CSF offset mean, T11"
    )
    prone_t12_mm: float = param(
        3.4, "mm", "Holsheimer 1994 [C]", 0.0, 6.0, doc="prone CSF offset mean, T12"
    )
    prone_sd_mm: float = param(0.5, "mm", "assumption", 0.0, 3.0, doc="prone offset sd")
    side_mm: float = param(0.25, "mm", "assumption", -2.0, 3.0, doc="side-lying offset mean")
    side_sd_mm: float = param(0.2, "mm", "assumption", 0.0, 2.0, doc="side-lying offset sd")
    sitting_mm: float = param(
        0.45,
        "mm",
        "calibrated: +0.5 µC lying->upright [C Cameron & Alo 1998]",
        -2.0,
        3.0,
        doc="sitting offset mean",
    )
    sitting_sd_mm: float = param(
        0.3,
        "mm",
        "Cameron & Alo: ±0.30 µC; lowest lying in 20/23 [C]",
        0.0,
        2.0,
        doc="sitting offset sd",
    )
    standing_extra_mm: float = param(
        0.1,
        "mm",
        "calibrated: Cameron & Alo [C]",
        -1.0,
        1.0,
        doc="standing offset over sitting, mean",
    )
    standing_extra_sd_mm: float = param(
        0.1, "mm", "assumption", 0.0, 1.0, doc="standing offset over sitting, sd"
    )
    walking_extra_sd_mm: float = param(
        0.05,
        "mm",
        "assumption: walking ~ standing",
        0.0,
        1.0,
        doc="walking offset over standing, sd (mean 0)",
    )
    lateral_sd_mm: float = param(
        0.5,
        "mm",
        "assumption: small lateral offset, within ±1.5 mm",
        0.0,
        1.5,
        doc="lead lateral offset sd (truncated ±1.5 mm)",
    )
    excitability_sd_ln: float = param(
        0.15, "1", "assumption", 0.0, 1.0, doc="spread of the fibre threshold scale"
    )
    diameter_sd_ln: float = param(
        0.05, "1", "assumption", 0.0, 0.5, doc="spread of the median fibre diameter"
    )
    sfap_sd_ln: float = param(
        0.25,
        "1",
        "assumption: slopes 5-50 µV/mA [M]",
        0.0,
        1.0,
        doc="spread of the single-fibre AP size (recording gain)",
    )
    impedance_median_ohm: float = param(
        900.0,
        "Ω",
        "0.5-1.5 kΩ [M]",
        100.0,
        10_000.0,
        doc="contact impedance median (truncated 500-1500 Ω)",
    )
    impedance_sd_ln: float = param(0.25, "1", "assumption", 0.0, 2.0, doc="impedance spread")
    perception_db_sd: float = param(
        0.74,
        "dB",
        "median |error| 0.5 dB [C Pilitsis 2021]",
        0.0,
        6.0,
        doc="perception re ECAP threshold sd (normal, ±3 dB)",
    )
    discomfort_ratio_median: float = param(
        1.6,
        "1",
        "assumption: 1.3-2.5 [M]",
        1.05,
        5.0,
        doc="discomfort / perception current, median",
    )
    discomfort_ratio_sd_ln: float = param(
        0.15, "1", "assumption", 0.0, 1.0, doc="its spread (clipped to 1.25-2.5)"
    )
    target_position_mean: float = param(
        0.5,
        "1",
        "assumption: a comfortable mid-window target",
        0.0,
        1.0,
        doc="target place in the common window, mean",
    )
    target_position_sd: float = param(
        0.15, "1", "assumption", 0.0, 1.0, doc="its sd (normal, clipped to 0.1-0.9)"
    )
    subperception_probability: float = param(
        0.17,
        "1",
        "calibrated on train+validation: EVOKE closed-loop lower quartile 48 % in "
        "window [C]; targets set below perception, clinic-calibration.md 4.2 [inference]",
        0.0,
        1.0,
        doc="share of patients whose target lies below perception",
    )
    subperception_position: float = param(
        -0.15,
        "1",
        "assumption",
        -1.0,
        0.0,
        doc="their target_position, mean (sd 0.1, clipped to -0.6..-0.02)",
    )
    migration_probability: float = param(
        0.1,
        "1",
        "West 2023 pooled lead migration 9.97 % (95 % CI 7.6-12.6 %) [C]",
        0.0,
        1.0,
        doc="share of patients whose lead migrated since programming",
    )
    migration_max_mm: float = param(
        1.5,
        "mm",
        "assumption: migrations that lose coverage [C West 2023, qualitative]",
        0.0,
        3.0,
        doc="migration CSF change, uniform in [1/3, 1] x this",
    )
    snr_mean: float = param(
        4.6,
        "1",
        "Freshwater/Rosella: mean ECAP SNR 4.6 ± 1.2 [C]",
        0.5,
        50.0,
        doc="ECAP SNR at the target (target / single-sweep noise rms)",
    )
    snr_sd: float = param(1.2, "1", "same [C]", 0.0, 20.0, doc="its sd (normal, truncated to 1-10)")
    max_discomfort_ma: float = param(
        20.0,
        "mA",
        "assumption: headroom below the 25.5 mA device maximum",
        1.0,
        25.5,
        doc="implant screening limit",
    )

    def __post_init__(self) -> None:
        validate(self, "cohort.")


def _truncnorm(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float) -> float:
    """One draw of a normal truncated to [lo, hi] (the mean if sd is 0)."""
    if sd == 0.0:
        return float(np.clip(mean, lo, hi))
    a, b = (lo - mean) / sd, (hi - mean) / sd
    return float(stats.truncnorm.rvs(a, b, loc=mean, scale=sd, random_state=rng))


def _posture_csf(rng: np.random.Generator, d: CohortDistribution, level: str) -> dict:
    """Per-posture CSF thickness (mm) for one patient."""
    t11 = level == "T11"
    supine = _truncnorm(
        rng,
        d.csf_mean_t11_mm if t11 else d.csf_mean_t12_mm,
        d.csf_sd_mm,
        *((2.0, 6.0) if t11 else (1.5, 4.5)),
    )
    sitting = supine + rng.normal(d.sitting_mm, d.sitting_sd_mm)
    standing = sitting + rng.normal(d.standing_extra_mm, d.standing_extra_sd_mm)
    csf = {
        "supine": supine,
        "prone": supine + rng.normal(d.prone_t11_mm if t11 else d.prone_t12_mm, d.prone_sd_mm),
        "side": supine + rng.normal(d.side_mm, d.side_sd_mm),
        "sitting": sitting,
        "standing": standing,
        "walking": standing + rng.normal(0.0, d.walking_extra_sd_mm),
    }
    return {p: float(np.clip(csf[p], 0.5, 12.0)) for p in POSTURES}


def draw_candidate(
    rng: np.random.Generator,
    d: CohortDistribution,
    patient_id: str,
    flags: tuple[bool, bool] | None = None,
) -> tuple[Patient, float, float]:
    """Draw one candidate patient (before screening).

    Args:
        rng: The candidate's generator.
        d: The distribution.
        patient_id: Its id.
        flags: The cohort's failure-mode assignment (:func:`therapy_flags`), or None.

    Returns:
        The patient with default perception, its perception offset (dB) and discomfort ratio.
    """
    level = "T11" if rng.random() < d.t11_probability else "T12"
    csf = _posture_csf(rng, d, level)
    lateral = _truncnorm(rng, 0.0, d.lateral_sd_mm, -1.5, 1.5)
    base = Patient("x").params
    scale = np.exp(rng.normal(0.0, [d.excitability_sd_ln, d.diameter_sd_ln, d.sfap_sd_ln]))
    params = base.replace(
        lead={"lateral_offset_mm": lateral},
        excitability={"threshold_scale": base.excitability.threshold_scale * scale[0]},
        population={"diameter_median_um": base.population.diameter_median_um * scale[1]},
        response={"sfap_uv": base.response.sfap_uv * scale[2]},
    )
    imp = float(
        np.exp(
            _truncnorm(
                rng,
                np.log(d.impedance_median_ohm),
                d.impedance_sd_ln,
                np.log(500.0),
                np.log(1500.0),
            )
        )
    )
    db = _truncnorm(rng, 0.0, d.perception_db_sd, -3.0, 3.0)
    spread = np.exp(rng.normal(0, d.discomfort_ratio_sd_ln))
    ratio = float(np.clip(d.discomfort_ratio_median * spread, 1.25, 2.5))
    seed = int(rng.integers(0, 2**31 - 1))
    patient = Patient(
        patient_id,
        seed=seed,
        vertebral_level=level,
        posture_csf_mm=csf,
        impedance_ohm=imp,
        params=params,
        **_therapy_draws(rng, d, flags),
    )
    return patient, db, ratio


def _therapy_draws(
    rng: np.random.Generator, d: CohortDistribution, flags: tuple[bool, bool] | None = None
) -> dict[str, float]:
    """The patient's programmed target position and lead migration.

    Drawn after the anatomy, so that adding them left every earlier draw as it was.

    Args:
        rng: The candidate's generator.
        d: The distribution.
        flags: ``(target below perception, lead migrated)`` as the cohort assigns them
            (:func:`therapy_flags`); None: independent draws with the distribution's shares.
    """
    u_sub, u_mig = rng.random(), rng.random()
    sub, migrated = (
        flags
        if flags is not None
        else (u_sub < d.subperception_probability, u_mig < d.migration_probability)
    )
    if sub:
        position = np.clip(rng.normal(d.subperception_position, 0.1), -0.6, -0.02)
    else:
        position = np.clip(rng.normal(d.target_position_mean, d.target_position_sd), 0.1, 0.9)
    migration = rng.uniform(d.migration_max_mm / 3.0, d.migration_max_mm) if migrated else 0.0
    return {"target_position": float(position), "migration_mm": float(migration)}


def therapy_flags(split: str, index: int, d: CohortDistribution) -> tuple[bool, bool]:
    """Whether patient ``index`` of ``split`` has a target below perception and a migrated lead.

    The shares are exact in each cohort (stratified, design choice): ``round(share * N)`` of the
    split's N patients, chosen by a permutation seeded from the split's seed, one permutation
    per failure mode. Independent draws would leave a 20-patient cohort with anywhere from 0
    to 7 such patients, and its closed-loop lower quartile to chance.
    """
    n, seed = SPLITS[split]
    out = []
    for salt, share in ((1, d.subperception_probability), (2, d.migration_probability)):
        order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(10**6, salt)))
        out.append(bool(order.permutation(n)[index] < round(share * n)))
    return out[0], out[1]


def _with_snr(patient: Patient, snr: float) -> Patient:
    """``patient`` with the recording noise that puts its ECAP target ``snr`` times above it.

    The target comes from a programming session with the default noise; the shipped record,
    made with the new noise, moves it by a few per cent (the estimator's bias near threshold).
    """
    target_uv = calibrate(patient).target_uv
    noise = float(np.clip(target_uv / snr, 0.5, 100.0))
    return dataclasses.replace(
        patient, params=patient.params.replace(recording={"noise_uv_rms": noise})
    )


def generate_patient(split: str, index: int, d: CohortDistribution | None = None) -> Patient:
    """Draw and screen patient ``index`` of cohort ``split`` (deterministic)."""
    d = CohortDistribution() if d is None else d
    _check_split(split)
    pid = f"{split}-{index:03d}"
    for attempt in range(MAX_ATTEMPTS):
        ss = np.random.SeedSequence(SPLITS[split][1], spawn_key=(index, attempt))
        rng = np.random.default_rng(ss)
        flags = therapy_flags(split, index, d) if index < SPLITS[split][0] else None
        patient, db, ratio = draw_candidate(rng, d, pid, flags)
        perception = derive_perception(
            patient.model(),
            patient.csf_mm(REFERENCE_POSTURE),
            db,
            ratio,
            max_discomfort_ma=d.max_discomfort_ma,
        )
        if perception is not None:
            snr = _truncnorm(rng, d.snr_mean, d.snr_sd, 1.0, 10.0)
            return _with_snr(dataclasses.replace(patient, perception=perception), snr)
    raise ConfigError(
        f"{pid}: no patient passed screening in {MAX_ATTEMPTS} attempts; "
        "the cohort distribution is implausible"
    )


def generate_cohort(
    split: str,
    n: int | None = None,
    d: CohortDistribution | None = None,
    workers: int = 1,
    progress: bool = False,
) -> list[Patient]:
    """Generate the first ``n`` patients of cohort ``split`` (all by default).

    Args:
        split: ``train``, ``validation`` or ``test``.
        n: Number of patients; default the split's size.
        d: Distribution; default :class:`CohortDistribution`.
        workers: Parallel processes.
        progress: Show a progress bar.

    Returns:
        The patients, in index order.
    """
    _check_split(split)
    n = SPLITS[split][0] if n is None else check_count("n", n)
    job = functools.partial(generate_patient, split, d=d)
    return list(parallel_map(job, range(n), workers, progress, f"cohort {split}"))


def check_cohort_run(split: str, report_test: bool, seeds: Any, patients: Any) -> None:
    """Check a cohort run's choices (the benchmark scripts' shared command-line rules).

    Args:
        split: Cohort split; ``test`` is refused unless ``report_test`` (reporting the held-out
            cohort, never tuning on it).
        report_test: Whether the run reports the held-out cohort.
        seeds: Episode seeds, distinct integers >= 0.
        patients: First N patients (0: all), >= 0.

    Raises:
        ConfigError: Naming the offending choice and its valid range.
    """
    if split == HELD_OUT and not report_test:
        raise ConfigError(
            f"split={split!r} is the held-out cohort; pass --report-test to "
            "report it (calibrate on train or validation)"
        )
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"seeds={seeds!r} must be distinct integers >= 0")
    if patients < 0:
        raise ConfigError(f"patients={patients!r} is out of range; valid: >= 0")


def check_count(name: str, n: Any) -> int:
    """``n`` as an int >= 1 (a number of patients); ConfigError naming ``name`` otherwise."""
    check_value(name, n, {"lo": 1, "unit": "1"}, kind="int")
    return int(n)


def cohort_path(split: str) -> Path:
    """The shipped JSON file of cohort ``split``."""
    _check_split(split)
    return Path(str(resources.files("closedloop") / "cohorts" / f"{split}.json"))


def write_cohort(split: str, patients: list[Patient], path: str | Path | None = None) -> Path:
    """Save ``patients`` as the JSON file of cohort ``split`` (atomically)."""
    doc = {
        "format": FORMAT,
        "split": split,
        "seed": SPLITS[split][1],
        "distribution": dataclasses.asdict(CohortDistribution()),
        "patients": [p.to_dict() for p in patients],
    }
    written = write_text_atomic(
        cohort_path(split) if path is None else path, json.dumps(doc, indent=1) + "\n"
    )
    _read.cache_clear()
    return written


@functools.cache
def _read(split: str) -> tuple[Patient, ...]:
    """Parse a shipped cohort file (cached)."""
    path = cohort_path(split)
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("format") != FORMAT or doc.get("split") != split:
        raise ConfigError(f"{path}: not a {FORMAT} file of split {split!r}")
    return tuple(
        Patient.from_dict(p, where=f"{path.name}[{i}]") for i, p in enumerate(doc["patients"])
    )


def load_cohort(split: str) -> list[Patient]:
    """The patients of a named cohort.

    Raises:
        ConfigError: If ``split`` is unknown.
        HeldOutError: If ``split`` is the test cohort and a tuning session is active.
    """
    _check_split(split)
    purpose = _TUNING.get()
    if split == HELD_OUT and purpose is not None:
        raise HeldOutError(
            f"the {HELD_OUT} cohort is held out from tuning ({purpose}); use train or validation"
        )
    return list(_read(split))


def cohort_patient(patient_id: str) -> Patient:
    """One cohort patient by id, e.g. ``validation-004``."""
    split, _, num = patient_id.rpartition("-")
    patients = load_cohort(split)
    if not num.isdigit() or int(num) >= len(patients):
        raise ConfigError(
            f"patient={patient_id!r} is unknown; cohort {split} has ids "
            f"{split}-000 to {split}-{len(patients) - 1:03d}"
        )
    return patients[int(num)]


def get_patient(name: str) -> Patient:
    """A named patient (:data:`~closedloop.patients.patient.NAMED_PATIENTS`) or a cohort patient id.

    Args:
        name: ``default``, ``thin-csf``, ... or ``<split>-<NNN>``, e.g. ``train-007``.

    Raises:
        ConfigError: Naming the valid choices if ``name`` is unknown.
    """
    if not isinstance(name, str):
        raise ConfigError(
            f"patient={short_repr(name)} must be a string: one of "
            f"{', '.join(NAMED_PATIENTS)} or a cohort id <split>-<NNN>"
        )
    if name in NAMED_PATIENTS:
        return named_patient(name)
    if name.rsplit("-", 1)[0] in SPLITS:
        return cohort_patient(name)
    raise ConfigError(
        f"patient={name!r} is unknown; valid: {', '.join(NAMED_PATIENTS)} or a cohort id "
        f"<split>-<NNN> with split in {', '.join(SPLITS)}"
    )


@contextlib.contextmanager
def tuning_session(purpose: str) -> Iterator[None]:
    """Mark a block as tuning: inside it, :func:`load_cohort` refuses the test cohort.

    Args:
        purpose: What is being tuned (named in the error message).
    """
    token = _TUNING.set(purpose)
    try:
        yield
    finally:
        _TUNING.reset(token)


TUNING_ENTRY_POINTS: dict[str, Callable] = {}
"""Every registered tuning entry point (name -> wrapped function); tests check the guard."""


def tuning_entry_point(purpose: str) -> Callable[[Callable], Callable]:
    """Decorator: run the function inside :func:`tuning_session` and register it.

    Args:
        purpose: What the function tunes (named in :class:`HeldOutError` messages).
    """

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            with tuning_session(purpose):
                return fn(*args, **kwargs)

        TUNING_ENTRY_POINTS[f"{fn.__module__}.{fn.__qualname__}"] = guarded
        return guarded

    return wrap


def _check_split(split: str) -> None:
    """Raise ConfigError naming the valid splits if ``split`` is unknown."""
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is unknown; valid: {', '.join(SPLITS)}")
