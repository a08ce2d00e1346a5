"""Readers: ROOT (and Parquet) files -> awkward Arrays of events with jagged hits.

- :func:`read_acts`: ACTS ``hits.root`` + particles (ActsTrack, Z -> ll truth).
- :func:`read_cms_muon`: CMS endcap-muon ntuples (Tau3Mu).
- :func:`read_generic`: SynMol/PLBind-style point clouds in a documented columnar layout.
- :func:`convert_plbind`: protein-ligand complexes (PDBbind layout) -> a PLBind dataset.
"""

from hepx.io.acts import decode_barcode, decode_geometry_id, pack_barcode, read_acts
from hepx.io.cms_muon import DEFAULT_FILTERS, read_cms_muon
from hepx.io.filters import HitFilter, parse_filters
from hepx.io.generic import read_generic, write_generic
from hepx.io.plbind import convert_plbind, read_affinities, read_complex

__all__ = [
    "DEFAULT_FILTERS",
    "HitFilter",
    "convert_plbind",
    "decode_barcode",
    "decode_geometry_id",
    "pack_barcode",
    "parse_filters",
    "read_acts",
    "read_affinities",
    "read_cms_muon",
    "read_complex",
    "read_generic",
    "write_generic",
]
