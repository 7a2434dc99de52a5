"""Protocols run on MRG fibres in NEURON to make the stored validation reference.

Each protocol returns plain lists (JSON-ready); :func:`threshold_grid` is the strength-distance-
duration grid of issue 17: a cathodic monophasic point source in a homogeneous isotropic medium
(σ = 0.6 S/m), a straight fibre with a node under the electrode, MRG at 37 °C.
"""

from __future__ import annotations

import math

import numpy as np

from closedloop.fidelity.mrg import SIGMA_S_PER_M, MRGFibre, Pulse, monophasic

DIAMETERS_UM = (5.7, 7.3, 8.7, 10.0, 11.5, 12.8, 14.0, 16.0)
DISTANCES_MM = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0)
PWS_US = (30.0, 60.0, 100.0, 200.0, 300.0, 500.0, 1000.0)
LENGTH_MM = 60.0
DT_MS = 0.005


def _first_guess_ma(diameter_um: float, distance_mm: float, pw_us: float) -> float:
    """A rough MRG threshold (mA) to start the bracket (only speeds up the search)."""
    return 0.37 * (10.0 / diameter_um) * distance_mm ** 1.9 * (1.0 + 100.0 / pw_us) / 2.0


def thresholds_for_diameter(diameter_um: float, distances_mm=DISTANCES_MM, pws_us=PWS_US,
                            offset_internodes: float = 0.0, length_mm: float = LENGTH_MM,
                            dt_ms: float = DT_MS) -> list[list[float]]:
    """Thresholds (mA) of one fibre diameter over distances x pulse widths.

    Args:
        diameter_um: Fibre diameter (µm).
        distances_mm: Source-fibre distances (mm).
        pws_us: Pulse widths (µs).
        offset_internodes: Longitudinal offset of the source from the centre node, in
            internodes (0: node under the electrode; 0.5: midway between two nodes).
        length_mm: Fibre length (mm).
        dt_ms: Time step (ms).

    Returns:
        ``[distance][pw]`` thresholds (mA).
    """
    fibre = MRGFibre(diameter_um, length_mm=length_mm, dt_ms=dt_ms)
    offset_mm = offset_internodes * fibre.internode_mm
    out = []
    prev_row = None
    for i, d in enumerate(distances_mm):
        ve = fibre.point_source(d, offset_mm)
        row = []
        for j, pw in enumerate(pws_us):
            if prev_row is not None:
                guess = prev_row[j] * (d / distances_mm[i - 1]) ** 2
            elif j:
                guess = row[-1] * (1.0 + 100.0 / pw) / (1.0 + 100.0 / pws_us[j - 1])
            else:
                guess = _first_guess_ma(diameter_um, d, pw)
            th, _ = fibre.threshold(ve, monophasic(pw * 1e-3), guess)
            row.append(th)
        out.append(row)
        prev_row = row
    return out


def threshold_grid(diameters_um=DIAMETERS_UM, distances_mm=DISTANCES_MM, pws_us=PWS_US,
                   offset_internodes: float = 0.0, processes: int = 2, progress=None) -> dict:
    """The threshold grid over diameters, distances and pulse widths (see module docstring).

    Args:
        diameters_um: Fibre diameters (µm).
        distances_mm: Distances (mm).
        pws_us: Pulse widths (µs).
        offset_internodes: Source offset from the centre node, in internodes.
        processes: Worker processes (one NEURON per process).
        progress: Optional callable ``(done, total)``.

    Returns:
        ``{"diameter_um", "distance_mm", "pw_us", "offset_internodes", "threshold_ma"}``, the
        last indexed ``[diameter][distance][pw]``.
    """
    from concurrent.futures import ProcessPoolExecutor

    order = sorted(range(len(diameters_um)), key=lambda k: diameters_um[k])  # slowest first
    results: dict[int, list] = {}
    with ProcessPoolExecutor(processes) as pool:
        futures = {k: pool.submit(thresholds_for_diameter, diameters_um[k], distances_mm,
                                  pws_us, offset_internodes) for k in order}
        for n, k in enumerate(order):
            results[k] = futures[k].result()
            if progress is not None:
                progress(n + 1, len(order))
    return {"diameter_um": list(diameters_um), "distance_mm": list(distances_mm),
            "pw_us": list(pws_us), "offset_internodes": offset_internodes,
            "threshold_ma": [results[k] for k in range(len(diameters_um))]}


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y on log x."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


# --- conduction velocity ---------------------------------------------------------------------

