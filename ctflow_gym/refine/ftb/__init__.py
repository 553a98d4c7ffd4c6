"""Flow to Better (Zhang et al., ICLR 2024) as a refiner family: improve trajectories by generating better ones.

- :mod:`~ctflow_gym.refine.ftb.config`: :class:`FTBConfig`, each default with its source (paper or code);
- :mod:`~ctflow_gym.refine.ftb.preferences`: scripted-teacher labels, score blocks, block pairs;
- :mod:`~ctflow_gym.refine.ftb.losses`: the score model's losses (code's BCE, paper's Bradley-Terry)
  and the conditional flow-matching loss of the generator;
- :mod:`~ctflow_gym.refine.ftb.sampling`: guided generation;
- :mod:`~ctflow_gym.refine.ftb.improvement`: iterative improvement (Algorithm 4) with validity checks;
- :mod:`~ctflow_gym.refine.ftb.refiner`: :class:`FTBRefiner`, registered with ``register_refiner``.
"""

from ctflow_gym.refine.ftb.config import FTBConfig
from ctflow_gym.refine.ftb.improvement import ImprovedPool, iterative_improvement
from ctflow_gym.refine.ftb.refiner import FTBRefiner

__all__ = ["FTBConfig", "FTBRefiner", "ImprovedPool", "iterative_improvement"]
