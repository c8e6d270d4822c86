# SPDX-License-Identifier: Apache-2.0
"""A report as a list of blocks, rendered to Markdown and to one self-contained HTML file.

One structure, two renderers, so the Markdown and HTML reports can never disagree.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["Block", "Heading", "Image", "Para", "Table", "render_html", "render_md", "run_section", "write_report"]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str  # may hold `code` and **bold**


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[object]]


@dataclass(frozen=True)
class Image:
    path: str  # relative to the report's folder
    caption: str


Block = Heading | Para | Table | Image


def render_md(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}\n")
        elif isinstance(b, Para):
            out.append(b.text + "\n")
        elif isinstance(b, Table):
            out.append("| " + " | ".join(b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out += ["| " + " | ".join(str(c) for c in row) + " |" for row in b.rows]
            out.append("")
        else:
            out.append(f"![{b.caption}]({b.path})\n\n*{b.caption}*\n")
    return "\n".join(out)


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}code{background:#f4f4f4;padding:0 .2em}"""


def render_html(blocks: Sequence[Block], title: str, base: Path) -> str:
    """HTML with every image inlined as base64, so the file stands alone."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            parts.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_inline(str(h))}</th>" for h in b.header)
            body = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>" for row in b.rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:
            data = base64.b64encode((base / b.path).read_bytes()).decode()
            mime = "image/jpeg" if Path(b.path).suffix.lower() in (".jpg", ".jpeg") else "image/png"
            parts.append(
                f"<figure><img alt='{html.escape(b.caption)}' src='data:{mime};base64,{data}'>"
                f"<figcaption>{_inline(b.caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def run_section(command: str, quick: bool, summary: str) -> list[Block]:
    """The closing "Run" section of a study report: the command that regenerates it and its timing."""
    return [Heading("Run"), Para(f"`{command}{' --quick' if quick else ''}`. {summary}")]


def write_report(results: Mapping[str, Any], blocks: Sequence[Block], out: Path, title: str) -> None:
    """``results.json`` first (the source of truth), then ``report.md`` and a self-contained ``report.html``."""
    from badnets._io import write_json, write_text

    write_json(out / "results.json", results)
    write_text(out / "report.md", render_md(blocks))
    write_text(out / "report.html", render_html(blocks, title, out))


@dataclass(frozen=True)
class StudyReport(Generic[T]):
    """How one study's results (a ``kind`` record) become its reports: ``doc`` lays out the blocks."""

    kind: type[T]
    title: str
    doc: Callable[[T], list[Block]]

    def write(self, results: T, out: Path) -> None:
        """``results.json`` (the source of truth), then Markdown and self-contained HTML from it."""
        from badnets.records import to_json

        write_report(to_json(results), self.doc(results), out, self.title)

    def render(self, data: Mapping[str, Any], out: Path) -> None:
        """Re-render the reports in ``out`` from its parsed ``results.json``."""
        from badnets.records import from_json

        self.write(from_json(self.kind, data), out)
