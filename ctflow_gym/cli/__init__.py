"""The ``ctflow`` command line: the whole workflow, one subcommand per step.

    ctflow demo                         the main job: everything below on the shipped data
    ctflow dataset build|thin|info|list Minari datasets (see ctflow_gym.data.builder)
    ctflow refiner fit|evaluate         TrajectoryRefiner, measured by replay in MuJoCo
    ctflow agent train|evaluate         offline agents (GTP by default): training and evaluation
    ctflow improve                      a dataset's windows refined, verified by replay, written
    ctflow distill                      a policy's verified refined version distilled into BC (DAgger)
    ctflow wrap REFINER                 an SB3 policy inside RefinementWrapper(replay=True)
    ctflow sweep run|summary            seeds x settings x datasets on Optuna (many workers)

Subcommands that run something share ``--seed``, ``--device``,
``--wandb {online,offline,disabled}`` and ``--out DIR``; ``ctflow <command> --help``
describes each. User mistakes (unknown subcommand or dataset, an output folder that is
a file, ``--wandb online`` without credentials, a device that does not exist, bad
values) print one line starting ``ctflow: error:`` and exit with status 2, without a
Python traceback.

The command line is the top layer: it is the only part of ``ctflow_gym`` that
imports ``agents``, and only inside functions (the ``agent`` parser takes its
``--agent`` choices from the registry, the handlers the agents).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ctflow_gym.cli import (
    agent_commands,
    dataset_commands,
    demo,
    distill_command,
    improve_command,
    refiner_commands,
    sweep_command,
    wrap_command,
)
from ctflow_gym.cli.common import UserError


def build_parser() -> argparse.ArgumentParser:
    """The ``ctflow`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="ctflow",
        description="ctflow_gym: offline trajectory refinement with flows, checked in MuJoCo, "
        "and generative trajectory policies.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{demo,dataset,refiner,improve,distill,agent,wrap,sweep}"
    )
    demo.register(commands)
    dataset_commands.register(commands)
    refiner_commands.register(commands)
    improve_command.register(commands)
    distill_command.register(commands)
    agent_commands.register(commands)
    wrap_command.register(commands)
    sweep_command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ctflow`` console command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (
        UserError,
        ValueError,
        TypeError,
        KeyError,
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
    ) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"ctflow: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
