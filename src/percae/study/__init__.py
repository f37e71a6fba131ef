"""A study's parts, in the order they are used: `config` (its settings and presets), `data`
(its dataset and the splits every unit shares), `unit` (one model, latent size and seed, and
which units are still to run), `executors` (where the units run). `percae.reproduce.run_study`
runs a whole study and writes its report (`percae.report`, which reads these modules)."""
