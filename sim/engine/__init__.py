"""The engine: agents, decision rules, the compiled kernel, interventions and recording.

Data flow: :mod:`sim.engine.model` advances a SimPy clock; the agents' acts are decided
by a :class:`~sim.engine.dynamics.Dynamics` (the mechanistic rules, or a learned model
plugged in through :mod:`sim.engine.plugins`), filtered by interventions, applied by the
kernel, and handed as :class:`~sim.contract.EventBatch` objects to the recorder, which
streams them into a :mod:`sim.store` database. Nothing here imports torch.
"""

__all__: list[str] = []
