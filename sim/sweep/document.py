"""A tiny document model for the report, rendered to both Markdown and standalone HTML.

Blocks are headings, paragraphs (with `code` spans), bullet lists, tables, PNG images
(linked by file name in Markdown, embedded as base64 data URIs in HTML) and sections (an
HTML ``<section id=...>``; nothing in Markdown).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Doc"]


@dataclass
class _H:
    level: int
    text: str


@dataclass
class _P:
    text: str


@dataclass
class _Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class _Img:
    alt: str
    path: Path


@dataclass
class _List:
    items: list[str]


@dataclass
class _Section:
    id: str | None  # None closes the open section


_Block = _H | _P | _Table | _Img | _List | _Section


@dataclass
class Doc:
    """An ordered list of blocks with Markdown and HTML renderers."""

    blocks: list[_Block] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        """Add a heading of ``level`` (1 = title)."""
        self.blocks.append(_H(level, text))

    def p(self, text: str) -> None:
        """Add a paragraph (backquoted spans become code)."""
        self.blocks.append(_P(text))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        """Add a table of plain-text cells."""
        self.blocks.append(_Table(header, rows))

    def img(self, alt: str, path: Path) -> None:
        """Add a PNG image written at ``path``."""
        self.blocks.append(_Img(alt, path))

    def items(self, items: list[str]) -> None:
        """Add a bullet list (backquoted spans become code)."""
        self.blocks.append(_List(items))

    def section(self, id_: str | None) -> None:
        """Open an HTML ``<section id=...>`` (None closes it); nothing in Markdown."""
        self.blocks.append(_Section(id_))

    def markdown(self) -> str:
        """The document as Markdown (images linked by file name)."""
        out: list[str] = []
        for b in self.blocks:
            if isinstance(b, _H):
                out.append(f"{'#' * b.level} {b.text}")
            elif isinstance(b, _P):
                out.append(b.text)
            elif isinstance(b, _List):
                out.append("\n".join(f"- {item}" for item in b.items))
            elif isinstance(b, _Section):
                continue
            elif isinstance(b, _Table):
                cell = [[c.replace("|", "\\|") for c in r] for r in [b.header, *b.rows]]
                lines = ["| " + " | ".join(cell[0]) + " |",
                         "|" + "|".join("---" for _ in b.header) + "|"]
                lines += ["| " + " | ".join(r) + " |" for r in cell[1:]]
                out.append("\n".join(lines))
            else:
                out.append(f"![{b.alt}]({b.path.name})")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        """The document as a standalone HTML page (images embedded) titled ``title``."""
        body: list[str] = []
        for b in self.blocks:
            if isinstance(b, _H):
                body.append(f"<h{b.level}>{_inline_html(b.text)}</h{b.level}>")
            elif isinstance(b, _P):
                body.append(f"<p>{_inline_html(b.text)}</p>")
            elif isinstance(b, _List):
                body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items)
                            + "</ul>")
            elif isinstance(b, _Section):
                body.append(f'<section id="{html.escape(b.id)}">' if b.id else "</section>")
            elif isinstance(b, _Table):
                head = "".join(f"<th>{html.escape(c)}</th>" for c in b.header)
                trs = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                    for r in b.rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            else:
                b64 = base64.b64encode(b.path.read_bytes()).decode("ascii")
                body.append(f'<img alt="{html.escape(b.alt)}" src="data:image/png;base64,{b64}">')
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
            "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}"
            "th{background:#f2f2f2}img{max-width:100%;display:block;margin:.5em 0}"
            "code{background:#f4f4f4;padding:0 3px}"
            "#summary{border:1px solid #ccc;background:#fafafa;padding:.2em 1em;margin:1em 0}"
            "#summary li{margin:.3em 0}"
        )
        return (
            f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n"
        )


def _inline_html(text: str) -> str:
    """Escape text and turn `code` spans into <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
