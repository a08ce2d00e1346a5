"""Geometry of the ACTS Generic detector, as used by the built-in ActsTrack simulation.

The layout follows ``ActsExamples::GenericDetector``: a pixel system (barrel + endcap disks)
inside r < 200 mm, a short-strip system for 200 < r < 720 mm and a long-strip system outside,
with the layer radii and disk positions of the real detector. Volume ids and even layer ids are
those ACTS assigns (pixel 7/8/9, short strips 12/13/14, long strips 16/17/18 for negative
endcap / barrel / positive endcap; layer ids 2, 4, 6, ... ordered by increasing r in a barrel and
by increasing z in an endcap).

Every surface is described by a row of a struct-of-arrays (:class:`Surfaces`) so that a numba
kernel can loop over them. Material is given as thickness in radiation lengths (x/X0) at normal
incidence and is treated as silicon for energy loss.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = [
    "APPROACH_MASK",
    "BOUNDARY_MASK",
    "CYLINDER",
    "DISK",
    "EXTRA_MASK",
    "LAYER_MASK",
    "SENSITIVE_MASK",
    "VOLUME_MASK",
    "Surfaces",
    "decode_geometry_id",
    "encode_geometry_id",
    "generic_detector",
    "module_index",
]

# ACTS GeometryIdentifier bit masks (volume in the most significant byte).
VOLUME_MASK = 0xFF00000000000000
BOUNDARY_MASK = 0x00FF000000000000
LAYER_MASK = 0x0000FFF000000000
APPROACH_MASK = 0x0000000FF0000000
SENSITIVE_MASK = 0x000000000FFFFF00
EXTRA_MASK = 0x00000000000000FF
_SHIFT = {"volume": 56, "boundary": 48, "layer": 36, "approach": 28, "sensitive": 8, "extra": 0}
_MASK = {
    "volume": VOLUME_MASK,
    "boundary": BOUNDARY_MASK,
    "layer": LAYER_MASK,
    "approach": APPROACH_MASK,
    "sensitive": SENSITIVE_MASK,
    "extra": EXTRA_MASK,
}

CYLINDER = 0
DISK = 1

# Silicon, used for all material: radiation length and nuclear interaction length in mm.
X0_SILICON_MM = 93.7
L0_SILICON_MM = 465.2


@dataclass(frozen=True)
class Surfaces:
    """Struct-of-arrays of all surfaces, shape ``(n_surfaces,)`` each.

    Attributes
    ----------
    kind : int8
        :data:`CYLINDER` (barrel layer, beam pipe) or :data:`DISK` (endcap layer).
    pos : float64, mm
        Cylinder radius, or disk z position (signed).
    lo, hi : float64, mm
        Bounds of the active area: z range of a cylinder, r range of a disk.
    x_x0 : float64
        Material thickness in radiation lengths at normal incidence.
    sensitive : bool
        Whether crossings produce hits (the beam pipe does not).
    volume_id, layer_id : uint32
        ACTS geometry identifier components of the layer.
    n_phi, n_long : int32
        Module tiling: modules in phi, and along z (barrel) or rings in r (disk); used to build
        the sensitive (module) id of a hit.
    """

    kind: np.ndarray
    pos: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    x_x0: np.ndarray
    sensitive: np.ndarray
    volume_id: np.ndarray
    layer_id: np.ndarray
    n_phi: np.ndarray
    n_long: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)


# (system, barrel radii, barrel half-length, disk |z|, disk r range, x/X0, module size phi x long)
# Half-lengths and disk radii are chosen so that the volumes tile in (r, z) without large holes:
# pixel barrel |z| < 580 / endcap disks 600..1500 at r < 200; strip barrels |z| < 1180 / strip
# disks 1220..2950; the strip disk r ranges meet the pixel system at r ~ 200 and each other at ~720.
_SYSTEMS = (
    # name,   vol (neg, barrel, pos), radii,                  half_len, disk |z|,                       r range,        x/X0,  module (phi, long) mm
    (
        "pixel",
        (7, 8, 9),
        (32.0, 72.0, 116.0, 172.0),
        480.0,
        (600.0, 700.0, 820.0, 960.0, 1100.0, 1300.0, 1500.0),
        (35.0, 195.0),
        0.015,
        (16.8, 72.0),
    ),
    (
        "short_strip",
        (12, 13, 14),
        (260.0, 360.0, 500.0, 660.0),
        1100.0,
        (1220.0, 1500.0, 1800.0, 2150.0, 2550.0, 2950.0),
        (210.0, 710.0),
        0.025,
        (48.0, 108.0),
    ),
    (
        "long_strip",
        (16, 17, 18),
        (820.0, 1020.0),
        1100.0,
        (1220.0, 1500.0, 1800.0, 2150.0, 2550.0, 2950.0),
        (730.0, 1080.0),
        0.030,
        (48.0, 216.0),
    ),
)
BEAM_PIPE_RADIUS = 24.0  # mm, beryllium, ~0.8 mm thick
BEAM_PIPE_X_X0 = 0.0025
BEAM_PIPE_HALF_LENGTH = 3100.0


@functools.cache
def generic_detector() -> Surfaces:
    """Return the surfaces of the Generic detector (cached; do not modify the arrays).

    Returns
    -------
    Surfaces
        48 sensitive layers (10 barrel cylinders, 38 endcap disks) plus the passive beam pipe
        (row 0).
    """
    rows: list[tuple] = [
        (CYLINDER, BEAM_PIPE_RADIUS, -BEAM_PIPE_HALF_LENGTH, BEAM_PIPE_HALF_LENGTH,
         BEAM_PIPE_X_X0, False, 0, 0, 1, 1)
    ]  # fmt: skip
    for system in _SYSTEMS:
        _name, (v_neg, v_bar, v_pos), radii, half_len, disk_z, (rmin, rmax), x0, module = system
        w_phi, w_long = module
        for i, r in enumerate(radii):
            n_phi = int(np.ceil(2 * np.pi * r / (0.9 * w_phi)))  # ~10% overlap in phi
            n_long = int(np.ceil(2 * half_len / w_long))
            rows.append(
                (CYLINDER, r, -half_len, half_len, x0, True, v_bar, 2 * (i + 1), n_phi, n_long)
            )
        n_phi = int(np.ceil(2 * np.pi * 0.5 * (rmin + rmax) / (0.9 * w_phi)))
        n_ring = int(np.ceil((rmax - rmin) / w_long))
        # Layer ids increase with z in both endcaps, as ACTS orders layers along the binning axis.
        for i, z in enumerate(sorted(-np.asarray(disk_z))):
            rows.append((DISK, z, rmin, rmax, x0, True, v_neg, 2 * (i + 1), n_phi, n_ring))
        for i, z in enumerate(disk_z):
            rows.append((DISK, z, rmin, rmax, x0, True, v_pos, 2 * (i + 1), n_phi, n_ring))
    cols = list(zip(*rows, strict=True))
    surf = Surfaces(
        kind=np.asarray(cols[0], dtype=np.int8),
        pos=np.asarray(cols[1], dtype=np.float64),
        lo=np.asarray(cols[2], dtype=np.float64),
        hi=np.asarray(cols[3], dtype=np.float64),
        x_x0=np.asarray(cols[4], dtype=np.float64),
        sensitive=np.asarray(cols[5], dtype=np.bool_),
        volume_id=np.asarray(cols[6], dtype=np.uint32),
        layer_id=np.asarray(cols[7], dtype=np.uint32),
        n_phi=np.asarray(cols[8], dtype=np.int32),
        n_long=np.asarray(cols[9], dtype=np.int32),
    )
    for arr in vars(surf).values():
        arr.setflags(write=False)
    return surf


def module_index(surface: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Sensitive (module) id of hits, from the module tiling of their surface.

    Parameters
    ----------
    surface : int array, shape (n,)
        Surface row of each hit in :func:`generic_detector`.
    x, y, z : float arrays, shape (n,), mm
        Hit positions.

    Returns
    -------
    uint32 array, shape (n,)
        ``1 + i_phi + n_phi * i_long`` (ACTS sensitive ids start at 1).
    """
    s = generic_detector()
    surface = np.asarray(surface, dtype=np.intp)
    n_phi = s.n_phi[surface].astype(np.int64)
    n_long = s.n_long[surface].astype(np.int64)
    phi = np.arctan2(y, x)
    i_phi = np.clip(np.floor((phi + np.pi) / (2 * np.pi) * n_phi), 0, n_phi - 1).astype(np.int64)
    coord = np.where(s.kind[surface] == CYLINDER, z, np.hypot(x, y))
    lo, hi = s.lo[surface], s.hi[surface]
    i_long = np.clip(np.floor((coord - lo) / (hi - lo) * n_long), 0, n_long - 1).astype(np.int64)
    return (1 + i_phi + n_phi * i_long).astype(np.uint32)


def encode_geometry_id(
    volume: np.ndarray,
    layer: np.ndarray,
    sensitive: np.ndarray,
    boundary: np.ndarray | int = 0,
    approach: np.ndarray | int = 0,
    extra: np.ndarray | int = 0,
) -> np.ndarray:
    """Pack ACTS geometry identifier components into uint64 (masks as in ``GeometryIdentifier``)."""
    parts = {
        "volume": volume,
        "boundary": boundary,
        "layer": layer,
        "approach": approach,
        "sensitive": sensitive,
        "extra": extra,
    }
    out = np.zeros(np.broadcast(*parts.values()).shape, dtype=np.uint64)
    for name, val in parts.items():
        v = np.asarray(val, dtype=np.uint64) << np.uint64(_SHIFT[name])
        out |= v & np.uint64(_MASK[name])
    return out


def decode_geometry_id(geometry_id: np.ndarray) -> dict[str, np.ndarray]:
    """Unpack uint64 geometry ids into their uint32 components (keys volume, boundary, ...)."""
    g = np.asarray(geometry_id, dtype=np.uint64)
    return {
        name: ((g & np.uint64(_MASK[name])) >> np.uint64(_SHIFT[name])).astype(np.uint32)
        for name in _SHIFT
    }
