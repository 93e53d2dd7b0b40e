"""The learned twin: a generative model of a run's future, checked against what happened."""

__all__: list[str] = []
