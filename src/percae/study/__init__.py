"""The study, in the order it runs: `config` (its settings and presets), `data` (its
dataset and the splits every unit shares), `unit` (one model, latent size and seed),
`executors` (where the units run) and `run` (`run_study`: the whole study, then its report).

Nothing is imported here: `percae.report` reads `study.config`, and `study.run` writes the
report, so a package that imported `run` on entry would import itself back.
"""
