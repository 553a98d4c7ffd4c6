"""Wrap an env in three lines and see, per window, how the policy could be refined.

Fits a small refiner on the shipped Hopper dataset (about a minute on a CPU), then
runs the shipped SB3 policy on a wrapped Hopper-v5 with replay, so every refined
window is checked in the simulator while the episode itself is left untouched.

    python examples/three_line_wrap.py            # the fit above and one full episode
    python examples/three_line_wrap.py --quick    # tiny fit, 100-step episode: checks it runs
"""

import argparse

import gymnasium as gym

from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID, default_policy_path, load_sb3_policy
from ctflow_gym.wrappers import RefinementWrapper

TINY = dict(ae_steps=50, flow_steps=50, predictor_steps=20, inverse_dynamics_steps=20)
"""Refiner steps per stage of ``--quick``."""


def main(argv=None) -> None:
    """Parse the arguments, fit the refiner, run one wrapped episode and print each refined window."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny settings: a smoke run of a minute or two whose numbers mean nothing"
    )
    args = parser.parse_args(argv)

    steps = TINY if args.quick else dict(ae_steps=1500, flow_steps=1500, predictor_steps=500)
    refiner = TrajectoryRefiner(window=16, **steps).fit(DEFAULT_DATASET_ID)
    policy = load_sb3_policy(default_policy_path())

    # The three lines: make the env, wrap it, run any policy on it.
    env = gym.make("Hopper-v5", max_episode_steps=100 if args.quick else None)
    env = RefinementWrapper(env, refiner, strength=0.5, replay=True)
    obs, info = env.reset(seed=0)

    done = False
    while not done:
        action, _ = policy.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        if "refinement" in info:
            r = info["refinement"]
            print(
                f"window: source return {r['source_return']:7.2f}  refined (replayed) {r['realized_return']:7.2f}  "
                f"predicted gain {r['predicted_gain']:+.2f}  action dev {r['action_deviation']:.3f}"
            )
    t = env.totals
    print(
        f"{t.windows_refined} windows refined; mean predicted gain {t.mean_predicted_gain:+.3f}, "
        f"mean realised gain {t.mean_realized_gain:+.3f}"
    )


if __name__ == "__main__":
    main()