CV_DTS_MS = (0.005, 0.0025, 0.00125, 0.000625)
CLAMP_NODE = 2
"""The AP is started by an intracellular pulse at this node (near one end of the fibre)."""
CLAMP_NA = 10.0
"""Intracellular start pulse (nA, 0.1 ms): suprathreshold at every diameter."""
V_DETECT_MV = -30.0


def crossing_time_ms(t_ms: np.ndarray, v_mv: np.ndarray, v_thresh_mv: float = V_DETECT_MV
                     ) -> float:
    """First upward crossing of ``v_thresh_mv``, linearly interpolated (ms; NaN: none)."""
    above = np.flatnonzero(v_mv > v_thresh_mv)
    if above.size == 0 or above[0] == 0:
        return math.nan
    k = above[0]
    frac = (v_thresh_mv - v_mv[k - 1]) / (v_mv[k] - v_mv[k - 1])
    return float(t_ms[k - 1] + frac * (t_ms[k] - t_ms[k - 1]))


def _propagate(fibre: MRGFibre, last_node: int) -> np.ndarray:
    """Start an AP at :data:`CLAMP_NODE`, run until it passes ``last_node``; crossing times."""
    fibre.clear_iclamps()
    fibre.add_iclamp(CLAMP_NODE, CLAMP_NA)
    z_mm = fibre.z_um[fibre.node_sections] * 1e-3
    tstop = 1.0 + (z_mm[last_node] - z_mm[CLAMP_NODE]) / (2.0 * fibre.diameter_um)  # CV > 2 D
    fibre.run(np.zeros(len(fibre.sections)), [], tstop, stop_node=last_node, record_vm=True)
    vm = fibre.vm
    return np.array([crossing_time_ms(fibre.t_ms, v) for v in vm])


def cv_for_diameter(diameter_um: float, dts_ms=CV_DTS_MS, length_mm: float = LENGTH_MM) -> dict:
    """Conduction velocity (m/s) of one fibre at several time steps, and its dt -> 0 limit.

    The AP is started at one end by an intracellular pulse; CV = distance / time between the
    -30 mV crossings (linearly interpolated in time) at the nodes at 25 % and 75 % of the fibre.
    The limit is the intercept of a straight-line fit of CV against dt (backward Euler: error
    of first order in dt).

    Args:
        diameter_um: Fibre diameter (µm).
        dts_ms: Time steps (ms).
        length_mm: Fibre length (mm).

    Returns:
        ``{"dt_ms", "cv_m_per_s", "cv_dt0_m_per_s"}``.
    """
    fibre = MRGFibre(diameter_um, length_mm=length_mm, dt_ms=dts_ms[0])
    a, b = round(0.25 * (fibre.n_nodes - 1)), round(0.75 * (fibre.n_nodes - 1))
    z_mm = fibre.z_um[fibre.node_sections] * 1e-3
    cvs = []
    for dt in dts_ms:
        fibre.dt_ms = dt
        times = _propagate(fibre, b)
        cvs.append(float((z_mm[b] - z_mm[a]) / (times[b] - times[a])))
    intercept = float(np.polyfit(dts_ms, cvs, 1)[1]) if len(dts_ms) > 1 else cvs[0]
    return {"dt_ms": list(dts_ms), "cv_m_per_s": cvs, "cv_dt0_m_per_s": intercept}


# --- paired-pulse recovery cycle ----------------------------------------------------------------

RECOVERY_DIAMETERS_UM = (10.0, 5.7, 16.0)
RECOVERY_INTERVALS_MS = (*(round(0.4 + 0.1 * k, 1) for k in range(17)), 2.5, 3.0, 3.5, 4.0,
                         5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0,
                         70.0, 100.0)
RECOVERY_DISTANCE_MM = 2.0
RECOVERY_PW_US = 100.0
RECOVERY_CONDITIONING = 2.0
"""Conditioning pulse, in multiples of the resting threshold."""
RECOVERY_MAX_RATIO = 10.0
"""No second AP up to this multiple of the resting threshold: absolutely refractory."""
RECOVERY_TAIL_MS = 1.5
RECOVERY_REL_TOL = 0.001


def _search(fires, guess: float, max_amp: float, rel_tol: float) -> float:
    """Smallest amplitude in (0, max_amp] for which ``fires(amp)`` holds (inf if none).

    Bisection in log amplitude from a bracket around ``guess``; ``fires`` is assumed monotonic.
    """
    if not fires(max_amp):
        return math.inf
    lo, hi = guess / 1.05, min(guess * 1.05, max_amp)
    while not fires(hi):
        lo, hi = hi, min(hi * 1.5, max_amp)
    while fires(lo):
        hi, lo = lo, lo / 1.5
    while hi / lo > 1.0 + rel_tol:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if fires(mid) else (mid, hi)
    return hi


