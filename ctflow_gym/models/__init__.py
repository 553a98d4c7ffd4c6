"""Networks shared by the methods: MLPs, the trajectory autoencoder, velocity fields."""

from ctflow_gym.models.mlp import MLP, sinusoidal_time_features
from ctflow_gym.models.trajectory_autoencoder import TrajectoryAutoencoder
from ctflow_gym.models.velocity_field import SourceConditionedVelocity

__all__ = ["MLP", "SourceConditionedVelocity", "TrajectoryAutoencoder", "sinusoidal_time_features"]
