"""Mesa's agent registry and ``AgentSet`` over the population's arrays, agents made on demand.

A population of 10M people cannot afford 10M Mesa agents made up front (about 6-9 us
and 1 KiB each, all before the first event). The people's state is already columnar
(:class:`~sim.engine.agents.Population`), so the model keeps Mesa's interface without
making the objects:

* :class:`~sim.engine.agents.AgentViews` (``model.agent_list``) makes person ``i``'s agent, a
  :class:`~sim.engine.agents.SignedAgent` view of row ``i``, the first time anyone asks
  for it and keeps it: an agent is the same object every time (identity, ``in``,
  attributes a user sets on it), and only the agents someone touched exist as objects.
  Its class follows ``population.kind`` (a citizen recruited as a counter-speaker is
  then a :class:`~sim.engine.agents.CounterSpeaker`, with the same ``unique_id``).
* :class:`PopulationAgentSet` is a :class:`mesa.AgentSet` whose members are keys: a
  person's index, or a negative number for any other Mesa agent registered with the
  model. ``model.agents`` and ``model.agents_by_type`` are live sets (they follow
  removals, registrations and kind changes); every set an operation returns holds the
  keys it selected, in order, and drops members removed from the model, as Mesa's weak
  sets do. Every method gives what Mesa's ``AgentSet`` gives on the same agents (the
  tests compare them); ``get``, ``agg``, ``set``, ``sort`` and ``groupby`` of a column
  (``opinion``, ``group``, ``rate``, ``active``, ``kind``, ``index``, ``unique_id``) and
  ``select(agent_type=...)`` read the arrays instead of making agents.
"""

from __future__ import annotations

import math
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from random import Random
from typing import Any

import mesa
import numpy as np
from mesa.agent import AgentSet, GroupBy

from sim.engine.agents import AGENT_CLASSES, AgentViews

__all__ = ["PopulationAgentSet"]

#: Reducers that give the same result on a numpy array as on the list Mesa passes.
_ARRAY_REDUCERS: frozenset[Any] = frozenset((
    len, np.mean, np.sum, np.min, np.max, np.median, np.std, np.var, np.amin, np.amax,
    np.average, np.nanmean, np.nansum, np.nanmin, np.nanmax))
_KIND_NAMES = np.array([cls.kind for cls in AGENT_CLASSES], dtype=object)
_NO_KEYS = np.zeros(0, dtype=np.int64)