class _PairedPulse:
    """A fibre with the conditioning response stored as NEURON states at the test onsets."""

    def __init__(self, diameter_um, distance_mm, pw_us, length_mm, dt_ms):
        self.fibre = MRGFibre(diameter_um, length_mm=length_mm, dt_ms=dt_ms)
        self.ve = self.fibre.point_source(distance_mm)
        self.pw_ms = pw_us * 1e-3
        self.node = min(self.fibre.centre + 8, self.fibre.n_nodes - 1)  # as MRGFibre.threshold
        self.rest_ma, _ = self.fibre.threshold(
            self.ve, monophasic(self.pw_ms), _first_guess_ma(diameter_um, distance_mm, pw_us),
            tail_ms=RECOVERY_TAIL_MS, rel_tol=RECOVERY_REL_TOL)
        self.conditioning = [Pulse(0.0, self.pw_ms, -RECOVERY_CONDITIONING * self.rest_ma)]
        self.fibre.start()
        self.cond_states: dict[float, object] = {0.0: self.fibre.save_state()}

    def state_at(self, interval_ms: float):
        """The conditioned state at ``interval_ms`` (advanced from the latest stored one)."""
        t = round(interval_ms / self.fibre.dt_ms) * self.fibre.dt_ms
        if t not in self.cond_states:
            self.fibre.restore(self.cond_states[max(k for k in self.cond_states if k < t)])
            self.fibre.play(self.ve, self.conditioning, t)
            self.cond_states[t] = self.fibre.save_state()
        return self.cond_states[t]

    def fires(self, interval_ms: float, amp_ma: float) -> bool:
        """Whether a test pulse ``interval_ms`` after the conditioning gets an AP to the node."""
        self.fibre.restore(self.state_at(interval_ms))
        t0 = self.fibre.h.t
        t = self.fibre.play(self.ve, [Pulse(t0, self.pw_ms, -amp_ma)],
                            t0 + self.pw_ms + RECOVERY_TAIL_MS, watch_node=self.node)
        return not math.isnan(t)


def recovery_cycle(diameter_um: float, intervals_ms=RECOVERY_INTERVALS_MS,
                   distance_mm: float = RECOVERY_DISTANCE_MM, pw_us: float = RECOVERY_PW_US,
                   length_mm: float = LENGTH_MM, dt_ms: float = DT_MS,
                   arp_tol_ms: float = 0.02) -> dict:
    """Paired-pulse recovery cycle of one fibre (cathodic monophasic point source).

    A conditioning pulse at :data:`RECOVERY_CONDITIONING` times the resting threshold at t = 0,
    then a test pulse ``interval`` later; the test threshold is the smallest test current that
    gets a second AP to the node 8 nodes from the centre (relative precision 0.1 %). The
    absolute refractory period (ARP) is refined by bisection on the interval: the last interval
    without a second AP at :data:`RECOVERY_MAX_RATIO` times the resting threshold.

    Args:
        diameter_um: Fibre diameter (µm).
        intervals_ms: Conditioning-test intervals (ms).
        distance_mm: Source-fibre distance (mm).
        pw_us: Pulse width of both pulses (µs).
        length_mm: Fibre length (mm).
        dt_ms: Time step (ms).
        arp_tol_ms: Width of the final ARP bracket (ms).

    Returns:
        ``{"diameter_um", "rest_threshold_ma", "interval_ms", "threshold_ratio" (None:
        refractory), "arp_bracket_ms", **recovery_features}``.
    """
    pp = _PairedPulse(diameter_um, distance_mm, pw_us, length_mm, dt_ms)
    for iv in sorted(intervals_ms):   # one conditioned run, stored at every test onset
        pp.state_at(iv)
    ratios: dict[float, float] = {}
    guess = 1.0
    for iv in sorted(intervals_ms, reverse=True):   # long to short: the ratio grows
        th = _search(lambda a, iv=iv: pp.fires(iv, a), guess * pp.rest_ma,
                     RECOVERY_MAX_RATIO * pp.rest_ma, RECOVERY_REL_TOL)
        ratios[iv] = th / pp.rest_ma
        guess = ratios[iv] if math.isfinite(ratios[iv]) else guess
    xs = sorted(ratios)
    refractory = [x for x in xs if not math.isfinite(ratios[x])]
    bracket = [max(refractory) if refractory else 0.0,
               min(x for x in xs if math.isfinite(ratios[x]) and x > max(refractory or [0.0]))]
    while bracket[1] - bracket[0] > arp_tol_ms + 1e-9:
        mid = round(0.5 * sum(bracket) / dt_ms) * dt_ms
        if mid in bracket:
            break
        bracket[pp.fires(mid, RECOVERY_MAX_RATIO * pp.rest_ma)] = mid
    ys = [ratios[x] if math.isfinite(ratios[x]) else None for x in xs]
    return {"diameter_um": diameter_um, "rest_threshold_ma": pp.rest_ma, "interval_ms": xs,
            "threshold_ratio": ys, "arp_bracket_ms": bracket,
            **recovery_features(xs, ys, 0.5 * sum(bracket))}


