"""Built-in detector simulations that write ROOT files in the real producers' layouts.

- :func:`simulate_actstrack`: ACTS generic detector in a solenoid field (``hits.root`` +
  ``particles.root``, RootSimHitWriter / RootParticleWriter layouts), Z -> ll over pileup.
- :func:`simulate_tau3mu`: CMS endcap muon system (``Ntuplizer/MuonTrackTree``),
  Ds -> tau -> 3 mu over PU200.
"""

from hepx.sim.actstrack import simulate_actstrack
from hepx.sim.synmol import simulate_synmol
from hepx.sim.tau3mu import simulate_tau3mu

__all__ = ["simulate_actstrack", "simulate_synmol", "simulate_tau3mu"]
