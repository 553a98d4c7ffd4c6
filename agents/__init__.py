"""Agents with a stable-baselines3-style API, built on ctflow_gym.

``GTPAgent`` (generative trajectory policies, seeds 001 and 003) lands here; this
package imports ``ctflow_gym`` and is never imported by it.
"""