def recovery_features(interval_ms, ratio, arp_ms: float) -> dict:
    """ARP, end of the relative refractory period, supernormality and late subnormality.

    Args:
        interval_ms: Intervals (ms), ascending.
        ratio: Test / resting threshold (None: refractory).
        arp_ms: The absolute refractory period (ms).

    Returns:
        ``arp_ms``; ``rrp_end_ms`` (first fall of the ratio to 1 after the ARP, linearly
        interpolated); ``supernormal_pct`` (min ratio - 1, %, negative when supernormal) and
        ``supernormal_ms``; ``subnormal_pct`` (max ratio - 1 after that minimum, %) and
        ``subnormal_ms``.
    """
    x = np.asarray(interval_ms, float)
    y = np.array([np.nan if r is None else r for r in ratio], float)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    below = np.flatnonzero(y <= 1.0)
    out = {"arp_ms": float(arp_ms), "rrp_end_ms": None, "supernormal_pct": None,
           "supernormal_ms": None, "subnormal_pct": None, "subnormal_ms": None}
    if below.size == 0 or below[0] == 0:
        return out
    k = below[0]
    out["rrp_end_ms"] = float(x[k - 1] + (y[k - 1] - 1.0) / (y[k - 1] - y[k]) * (x[k] - x[k - 1]))
    i_min = k + int(np.argmin(y[k:]))
    out["supernormal_pct"], out["supernormal_ms"] = 100.0 * (y[i_min] - 1.0), float(x[i_min])
    if i_min + 1 < y.size:
        i_max = i_min + 1 + int(np.argmax(y[i_min + 1:]))
        out["subnormal_pct"], out["subnormal_ms"] = 100.0 * (y[i_max] - 1.0), float(x[i_max])
    return out


# --- single-fibre action potential ------------------------------------------------------------

SFAP_DISTANCES_MM = (1.0, 3.0, 5.0)
SFAP_LENGTH_MM = 100.0
SFAP_DT_MS = 0.0025


def sfap_for_diameter(diameter_um: float, distances_mm=SFAP_DISTANCES_MM,
                      length_mm: float = SFAP_LENGTH_MM, dt_ms: float = SFAP_DT_MS,
                      sigma: float = SIGMA_S_PER_M) -> dict:
    """Single-fibre AP at point electrodes opposite the middle of the fibre.

    An AP started at one end runs along the fibre; the membrane current of every section
    (NEURON ``i_membrane_``, the current into the medium) is a point source at the section's
    centre in a homogeneous isotropic medium: phi = sum I / (4 pi sigma r). N1 and the
    peak-to-peak are taken while the AP runs between the nodes at 20 % and 80 % of the fibre
    (no start or end effects).

    Args:
        diameter_um: Fibre diameter (µm).
        distances_mm: Radial electrode distances (mm).
        length_mm: Fibre length (mm).
        dt_ms: Time step (ms).
        sigma: Conductivity (S/m).

    Returns:
        ``{"distance_mm", "n1_uv", "p2p_uv"}`` (N1: the most negative potential, µV).
    """
    fibre = MRGFibre(diameter_um, length_mm=length_mm, dt_ms=dt_ms)
    a, b = round(0.2 * (fibre.n_nodes - 1)), round(0.8 * (fibre.n_nodes - 1))
    fibre.clear_iclamps()
    fibre.add_iclamp(CLAMP_NODE, CLAMP_NA)
    z_mm = fibre.z_um[fibre.node_sections] * 1e-3
    tstop = 1.0 + (z_mm[-1] - z_mm[CLAMP_NODE]) / (2.0 * diameter_um)
    fibre.run(np.zeros(len(fibre.sections)), [], tstop, stop_node=b + 2, record_vm=True,
              record_imem=True)
    t_ms, vm = fibre.t_ms, fibre.vm
    window = (t_ms >= crossing_time_ms(t_ms, vm[a])) & (t_ms <= crossing_time_ms(t_ms, vm[b]))
    dz_m = (fibre.z_um - fibre.z_centre_um) * 1e-6
    n1, p2p = [], []
    for d in distances_mm:
        r_m = np.sqrt(dz_m ** 2 + (d * 1e-3) ** 2)
        phi_uv = (1e-3 / (4.0 * math.pi * sigma * r_m)) @ fibre.imem_na[:, window]  # nA -> µV
        n1.append(float(phi_uv.min()))
        p2p.append(float(phi_uv.max() - phi_uv.min()))
    return {"distance_mm": list(distances_mm), "n1_uv": n1, "p2p_uv": p2p}


