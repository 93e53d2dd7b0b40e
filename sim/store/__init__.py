"""Storage: the database schema, the event writers, importers, exports and read-only queries.

The store knows the engine only through :mod:`sim.contract` (event batches and code
tables); it never imports :mod:`sim.engine`.
"""

__all__: list[str] = []
