"""Shared helpers of the built-in simulations: counter-based random numbers and kinematics.

Random numbers
    All draws are a hash of ``(key, event_id, stream, slot, ...)`` (SplitMix64 finaliser), not a
    sequential generator state. A number therefore depends only on *what* it is for, never on how
    many numbers were drawn before it, so the generated events are identical for any chunking of
    the run and any order of processing. :func:`mix64` is the vectorised numpy version and
    :func:`mix64_scalar` the numba one; they agree bit for bit.

Kinematics
    Four-vectors are float64 arrays of shape ``(n, 4)`` ordered ``(E, px, py, pz)`` in GeV.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "TabulatedSampler",
    "boost",
    "hash_u64",
    "invariant_mass",
    "mix64",
    "mix64_scalar",
    "normal",
    "p4_from_pt_y_phi_m",
    "poisson",
    "sample_power_pt",
    "sample_relativistic_bw",
    "two_body_decay",
    "uniform",
    "uniform_scalar",
]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO_M53 = 2.0**-53


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of a uint64 array (wrapping arithmetic), same shape as ``x``."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def mix64_scalar(x: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """Numba twin of :func:`mix64` for one uint64."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def uniform_scalar(key: np.uint64, counter: np.uint64) -> float:  # pragma: no cover - compiled
    """Uniform number in (0, 1) for draw ``counter`` of the stream ``key`` (numba)."""
    h = mix64_scalar(key ^ mix64_scalar(counter))
    return (float(h >> np.uint64(11)) + 0.5) * 2.0**-53


def hash_u64(key: int | np.uint64, *cols: np.ndarray | int) -> np.ndarray:
    """Hash ``key`` and integer columns (broadcast together) into uint64, shape of the broadcast."""
    with np.errstate(over="ignore"):
        h = mix64(np.atleast_1d(np.asarray(key, dtype=np.uint64)))
        for c in cols:
            h = mix64(h ^ np.asarray(c, dtype=np.uint64))
    return h


def uniform(key: int | np.uint64, *cols: np.ndarray | int) -> np.ndarray:
    """Uniform float64 in the open interval (0, 1), one per broadcast element of ``cols``."""
    h = hash_u64(key, *cols)
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * _TWO_M53


def normal(key: int | np.uint64, *cols: np.ndarray | int) -> np.ndarray:
    """Standard normal deviates (Box-Muller on two hashed uniforms)."""
    u1 = uniform(key, *cols, 0x6E6F726D61)
    u2 = uniform(key, *cols, 0x6E6F726D62)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@numba.njit(cache=True)
def _poisson_kernel(u: np.ndarray, lam: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    out = np.empty(u.shape[0], dtype=np.int64)
    for i in range(u.shape[0]):
        lm = lam[i]
        p = math.exp(-lm)
        c = p
        k = 0
        # Sequential inversion; exp(-lam) stays a normal double for lam < 700.
        while u[i] > c and k < 100_000:
            k += 1
            p *= lm / k
            c += p
            if p < 1e-300 and k > lm:
                break
        out[i] = k
    return out


def poisson(u: np.ndarray, lam: np.ndarray | float) -> np.ndarray:
    """Poisson deviates by inversion of the CDF at the uniforms ``u``.

    Parameters
    ----------
    u : float array, shape (n,)
        Uniforms in (0, 1).
    lam : float or float array broadcastable to (n,)
        Means, ``0 <= lam < 700``.

    Returns
    -------
    int64 array, shape (n,)
    """
    u = np.ascontiguousarray(u, dtype=np.float64)
    lam = np.ascontiguousarray(np.broadcast_to(np.asarray(lam, dtype=np.float64), u.shape))
    return _poisson_kernel(u, lam)


def sample_relativistic_bw(
    u: np.ndarray, mass: float, width: float, m_lo: float, m_hi: float
) -> np.ndarray:
    """Relativistic Breit-Wigner masses by exact inversion, truncated to ``[m_lo, m_hi]``.

    The density in ``s = m**2`` is ``1 / ((s - M**2)**2 + M**2 Gamma**2)`` (Cauchy in s), i.e.
    ``dN/dm ∝ 2 m / ((m**2 - M**2)**2 + M**2 Gamma**2)``; its CDF is an arctangent.

    Parameters
    ----------
    u : float array, shape (n,)
        Uniforms in (0, 1).
    mass, width, m_lo, m_hi : float, GeV

    Returns
    -------
    float64 array, shape (n,), GeV
    """
    mg = mass * width
    a_lo = np.arctan((m_lo**2 - mass**2) / mg)
    a_hi = np.arctan((m_hi**2 - mass**2) / mg)
    s = mass**2 + mg * np.tan(a_lo + np.asarray(u) * (a_hi - a_lo))
    return np.sqrt(s)


def sample_power_pt(u: np.ndarray, scale: float, power: float, pt_max: float) -> np.ndarray:
    """Transverse momenta from ``dN/dpT ∝ pT / (1 + (pT/scale)**2)**power`` on ``[0, pt_max]``.

    Peaked at ``scale / sqrt(2 power - 1)`` with a ``pT**(1 - 2 power)`` tail: a vector-boson
    like spectrum. Exact inversion of the CDF ``1 - (1 + (pT/scale)**2)**(1 - power)``.
    """
    f_max = 1.0 - (1.0 + (pt_max / scale) ** 2) ** (1.0 - power)
    f = np.asarray(u) * f_max
    return scale * np.sqrt((1.0 - f) ** (1.0 / (1.0 - power)) - 1.0)


class TabulatedSampler:
    """Inverse-CDF sampling of a 1-D density given on a grid (piecewise-linear CDF).

    Parameters
    ----------
    x : float array, shape (k,)
        Increasing grid.
    pdf : float array, shape (k,)
        Non-negative density values on the grid (need not be normalised).
    """

    def __init__(self, x: np.ndarray, pdf: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        pdf = np.asarray(pdf, dtype=np.float64)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(x))])
        self.x = x
        self.cdf = cdf / cdf[-1]

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """Map uniforms ``u`` (any shape) to samples of the same shape."""
        return np.interp(u, self.cdf, self.x)