# --- latency vs current ---------------------------------------------------------------------

LATENCY_DIAMETERS_UM = (5.7, 10.0, 16.0)
LATENCY_PWS_US = (100.0, 300.0)
LATENCY_RATIOS = (1.001, 1.02, 1.05, 1.1, 1.2, 1.5, 2.0, 3.0)
LATENCY_DISTANCE_MM = 3.0
LATENCY_FAR_MM = 10.0


def latency_for_diameter(diameter_um: float, pws_us=LATENCY_PWS_US, ratios=LATENCY_RATIOS,
                         distance_mm: float = LATENCY_DISTANCE_MM,
                         far_mm: float = LATENCY_FAR_MM) -> dict:
    """AP time (ms after pulse onset) at the centre node and at a node ``far_mm`` away.

    Args:
        diameter_um: Fibre diameter (µm).
        pws_us: Pulse widths (µs).
        ratios: Currents as multiples of the threshold.
        distance_mm: Source-fibre distance (mm).
        far_mm: Distance along the fibre of the second recording node (mm).

    Returns:
        ``{"pw_us", "ratio", "threshold_ma"[pw], "t_centre_ms"[pw][ratio],
        "t_far_ms"[pw][ratio], "far_node_mm"}``.
    """
    fibre = MRGFibre(diameter_um)
    ve = fibre.point_source(distance_mm)
    far = fibre.centre + round(far_mm / fibre.internode_mm)
    ths, t_c, t_f = [], [], []
    for pw in pws_us:
        shape = monophasic(pw * 1e-3)
        th, _ = fibre.threshold(ve, shape, _first_guess_ma(diameter_um, distance_mm, pw),
                                rel_tol=1e-4)
        times = [fibre.run(ve, shape(r * th), pw * 1e-3 + 4.0, stop_node=far) for r in ratios]
        ths.append(th)
        t_c.append([float(t[fibre.centre]) for t in times])
        t_f.append([float(t[far]) for t in times])
    far_mm_exact = (fibre.z_um[fibre.node_sections[far]] - fibre.z_centre_um) * 1e-3
    return {"pw_us": list(pws_us), "ratio": list(ratios), "threshold_ma": ths,
            "t_centre_ms": t_c, "t_far_ms": t_f, "far_node_mm": float(far_mm_exact)}


# --- held-out thresholds (not used by fidelity/fit.py) ----------------------------------------

HELDOUT_DIAMETERS_UM = (6.5, 9.3, 13.4)
HELDOUT_DISTANCES_MM = (1.2, 2.5, 4.5)
HELDOUT_PWS_US = (45.0, 150.0, 400.0)
HELDOUT_OFFSETS = (0.0, 0.25)
TRIPOLE_DIAMETERS_UM = (7.3, 10.0, 12.8)
TRIPOLE_DISTANCES_MM = (2.0, 3.0, 4.0, 6.0)
TRIPOLE_PWS_US = (100.0, 300.0)
TRIPOLE_CONTACTS = ((-7.0, 0.5), (0.0, -1.0), (7.0, 0.5))
"""Guarded cathode: (contact centre along the fibre in mm, weight per mA of cathodic current)."""
TRIPOLE_CONTACT_MM = 3.0
TRIPOLE_SUBSOURCES = 5
TRIPOLE_LONG_FROM_MM = 6.0
"""Tripoles at this distance or more run on :data:`TRIPOLE_LONG_MM` fibres."""
TRIPOLE_LONG_MM = 90.0


