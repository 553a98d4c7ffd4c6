"""Networks shared by the methods: MLPs and time features, the trajectory autoencoder,
velocity fields and the double-Q critic (alone or as an ensemble). (GTP's flow-map actor lives with the agent,
in ``agents.gtp.networks``.)"""

from ctflow_gym.models.critic import DoubleQ, DoubleQEnsemble
from ctflow_gym.models.mlp import MLP, sinusoidal_time_features
from ctflow_gym.models.trajectory_autoencoder import TrajectoryAutoencoder
from ctflow_gym.models.velocity_field import SourceConditionedVelocity

__all__ = [
    "DoubleQ",
    "DoubleQEnsemble",
    "MLP",
    "SourceConditionedVelocity",
    "TrajectoryAutoencoder",
    "sinusoidal_time_features",
]
