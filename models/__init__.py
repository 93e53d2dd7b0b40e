"""signsim models: temporal signed-graph learning over the signsim database."""

__all__: list[str] = []
