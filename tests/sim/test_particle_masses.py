"""The fast generators' particle data come from the ``particle`` package (issue #23).

The PDG values are written out here (GeV); each is pinned within its PDG uncertainty, so that
an update of the package's PDG tables passes while a wrong or hand-edited number does not.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from particle import Particle

from hepx.sim import actstrack, tau3mu

# (PDG id, PDG mass in GeV, tolerance: the PDG uncertainty of the mass)
PDG_MASS = {
    "electron": (11, 0.51099895e-3, 1e-12),
    "muon": (13, 0.1056583755, 1e-9),
    "pion": (211, 0.13957039, 1.8e-7),
    "kaon": (321, 0.493677, 1.6e-5),
    "proton": (2212, 0.93827208816, 2e-9),
    "tau": (15, 1.77686, 1.2e-4),
    "Ds": (431, 1.96835, 7e-5),
    "J/psi": (443, 3.0969, 6e-6),
    "Upsilon(1S)": (553, 9.4603, 3e-4),
    "Z": (23, 91.1876, 2.1e-3),
}

CONSTANTS = {
    "electron": [actstrack.ELECTRON_MASS],
    "muon": [actstrack.MUON_MASS, tau3mu.M_MU],
    "tau": [tau3mu.M_TAU],
    "Ds": [tau3mu.M_DS],
    "J/psi": [actstrack._JPSI_MASS, tau3mu.M_JPSI],
    "Upsilon(1S)": [actstrack._UPSILON_MASS],
    "Z": [actstrack.Z_MASS],
}
CONSTANTS |= {
    name: [actstrack._SPECIES_MASS[list(actstrack._SPECIES_PDG).index(PDG_MASS[name][0])]]
    for name in ("electron", "muon", "pion", "kaon", "proton")
}


@pytest.mark.parametrize("name", sorted(PDG_MASS))
def test_generator_masses_are_the_pdg_masses_of_the_particle_package(name):
    pdgid, pdg, tol = PDG_MASS[name]
    package = Particle.from_pdgid(pdgid).mass / 1000.0
    assert package == pytest.approx(pdg, abs=tol)
    for value in CONSTANTS.get(name, []) or pytest.fail(f"no generator constant of {name}"):
        assert value == package  # taken from the package, not a copy of a number


def test_z_width_and_label_window():
    assert actstrack.Z_WIDTH == Particle.from_pdgid(23).width / 1000.0
    assert actstrack.Z_WIDTH == pytest.approx(2.4952, abs=2.3e-3)
    # the label rule keeps the LRI paper's 91.1876 GeV, as the reader's (hepx.io.acts)
    from hepx.io.acts import Z_MASS as READER_Z_MASS

    assert actstrack.Z_LABEL_MASS == READER_Z_MASS == 91.1876


def test_actstrack_soft_particles_carry_the_package_masses_and_charges():
    n = 4000
    _, pdg, mass = actstrack._soft_particles(7, np.zeros(n, np.int64), np.arange(n))
    assert set(np.abs(pdg)) == {11, 13, 211, 321, 2212}
    for pid in np.unique(pdg):
        ref = Particle.from_pdgid(int(pid))
        assert np.all(mass[pdg == pid] == ref.mass / 1000.0)
    # charges follow the PDG sign convention: e-, mu- have positive ids, pi+, K+, p too
    charge = np.array([Particle.from_pdgid(int(p)).charge for p in pdg])
    assert set(charge) == {-1.0, 1.0}
    neg_lepton = (np.abs(pdg) <= 13) & (pdg > 0)
    assert np.all(charge[neg_lepton] == -1) and np.all(charge[(pdg > 200)] == 1)


def test_actstrack_lepton_pairs_carry_the_package_masses():
    from hepx.sim.kinematics import invariant_mass

    cfg = SimpleNamespace(key=11, signal_fraction=0.5, muon_fraction=0.5)
    pair = actstrack._hard_pair(cfg, np.arange(3000, dtype=np.int64))
    kind, flavour = pair["kind"], pair["flavour"]
    assert {11, 13} == set(flavour)
    want = np.where(flavour == 13, actstrack.MUON_MASS, actstrack.ELECTRON_MASS)
    np.testing.assert_array_equal(pair["lepton_mass"], want)
    mu = (kind != actstrack.PAIR_NONE) & (flavour == 13)  # an electron's mass is lost in rounding
    np.testing.assert_allclose(invariant_mass(pair["d1"][mu]), actstrack.MUON_MASS, rtol=1e-5)
    res = pair["mass"][kind == actstrack.PAIR_OS_RESONANCE]
    assert len(res) > 10 and set(res) == {actstrack._JPSI_MASS, actstrack._UPSILON_MASS}
    # the Z line shape peaks at the package's mass
    assert abs(np.median(pair["mass"][kind == actstrack.PAIR_Z]) - actstrack.Z_MASS) < 0.5


def _mass(p4: np.ndarray) -> np.ndarray:
    """Invariant mass of ``(..., 4)`` four-momenta ``(px, py, pz, E)`` (tau3mu's layout)."""
    return np.sqrt(p4[..., 3] ** 2 - (p4[..., :3] ** 2).sum(-1))


def test_tau3mu_decays_carry_the_package_masses():
    sig = tau3mu._signal_taus(np.random.default_rng(3), np.arange(200))
    np.testing.assert_allclose(_mass(sig["tau"]), tau3mu.M_TAU, rtol=1e-9)
    np.testing.assert_allclose(_mass(sig["mus"].sum(axis=1)), tau3mu.M_TAU, rtol=1e-9)
    np.testing.assert_allclose(_mass(sig["mus"]), tau3mu.M_MU, rtol=1e-6)
    pu = tau3mu._pileup_muons(np.random.default_rng(4), 400, np.full(400, 3.0))
    np.testing.assert_allclose(_mass(pu["single"]), tau3mu.M_MU, rtol=1e-6)
    pair_mass = _mass(pu["pair"].sum(axis=1))
    assert np.isclose(pair_mass, tau3mu.M_JPSI, rtol=1e-9).sum() > 10  # half are J/psi
