"""Experiments: scenario sweeps over arms and seeds, their executors, statistics and reports.

A sweep runs :func:`sim.engine.simulate.run_into_store` once per (arm, seed), on local
processes or a Dask cluster, then reads the stored runs back to compare arms.
"""

__all__: list[str] = []
