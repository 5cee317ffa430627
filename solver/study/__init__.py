"""Studies: sweep files (``sweep``), the run store (``store``), running sweeps on dask (``execute``) and
their reports with fitted convergence rates (``report``). Command line: ``python -m solver sweep`` and
``python -m solver runs``."""
