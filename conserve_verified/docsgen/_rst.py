"""reStructuredText building blocks used by the page generators.

Every function returns text; none touches the file system.  Text that comes
from data (statements, claim texts, counterexample values) goes through
:func:`escape`, so no datum can be mistaken for markup.

Identity: for any string ``s``, the docutils rendering of ``escape(s)`` as a
paragraph is the text ``s`` itself (tested in ``tests/test_docs_rst.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidArgument

__all__ = [
    "bullet_list",
    "directive",
    "escape",
    "field_list",
    "heading",
    "indent",
    "inline_literal",
    "list_table",
    "math_block",
]

_SPECIAL = set("\\*`_|[]<>:")
_UNDERLINES = {1: "=", 2: "-", 3: "~", 4: "^"}


def escape(text: str) -> str:
    """``text`` with every reST inline-markup character backslash-escaped.

    Newlines become spaces (a datum is rendered as one paragraph line).
    """
    out = []
    for ch in " ".join(str(text).splitlines()):
        out.append("\\" + ch if ch in _SPECIAL else ch)
    return "".join(out)


def inline_literal(text: str) -> str:
    """``text`` as an inline literal (``:code:`` role).

    docutils still reads backslash escapes inside interpreted text (``\\ `` is
    removed), so text containing a backslash or a backtick (which no literal
    role holds verbatim) falls back to :func:`escape`d plain text.
    """
    body = " ".join(str(text).splitlines()).strip()
    if not body:
        return ""
    if "`" in body or "\\" in body:
        return escape(body)
    return f":code:`{body}`"


def heading(text: str, level: int) -> str:
    """A section title of ``level`` 1 (page title) to 4, underlined to its width."""
    if level not in _UNDERLINES:
        raise InvalidArgument("level", level, f"must be one of {sorted(_UNDERLINES)}")
    title = escape(text)
    return f"{title}\n{_UNDERLINES[level] * max(len(title), 1)}\n"


def indent(text: str, spaces: int = 3) -> str:
    """Every non-empty line of ``text`` indented by ``spaces`` spaces."""
    pad = " " * spaces
    return "\n".join(pad + line if line.strip() else "" for line in text.splitlines())


def directive(
    name: str, argument: str = "", options: Sequence[tuple[str, str]] = (), body: str = ""
) -> str:
    """``.. name:: argument`` with ``:key: value`` options and an indented body."""
    lines = [f".. {name}::" + (f" {argument}" if argument else "")]
    lines += [f"   :{key}:" + (f" {value}" if value else "") for key, value in options]
    text = "\n".join(lines) + "\n"
    if body.strip():
        text += "\n" + indent(body.rstrip("\n")) + "\n"
    return text


def math_block(latex: str) -> str:
    """A displayed equation (rendered by MathJax)."""
    if not latex.strip():
        raise InvalidArgument("latex", latex, "an equation must not be empty")
    return directive("math", body=latex.strip())


def bullet_list(items: Sequence[str]) -> str:
    """A bullet list; each item is already-formatted reST (one line or several)."""
    out = []
    for item in items:
        first, *rest = item.splitlines() or [""]
        out.append(f"* {first}")
        out += [f"  {line}" if line.strip() else "" for line in rest]
    return "\n".join(out) + "\n"


def field_list(fields: Sequence[tuple[str, str]]) -> str:
    """``:Name: value`` lines; values are already-formatted reST."""
    return "\n".join(f":{escape(name)}: {value}" for name, value in fields) + "\n"


def list_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int] | None = None
) -> str:
    """A ``list-table`` with one header row; cells are already-formatted reST.

    Raises :class:`~conserve_verified.errors.InvalidArgument` if a row's length
    differs from the header's.
    """
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise InvalidArgument(
                f"rows[{i}]", list(row), f"has {len(row)} cells, the header has {len(header)}"
            )
    options: list[tuple[str, str]] = [("header-rows", "1")]
    if widths is not None:
        if len(widths) != len(header):
            raise InvalidArgument("widths", list(widths), f"needs {len(header)} entries")
        options.append(("widths", " ".join(str(w) for w in widths)))
    lines = []
    for row in [list(header), *map(list, rows)]:
        for j, cell in enumerate(row):
            cell_lines = str(cell).splitlines() or [""]
            prefix = "* - " if j == 0 else "  - "
            lines.append(prefix + cell_lines[0] if cell_lines[0].strip() else prefix.rstrip())
            lines += ["    " + c if c.strip() else "" for c in cell_lines[1:]]
    return directive("list-table", options=options, body="\n".join(lines))