def p4_from_pt_y_phi_m(pt: np.ndarray, y: np.ndarray, phi: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Four-momenta ``(E, px, py, pz)``, shape (n, 4), from pT, rapidity, phi and mass."""
    mt = np.sqrt(m**2 + pt**2)
    return np.stack([mt * np.cosh(y), pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y)], axis=-1)


def boost(p4: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Lorentz-boost four-momenta by velocities ``beta`` (the frame moving with -beta).

    A particle at rest is given the velocity ``beta``.

    Parameters
    ----------
    p4 : float array, shape (n, 4)
        ``(E, px, py, pz)``.
    beta : float array, shape (n, 3)
        Boost velocities, ``|beta| < 1``.

    Returns
    -------
    float64 array, shape (n, 4)
    """
    p4 = np.asarray(p4, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    b2 = np.sum(beta**2, axis=-1)
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = np.sum(beta * p4[..., 1:], axis=-1)
    # (gamma - 1) / b2 written as gamma**2 / (gamma + 1): finite for b2 -> 0.
    coef = gamma**2 / (gamma + 1.0) * bp + gamma * p4[..., 0]
    out = np.empty_like(p4)
    out[..., 0] = gamma * (p4[..., 0] + bp)
    out[..., 1:] = p4[..., 1:] + coef[..., None] * beta
    return out


def two_body_decay(
    parent: np.ndarray,
    m1: np.ndarray,
    m2: np.ndarray,
    cos_theta: np.ndarray,
    phi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Decay ``parent -> 1 + 2``, isotropic for uniform ``cos_theta`` / ``phi`` in the rest frame.

    Parameters
    ----------
    parent : float array, shape (n, 4)
        Parent four-momenta in the lab (GeV).
    m1, m2 : float arrays, shape (n,)
        Daughter masses (GeV).
    cos_theta, phi : float arrays, shape (n,)
        Direction of daughter 1 in the parent rest frame (axes parallel to the lab axes).

    Returns
    -------
    (d1, d2) : float64 arrays, shape (n, 4)
        Daughter four-momenta in the lab.
    """
    m = invariant_mass(parent)
    pstar = np.sqrt(np.clip((m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2), 0, None)) / (2 * m)
    sin_theta = np.sqrt(np.clip(1.0 - cos_theta**2, 0, None))
    n = np.stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta], axis=-1)
    d1 = np.concatenate([np.sqrt(m1**2 + pstar**2)[:, None], pstar[:, None] * n], axis=-1)
    d2 = np.concatenate([np.sqrt(m2**2 + pstar**2)[:, None], -pstar[:, None] * n], axis=-1)
    beta = parent[:, 1:] / parent[:, :1]
    return boost(d1, beta), boost(d2, beta)


def invariant_mass(p4: np.ndarray) -> np.ndarray:
    """Invariant mass of four-momenta ``(..., 4)``; negative m**2 from rounding gives 0."""
    p4 = np.asarray(p4, dtype=np.float64)
    m2 = p4[..., 0] ** 2 - np.sum(p4[..., 1:] ** 2, axis=-1)
    return np.sqrt(np.clip(m2, 0, None))
