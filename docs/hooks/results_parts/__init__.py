"""The pieces of the Results pages' hook (``docs/hooks/results.py``), one module per job.

- :mod:`.locations`: where the result files and the scripts that write them are.
- :mod:`.formatting`: numbers, tables and plots as Markdown.
- :mod:`.provenance`: the source line under a table (file, command, commits, machine).
- :mod:`.peers`: GTP against its peers (scores, curves, training speed, latency), offline to online.
- :mod:`.gtp_diagnostics`: GTP's one-question studies (paired arms, candidate count, critics, losses, K = 2).
- :mod:`.refiner`: the refiner on held-out windows (the paper's tables, its levers) and at scale.
- :mod:`.refined_policy`: a refiner after a shipped policy (configurations, selection, verification rules).
- :mod:`.datasets`: the recipe datasets, and improving them before extracting a policy.

``results.py`` puts the folder holding this package on ``sys.path`` and maps each marker's kind to its renderer.
"""
