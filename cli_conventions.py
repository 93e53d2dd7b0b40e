"""The conventions every signsim command shares, set up once for the Typer app in ``cli.py``.

``-h`` is ``--help``; help shows no ``<bool>``/``<str>`` placeholders and names the
allowed values of options with a fixed set; ``-1``, ``-2`` ... are read as run and model
references (the newest, the one before, ...), not as options.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

__all__ = ["SignsimApp", "SignsimGroup"]

_BACK_REF = re.compile(r"-[0-9]+")


class _Argument(TyperArgument):
    """A positional argument shown as ``NAME`` (``[NAME]`` when optional), without ``<str>``."""

    def display_type_rich(self, ctx: Any) -> str | None:
        """The type column of help: empty for plain text (the name and help say more)."""
        shown = super().display_type_rich(ctx)
        return None if shown == "<str>" else shown

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        """``NAME`` in the usage line, ``[NAME]`` when optional."""
        name = self.metavar or (self.name or "").upper()
        return [(name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")]


def _tidy(params: Sequence[Any]) -> None:
    """Help without placeholders: flags show no ``<bool>``, text options name their value."""
    for param in params:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
            param.metavar = param.metavar or (param.name or "").upper()
        elif isinstance(param, TyperOption) and param.metavar is None:
            desc = getattr(param, "type_descriptor", None)
            if param.is_flag:
                param.metavar = ""
            elif desc is not None and desc.annotation is str:
                param.metavar = f"<{param.name}>"


class _Command(TyperCommand):
    """Every signsim command: tidy help, and ``-1``, ``-2`` ... read as values, not options."""

    def make_parser(self, ctx: Any) -> Any:
        """The option parser, with negative numbers left to the positional arguments."""
        _tidy(self.get_params(ctx))
        parser = super().make_parser(ctx)
        process_opts = parser._process_opts

        def process(arg: str, state: Any) -> None:
            if _BACK_REF.fullmatch(arg):  # `signsim stats -1`: the newest run
                state.largs.append(arg)
            else:
                process_opts(arg, state)

        parser._process_opts = process  # type: ignore[method-assign]
        return parser


class SignsimGroup(TyperGroup):
    """The ``signsim`` command itself: tidy help (``--version``, completion, ``-h``)."""

    def make_parser(self, ctx: Any) -> Any:
        """The option parser, after tidying the help of the options."""
        _tidy(self.get_params(ctx))
        return super().make_parser(ctx)


class SignsimApp(typer.Typer):
    """A Typer app whose commands are :class:`_Command` unless told otherwise."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        """Register a command (see :meth:`typer.Typer.command`)."""
        kwargs["cls"] = kwargs.get("cls") or _Command
        return super().command(*args, **kwargs)
