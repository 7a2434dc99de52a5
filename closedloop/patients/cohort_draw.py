"""How cohort patients are drawn: the distribution, the implant screening and the seeds.

Each patient is drawn from :class:`CohortDistribution` (every parameter with unit and source) and
then goes through an implant screening: a patient whose programming sweep in the reference
posture finds no ECAP threshold, or no discomfort below ``max_discomfort_ma``, would have failed
the trial and is not implanted; the draw is repeated with the next attempt's seed. The split
seeds are :data:`SPLITS`; :mod:`closedloop.patients.cohort` ships, loads and guards the cohorts.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
from scipy import stats

from closedloop._config import ConfigError, check_value
from closedloop._parallel import parallel_map
from closedloop.patients.calibration import calibrate
from closedloop.patients.cohort_distribution import CohortDistribution
from closedloop.patients.patient import REFERENCE_POSTURE, Patient
from closedloop.patients.perception import derive_perception
from closedloop.patients.postures import POSTURES

SPLITS = {"train": (100, 20261101), "validation": (20, 20261102), "test": (20, 20261103)}
"""Cohort name -> (number of patients, seed)."""


MAX_ATTEMPTS = 50


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
    check_split(split)
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
    check_split(split)
    n = SPLITS[split][0] if n is None else check_count("n", n)
    job = functools.partial(generate_patient, split, d=d)
    return list(parallel_map(job, range(n), workers, progress, f"cohort {split}"))


def check_count(name: str, n: Any) -> int:
    """``n`` as an int >= 1 (a number of patients); ConfigError naming ``name`` otherwise."""
    check_value(name, n, {"lo": 1, "unit": "1"}, kind="int")
    return int(n)


def check_split(split: str) -> None:
    """Raise ConfigError naming the valid splits if ``split`` is unknown."""
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is unknown; valid: {', '.join(SPLITS)}")
