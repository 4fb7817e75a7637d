"""The study: the search space's trials, population rounds, the runner and its workers (Dask included), storage and
riding out its outages, the watchdog; Optuna's private names in one module."""