class PopulationAgentSet(AgentSet):
    """A Mesa ``AgentSet`` of keys over :class:`AgentViews` (see the module docstring).

    Args:
        views: The model's agent registry.
        keys: Members in order; ``None`` for a live set (all registered agents, or those
            of exactly ``agent_type``).
        agent_type: Type of a live set's members (``None``: every type).
        random: Generator of ``shuffle`` (default: the model's ``random``).
    """

    def __init__(self, views: AgentViews, keys: np.ndarray | None = None, *,
                 agent_type: type | None = None, random: Random | None = None) -> None:
        self._views = views
        self._keys = None if keys is None else np.asarray(keys, dtype=np.int64)
        self._type = agent_type
        self._sorted: np.ndarray | None = None
        self.random = random if random is not None else views.model.random

    # -- membership --------------------------------------------------------------------
    def _members(self) -> np.ndarray:
        if self._keys is None:
            return self._views.live_keys(self._type)
        ok = self._views.alive_mask(self._keys)
        return self._keys if ok is None else self._keys[ok]

    def _everyone(self) -> bool:
        """A live set of every person, none removed, no other agents: index = key."""
        v = self._views
        return self._keys is None and self._type is None and v.registered is None and not v.extras

    def _snapshot(self, keys: np.ndarray) -> PopulationAgentSet:
        return PopulationAgentSet(self._views, keys, random=self.random)

    def _assign(self, keys: np.ndarray) -> PopulationAgentSet:
        self._keys, self._type, self._sorted = np.asarray(keys, dtype=np.int64), None, None
        return self

    def _agents(self, keys: np.ndarray) -> list[mesa.Agent]:
        agent = self._views.agent
        return [agent(k) for k in keys.tolist()]

    def __len__(self) -> int:
        """Number of members."""
        if self._keys is None and self._type is None:
            return self._views.n_registered + len(self._views.extras)
        return int(self._members().shape[0])

    def __iter__(self) -> Iterator[mesa.Agent]:
        """Members in order."""
        v = self._views
        if self._keys is None and self._type is None and v.registered is None:
            return chain(map(v.view, range(v.n)), list(v.extras.values()))
        return map(v.agent, self._members().tolist())

    def __reversed__(self) -> Iterator[mesa.Agent]:
        """Members in reverse order."""
        return map(self._views.agent, self._members()[::-1].tolist())

    def __contains__(self, agent: object) -> bool:
        """Whether ``agent`` is a member."""
        key = self._views.key_of(agent)
        if key is None:
            return False
        if self._keys is None:
            return self._type is None or type(agent) is self._type
        if self._sorted is None:
            self._sorted = np.sort(self._keys)
        j = int(np.searchsorted(self._sorted, key))
        return j < self._sorted.shape[0] and int(self._sorted[j]) == key

    def __getitem__(self, item: Any) -> Any:
        """The member at a position, or a list of members for a slice."""
        if self._everyone() and not isinstance(item, slice):
            return self._views[item]
        keys = self._members()
        if isinstance(item, slice):
            return self._agents(keys[item])
        return self._views.agent(int(keys[operator.index(item)]))

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        """Position of a member (``ValueError`` if absent)."""
        key = self._views.key_of(value) if value in self else None
        keys = self._members()
        hits = np.flatnonzero(keys[start:stop] == key) if key is not None else _NO_KEYS
        if hits.shape[0] == 0:
            raise ValueError(f"{value!r} is not in the agent set")
        return int(hits[0]) + (start if start >= 0 else start + keys.shape[0])

    def count(self, value: Any) -> int:
        """1 if ``value`` is a member, else 0."""
        return int(value in self)

    @classmethod
    def _from_iterable(cls, it: Iterable[mesa.Agent]) -> AgentSet:
        return AgentSet(list(it))

    def __getstate__(self) -> dict[str, Any]:
        """Plain attributes (picklable with the model)."""
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore the attributes."""
        self.__dict__.update(state)

    # -- columns -----------------------------------------------------------------------
    def _column(self, name: Any, keys: np.ndarray) -> np.ndarray | None:
        """A column attribute of the members read from the arrays (``None``: not one)."""
        if not isinstance(name, str) or (keys.shape[0] and int(keys.min()) < 0):
            return None
        pop = self._views.population
        if name in ("opinion", "group", "rate", "active"):
            return getattr(pop, name)[keys]  # type: ignore[no-any-return]
        if name == "index":
            return keys
        if name == "unique_id":
            return keys + 1
        if name == "kind" and not self._views.kind_shadowed():
            return _KIND_NAMES[pop.kind[keys]]  # type: ignore[no-any-return]
        return None

    # -- Mesa's AgentSet methods -------------------------------------------------------
    def select(self, filter_func: Callable[[mesa.Agent], bool] | None = None,
               at_most: int | float = math.inf, inplace: bool = False,
               agent_type: type | None = None) -> PopulationAgentSet:
        """Members that pass ``filter_func`` and are ``agent_type`` instances, first ``at_most``."""
        if filter_func is None and agent_type is None and at_most == math.inf:
            return self if inplace else self._snapshot(self._members())
        if isinstance(at_most, float) and at_most <= 1.0:
            at_most = int(len(self) * at_most)
        limit = self._views.n + len(self._views.extras) if at_most == math.inf else max(
            math.ceil(at_most), 0)
        keys = self._members()
        if agent_type is not None:
            keys = keys[self._views.type_mask(keys, agent_type)]
        if filter_func is None:
            keys = keys[:limit]
        else:
            chosen: list[int] = []
            agent = self._views.agent
            for k in keys.tolist():
                if len(chosen) >= limit:
                    break
                if filter_func(agent(k)):
                    chosen.append(k)
            keys = np.array(chosen, dtype=np.int64)
        return self._assign(keys) if inplace else self._snapshot(keys)

    def shuffle(self, inplace: bool = False) -> PopulationAgentSet:
        """Members in a random order (the permutation Mesa draws from ``self.random``)."""
        order = self._members().tolist()
        self.random.shuffle(order)
        keys = np.array(order, dtype=np.int64)
        return self._assign(keys) if inplace else self._snapshot(keys)

    def sort(self, key: Callable[[mesa.Agent], Any] | str, ascending: bool = False,
             inplace: bool = False) -> PopulationAgentSet:
        """Members sorted by an attribute or function (stable, as ``sorted``)."""
        keys = self._members()
        col = self._column(key, keys)
        if col is not None and col.dtype.kind in "fiub":
            values = col.astype(np.float64)
            order = np.argsort(values if ascending else -values, kind="stable")
        else:
            f = operator.attrgetter(key) if isinstance(key, str) else key
            agents = self._agents(keys)
            order = np.array(sorted(range(len(agents)), key=lambda j: f(agents[j]),
                                    reverse=not ascending), dtype=np.int64)
        sorted_keys = keys[order]
        return self._assign(sorted_keys) if inplace else self._snapshot(sorted_keys)

    def _update(self, agents: Iterable[mesa.Agent]) -> PopulationAgentSet:
        return self._assign(np.array([self._key(a) for a in agents], dtype=np.int64))

    def _call_each(self, keys: list[int], method: str | Callable[..., Any],
                   args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        views, out = self._views, []
        for k in keys:
            if views.alive(k):  # removed while the loop runs: skipped, as in Mesa
                agent = views.agent(k)
                out.append(getattr(agent, method)(*args, **kwargs) if isinstance(method, str)
                           else method(agent, *args, **kwargs))
        return out

    def do(self, method: str | Callable[..., Any], *args: Any, **kwargs: Any
           ) -> PopulationAgentSet:
        """Call a method (by name) or a function on each member."""
        self._call_each(self._members().tolist(), method, args, kwargs)
        return self

    def shuffle_do(self, method: str | Callable[..., Any], *args: Any, **kwargs: Any
                   ) -> PopulationAgentSet:
        """Shuffle (as :meth:`shuffle`), then call on each member in that order."""
        order = self._members().tolist()
        self.random.shuffle(order)
        self._call_each(order, method, args, kwargs)
        return self

    def map(self, method: str | Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
        """Results of a method (by name) or a function on each member."""
        return self._call_each(self._members().tolist(), method, args, kwargs)

    def agg(self, attribute: str, func: Callable[..., Any] | Iterable[Callable[..., Any]]
            ) -> Any:
        """``func`` (or each of several) of the members' values of an attribute."""
        keys = self._members()
        col = self._column(attribute, keys)
        funcs = [func] if callable(func) else list(func)
        listed: list[Any] | None = None if col is not None else self.get(attribute)
        out = []
        for f in funcs:
            if col is not None and f in _ARRAY_REDUCERS:
                out.append(f(col))
            else:
                if listed is None:
                    listed = col.tolist()  # type: ignore[union-attr]
                out.append(f(listed))
        return out[0] if callable(func) else out

    def get(self, attr_names: str | list[str], handle_missing: str = "error",
            default_value: Any = None) -> list[Any]:
        """Each member's value of an attribute (or a list of them for several)."""
        if handle_missing not in ("error", "default"):
            raise ValueError(f"Unknown handle_missing option: {handle_missing}, "
                             "should be one of 'error' or 'default'")
        keys = self._members()
        single = isinstance(attr_names, str)
        names: list[str] = [attr_names] if isinstance(attr_names, str) else list(attr_names)
        cols = [self._column(name, keys) for name in names]
        if all(c is not None for c in cols):
            lists = [c.tolist() for c in cols]  # type: ignore[union-attr]
            return lists[0] if single else [list(row) for row in zip(*lists, strict=True)]
        agents, first = self._agents(keys), names[0]
        if handle_missing == "error":
            if single:
                return [getattr(a, first) for a in agents]
            return [[getattr(a, name) for name in names] for a in agents]
        if single:
            return [getattr(a, first, default_value) for a in agents]
        return [[getattr(a, name, default_value) for name in names] for a in agents]

    def set(self, attr_name: str, value: Any) -> PopulationAgentSet:
        """Set an attribute of every member (``opinion`` straight into the array)."""
        keys = self._members()
        if attr_name == "opinion" and (keys.shape[0] == 0 or int(keys.min()) >= 0):
            self._views.population.opinion[keys] = value
            return self
        for agent in self._agents(keys):
            setattr(agent, attr_name, value)
        return self

    def groupby(self, by: Callable[[mesa.Agent], Any] | str, result_type: str = "agentset"
                ) -> GroupBy:
        """Members grouped by an attribute or function (groups in order of first member)."""
        keys = self._members()
        groups: dict[Any, Any] = {}
        if by in ("group", "active", "index", "unique_id") and self._column(by, keys) is not None:
            values = self._column(by, keys)
        elif by == "kind" and self._column(by, keys) is not None:
            values = self._views.population.kind[keys]
        else:
            values = None
        if values is not None:
            uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
            by_member = np.argsort(inverse.reshape(-1), kind="stable")
            bounds = np.concatenate(([0], np.cumsum(np.bincount(inverse.reshape(-1)))))
            for g in np.argsort(first, kind="stable").tolist():
                name = uniq[g].item() if by != "kind" else str(_KIND_NAMES[uniq[g]])
                groups[name] = keys[by_member[bounds[g]:bounds[g + 1]]]
        else:
            f = operator.attrgetter(by) if isinstance(by, str) else by
            lists: dict[Any, list[int]] = defaultdict(list)
            for k in keys.tolist():
                lists[f(self._views.agent(k))].append(k)
            groups = {g: np.array(ks, dtype=np.int64) for g, ks in lists.items()}
        if result_type == "agentset":
            return GroupBy({g: self._snapshot(ks) for g, ks in groups.items()})
        return GroupBy({g: self._agents(ks) for g, ks in groups.items()})

    # -- changing a set ----------------------------------------------------------------
    def _key(self, agent: Any) -> int:
        key = self._views.key_of(agent)
        if key is None:
            raise ValueError(f"{agent!r} is not an agent of this model; a signsim agent set "
                             "holds only the model's registered agents")
        return key

    def add(self, agent: mesa.Agent) -> None:
        """Add an agent of the model (a no-op for a member)."""
        key = self._key(agent)
        if agent not in self:
            self._assign(np.append(self._members(), key))

    def discard(self, agent: mesa.Agent) -> None:
        """Remove an agent from this set if it is a member."""
        if agent in self:
            keys = self._members()
            self._assign(keys[keys != self._key(agent)])

    def remove(self, agent: mesa.Agent) -> None:
        """Remove a member from this set (``KeyError`` if it is not one)."""
        if agent not in self:
            raise KeyError(agent)
        self.discard(agent)
