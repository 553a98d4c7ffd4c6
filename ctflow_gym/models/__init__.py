"""Networks shared by the methods: MLPs, the trajectory autoencoder, velocity fields,
the flow-map actor and the double-Q critic of GTP."""

from ctflow_gym.models.critic import DoubleQ
from ctflow_gym.models.flow_map import FlowMapActor, plain_mlp_actor, sampling_times
from ctflow_gym.models.mlp import MLP, sinusoidal_time_features
from ctflow_gym.models.trajectory_autoencoder import TrajectoryAutoencoder
from ctflow_gym.models.velocity_field import SourceConditionedVelocity

__all__ = [
    "DoubleQ",
    "FlowMapActor",
    "MLP",
    "SourceConditionedVelocity",
    "TrajectoryAutoencoder",
    "plain_mlp_actor",
    "sampling_times",
    "sinusoidal_time_features",
]
