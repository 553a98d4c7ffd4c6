"""ctflow_gym: offline trajectory refinement and flow-based agents for Gymnasium envs."""

__version__ = "0.1.0"
