"""signsim simulation package: scenarios, agents, engine, storage, experiments, reports.

This package never imports torch; learned dynamics plug in through
:class:`sim.engine.dynamics.Dynamics`.
"""

__all__: list[str] = []