def source_set(configuration: str, offset_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Point sources of a held-out configuration, as ``closedloop.neural.population``'s.

    Args:
        configuration: ``"point"`` (one source) or ``"tripolar"`` (:data:`TRIPOLE_CONTACTS`,
            each contact :data:`TRIPOLE_SUBSOURCES` equal sources over its length).
        offset_mm: Longitudinal shift of every source from the centre node (mm).

    Returns:
        ``(x_mm, weight)``: positions along the fibre and weights per mA of cathodic current
        (negative: cathodic).
    """
    if configuration == "point":
        return np.array([offset_mm]), np.array([-1.0])
    sub = ((np.arange(TRIPOLE_SUBSOURCES) + 0.5) / TRIPOLE_SUBSOURCES - 0.5) * TRIPOLE_CONTACT_MM
    x = np.concatenate([x0 + sub for x0, _ in TRIPOLE_CONTACTS]) + offset_mm
    w = np.repeat([w / TRIPOLE_SUBSOURCES for _, w in TRIPOLE_CONTACTS], TRIPOLE_SUBSOURCES)
    return x, w


def heldout_thresholds(diameter_um: float, configuration: str, distances_mm, pws_us,
                       offset_internodes: float = 0.0, length_mm: float = LENGTH_MM,
                       dt_ms: float = DT_MS) -> list[dict]:
    """Thresholds (mA per mA of cathodic current) of one fibre for a held-out source set.

    The potential is the sum of the sources' point-source potentials (σ = 0.6 S/m); the
    stimulus a cathodic monophasic pulse; the centre node is under the (central) cathode, or
    ``offset_internodes`` internodes from it.

    Returns:
        One point per distance and pulse width: ``{"diameter_um", "distance_mm", "pw_us",
        "offset_internodes", "configuration", "length_mm", "threshold_ma"}``.
    """
    fibre = MRGFibre(diameter_um, length_mm=length_mm, dt_ms=dt_ms)
    x_mm, w = source_set(configuration, offset_internodes * fibre.internode_mm)
    out = []
    for d in distances_mm:
        ve = -sum(wk * fibre.point_source(d, xk) for xk, wk in zip(x_mm, w, strict=True))
        guess = _first_guess_ma(diameter_um, d, pws_us[0]) * (2.0 if len(w) > 1 else 1.0)
        for j, pw in enumerate(pws_us):
            th, _ = fibre.threshold(ve, monophasic(pw * 1e-3), guess)
            nxt = pws_us[min(j + 1, len(pws_us) - 1)]
            guess = th * (1.0 + 100.0 / nxt) / (1.0 + 100.0 / pw)
            out.append({"diameter_um": diameter_um, "distance_mm": d, "pw_us": pw,
                        "offset_internodes": offset_internodes, "configuration": configuration,
                        "length_mm": length_mm, "threshold_ma": th})
    return out


# --- convergence in dt and fibre length --------------------------------------------------------

CONV_DIAMETERS_UM = (5.7, 10.0)
CONV_DTS_MS = (0.01, 0.005, 0.0025, 0.00125)
CONV_LENGTHS_MM = (30.0, 60.0, 90.0, 120.0)
CONV_DISTANCE_MM = 3.0
CONV_PW_US = 100.0
CONV_REL_TOL = 1e-4


def convergence_point(diameter_um: float, dt_ms: float, length_mm: float,
                      distance_mm: float = CONV_DISTANCE_MM, pw_us: float = CONV_PW_US
                      ) -> float:
    """Threshold (mA) of one fibre at one time step and length (node under the electrode).

    Bisection to a relative bracket of :data:`CONV_REL_TOL` (finer than the grid's 0.2 %).
    """
    fibre = MRGFibre(diameter_um, length_mm=length_mm, dt_ms=dt_ms)
    th, _ = fibre.threshold(fibre.point_source(distance_mm), monophasic(pw_us * 1e-3),
                            _first_guess_ma(diameter_um, distance_mm, pw_us),
                            rel_tol=CONV_REL_TOL)
    return th


def relative_changes(values, reference: float) -> list[float]:
    """(value - reference) / reference for each value."""
    return [float(v / reference - 1.0) for v in values]


__all__ = ["threshold_grid", "thresholds_for_diameter", "loglog_slope", "cv_for_diameter",
           "sfap_for_diameter", "latency_for_diameter", "recovery_cycle", "recovery_features",
           "convergence_point", "crossing_time_ms", "relative_changes", "source_set",
           "heldout_thresholds"]
