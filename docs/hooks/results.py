"""MkDocs hook: the Results pages' tables and plots, written at build time from the committed benchmark JSON.

A results page (``docs/results/*.md``) holds prose and markers, one per table::

    <!-- results: peers gtp_vs_peers_200k_ensemble5 -->

``peers`` names a renderer below (:data:`RENDERERS`) and ``gtp_vs_peers_200k_ensemble5`` the JSON file
(``benchmarks/results/gtp_vs_peers_200k_ensemble5.json``; a file moved elsewhere under ``benchmarks/`` is
found by its name). Each marker becomes the file's tables, a line saying where the numbers come from (the
file, the script that wrote it, the command where the JSON records one, the commit(s) and the machine), and
the file's plot where one is committed beside it (the PNG is copied into the site). A marker naming an
unknown renderer or a missing file stops the build with an error naming the page, so the pages cannot
silently lose a table. Nothing here computes a number the JSON does not hold, except summaries of the
numbers it does (means, paired differences, percentages), said so where they appear.

The hand-written analyses ``benchmarks/results/*_analysis.md`` become pages under ``results/analyses/``
(copied as they are, with a note on where they come from).

The renderers live beside this file in the package ``results_parts`` (one module per group of result files,
with the shared formatting and the source line); this module maps each marker's kind to its renderer
(:data:`RENDERERS`) and handles the MkDocs events.

mkdocs.yml loads this file with ``hooks: [docs/hooks/results.py]``. The benchmarks render the ``.md`` they
write beside each JSON with the same renderers (``benchmarks/harness.py``), so this module imports MkDocs
only where the site is built: it also loads where MkDocs is not installed (an offline GPU machine).
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Callable

try:
    from mkdocs.exceptions import PluginError
except ImportError:  # rendering a benchmark's .md without MkDocs installed

    class PluginError(Exception):
        """MkDocs' error for a hook that cannot go on (MkDocs is not installed here)."""


# MkDocs (``hooks:``) and benchmarks/harness.py both load this file by its path, not as a module of a package, so
# the renderers beside it cannot be imported relative to it. They are the package ``results_parts`` in this file's
# folder, put on ``sys.path`` here: MkDocs adds the folder only while it runs this file and the harness never does.
# An ordinary import (rather than loading each module by path) keeps them plain modules with relative imports among
# themselves, loaded once however many times this file is. Appended, not prepended, so that this folder's
# ``results.py`` cannot shadow another module named ``results`` in the harness's process.
sys.path.append(str(Path(__file__).resolve().parent))

from results_parts.datasets import render_datasets, render_improve_extract, render_policy_improvement
from results_parts.distillation import render_distillation
from results_parts.formatting import Page
from results_parts.gtp_diagnostics import (
    render_candidate_count,
    render_critic_swap,
    render_fitted_k2,
    render_loss_balance,
    render_paired,
)
from results_parts.locations import RESULTS, ROOT, find_family, find_result, load
from results_parts.peers import (
    render_agent_speed,
    render_gtp_acting,
    render_offline_to_online,
    render_peers,
    render_speed,
)
from results_parts.refined_policy import (
    render_closed_loop_policy,
    render_receding_horizon,
    render_refined_policy,
    render_refined_policy_overview,
    render_selection,
)
from results_parts.refiner import render_levers, render_refiner_tables, render_scale

log = logging.getLogger("mkdocs.hooks.results")

IMAGE_FOLDER = "results/img"
ANALYSES = {  # page name under results/analyses/ -> hand-written analysis in benchmarks/results
    "closed_loop_refinement": "closed_loop_refinement_analysis.md",
    "closed_loop_policy": "closed_loop_policy_analysis.md",
    "feedback_seeds": "feedback_seeds_analysis.md",
    "refiner_tables": "refiner_tables_analysis.md",
    "gtp_vs_peers": "gtp_vs_peers_analysis.md",
    "gtp_diagnostics": "gtp_diagnostics_analysis.md",
    "scale": "scale_analysis.md",
}
MARKER = re.compile(r"^<!-- results: (?P<kind>[\w-]+) (?P<name>[\w.-]+) -->[ \t]*$", re.MULTILINE)


RENDERERS: dict[str, Callable[[str, dict, Path, Page], str]] = {
    "peers": render_peers,
    "speed": render_speed,
    "agent_speed": render_agent_speed,
    "offline_to_online": render_offline_to_online,
    "gtp_acting": render_gtp_acting,
    "paired": render_paired,
    "candidate-count": render_candidate_count,
    "critic-swap": render_critic_swap,
    "loss-balance": render_loss_balance,
    "fitted-k2": render_fitted_k2,
    "refiner-tables": render_refiner_tables,
    "levers": render_levers,
    "refined-policy": render_refined_policy,
    "refined-policy-overview": render_refined_policy_overview,
    "selection": render_selection,
    "closed-loop-policy": render_closed_loop_policy,
    "scale": render_scale,
    "datasets": render_datasets,
    "improve_extract": render_improve_extract,
    "policy_improvement": render_policy_improvement,
    "distillation": render_distillation,
    "receding_horizon": render_receding_horizon,
}


# ---------------------------------------------------------------------------------------------------------------
# MkDocs events


def render_marker(kind: str, name: str, where: str, page: Page) -> str:
    """The Markdown for one marker; ``PluginError`` naming ``where`` for an unknown kind or a missing file."""
    if kind not in RENDERERS:
        raise PluginError(f"{where}: unknown results renderer {kind!r} (known: {', '.join(sorted(RENDERERS))})")
    try:
        if kind == "refined-policy-overview":  # a family of files: name is their prefix
            path, data = find_family(name), {}
        else:
            data, path = load(name)
        return RENDERERS[kind](name, data, path, page)
    except FileNotFoundError as error:
        raise PluginError(f"{where}: results marker '{kind} {name}': {error}") from error
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
        raise PluginError(f"{where}: results marker '{kind} {name}' cannot render: {error!r}") from error


def expand(markdown: str, where: str) -> tuple[str, dict[str, Path]]:
    """``markdown`` with every results marker replaced; also the plots it needs (name -> PNG path)."""
    page = Page()
    text = MARKER.sub(lambda m: render_marker(m["kind"], m["name"], where, page), markdown)
    return text, page.images


def on_files(files, config):
    """Add the analyses as pages and every committed results plot a page may show."""
    from mkdocs.structure.files import File

    for page_name, source in ANALYSES.items():
        path = find_result(source.removesuffix(".md"), ".md")
        note = (
            f'!!! info "Hand-written analysis"\n    Copied at build time from `{path.relative_to(ROOT)}`. '
            "The numbers it quotes come from the result files it names; their tables are on the other Results "
            "pages.\n\n"
        )
        text = path.read_text()
        first, _, rest = text.partition("\n")
        content = first + "\n\n" + note + rest if first.startswith("# ") else note + text
        files.append(File.generated(config, f"results/analyses/{page_name}.md", content=content))
    for png in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"{IMAGE_FOLDER}/{png.name}", abs_src_path=str(png)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the results markers of a page with the tables rendered from JSON."""
    if "<!-- results:" not in markdown:
        return markdown
    text, images = expand(markdown, page.file.src_uri)
    missing = [name for name in images if files.get_file_from_path(f"{IMAGE_FOLDER}/{name}") is None]
    if missing:
        raise PluginError(f"{page.file.src_uri}: plots outside benchmarks/results cannot be shown: {missing}")
    return text
