r"""Markdown (the subset the experiment reports use) to reStructuredText.

The experiment protocol returns report sections in Markdown, while Sphinx here
reads reST (no Markdown parser is part of the environment).  Supported:

* ATX headings (``#`` ... ``######``) -- become rubrics, so a section's own
  heading levels can never clash with the page's;
* pipe tables (header, ``|---|`` separator, rows) -- ``list-table``;
* images on a line of their own, ``![alt](file.png)`` -- ``image`` directives
  (only files that exist, relative to ``base_dir``; others become a note);
* fenced code blocks, bullet and numbered lists, paragraphs;
* inline: code spans, ``**strong**``, ``*emphasis*``/``_emphasis_``, links
  ``[text](url)``, math ``$...$``; everything else is escaped text.

Identity: every character of text outside recognised markup reaches the output
escaped (:func:`._rst.escape`), so no report can inject reST markup.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from . import _rst

__all__ = ["inline", "markdown_to_rst"]

_INLINE = re.compile(
    r"(?P<code>`+)(?P<code_body>.+?)(?P=code)"
    r"|\*\*(?P<strong>[^*]+?)\*\*"
    r"|__(?P<strong2>[^_]+?)__"
    r"|(?<![\w*])\*(?P<em>[^*\s][^*]*?)\*(?![\w*])"
    r"|(?<![\w_])_(?P<em2>[^_\s][^_]*?)_(?![\w_])"
    r"|\[(?P<link_text>[^\]]+)\]\((?P<link_url>[^)\s]+)\)"
    r"|(?<![\w$\\])\$(?P<math>[^$\s][^$]*?)\$(?![\w$])"
)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)(?:\s+\"[^\"]*\")?\)$")
_TABLE_SEP = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")
_BULLET = re.compile(r"^\s{0,3}[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s{0,3}\d+[.)]\s+(.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")


def _wrap(markup: str, before: str, after: str) -> str:
    """``markup`` with escaped spaces where it touches non-space text (always valid reST)."""
    left = "\\ " if before and not before.isspace() else ""
    right = "\\ " if after and not after.isspace() else ""
    return left + markup + right


def inline(text: str) -> str:
    """Inline Markdown of one line or paragraph as reST inline markup."""
    out: list[str] = []
    pos = 0
    for m in _INLINE.finditer(text):
        out.append(_rst.escape(text[pos : m.start()]))
        before = text[m.start() - 1] if m.start() > 0 else ""
        after = text[m.end()] if m.end() < len(text) else ""
        if m.group("code") is not None:
            markup = _rst.inline_literal(m.group("code_body").strip())
        elif m.group("strong") is not None or m.group("strong2") is not None:
            body = m.group("strong") if m.group("strong") is not None else m.group("strong2")
            markup = f"**{_rst.escape(body.strip())}**"
        elif m.group("em") is not None or m.group("em2") is not None:
            body = m.group("em") if m.group("em") is not None else m.group("em2")
            markup = f"*{_rst.escape(body.strip())}*"
        elif m.group("link_text") is not None:
            url = m.group("link_url").replace("`", "%60").replace("<", "%3C").replace(">", "%3E")
            markup = f"`{_rst.escape(m.group('link_text'))} <{url}>`__"
        else:
            latex = m.group("math").replace("`", "\\`")
            markup = f":math:`{latex}`"
        out.append(_wrap(markup, before, after) if markup else "")
        pos = m.end()
    out.append(_rst.escape(text[pos:]))
    return "".join(out)


def _cells(row: str) -> list[str]:
    row = row.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)]


def _table(lines: list[str]) -> str:
    header = _cells(lines[0])
    rows = []
    for line in lines[2:]:
        cells = _cells(line)
        cells = (cells + [""] * len(header))[: len(header)]
        rows.append([inline(c) for c in cells])
    return _rst.list_table([inline(h) for h in header], rows)


def _image(alt: str, src: str, base_dir: Path | None, rewrite: Callable[[str], str]) -> str:
    exists = base_dir is not None and (base_dir / src).is_file()
    if not exists:
        return f".. note:: Plot {_rst.inline_literal(src)} is missing from the report.\n"
    return _rst.directive(
        "image", rewrite(src), [("alt", _rst.escape(alt) or "plot"), ("width", "100%")]
    )


def markdown_to_rst(
    text: str, base_dir: Path | None = None, rewrite_image: Callable[[str], str] | None = None
) -> str:
    """Convert a Markdown report section to reST.

    ``base_dir`` is the directory the section's relative image paths refer to;
    ``rewrite_image`` maps such a path to the one the reST page should use
    (default: unchanged).
    """
    rewrite = rewrite_image or (lambda s: s)
    lines = text.splitlines()
    blocks: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(inline(" ".join(s.strip() for s in para)) + "\n")
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        fence = _FENCE.match(line)
        if fence:
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(fence.group(1)):
                j += 1
            body = "\n".join(lines[i + 1 : j]) or " "
            blocks.append(_rst.directive("code-block", fence.group(2) or "text", body=body))
            i = j + 1
            continue
        if not stripped:
            flush()
            i += 1
            continue
        heading = _HEADING.match(stripped)
        if heading:
            flush()
            blocks.append(f".. rubric:: {inline(heading.group(2))}\n")
            i += 1
            continue
        if _RULE.match(stripped) and not para:
            i += 1
            continue
        if stripped.startswith("|") and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1]):
            flush()
            j = i + 2
            while j < len(lines) and lines[j].strip().startswith("|"):
                j += 1
            blocks.append(_table([s.strip() for s in lines[i:j]]))
            i = j
            continue
        image = _IMAGE.match(stripped)
        if image:
            flush()
            blocks.append(_image(image.group("alt"), image.group("src"), base_dir, rewrite))
            i += 1
            continue
        bullet, numbered = _BULLET.match(line), _NUMBERED.match(line)
        if bullet or numbered:
            flush()
            pattern = _BULLET if bullet else _NUMBERED
            items: list[str] = []
            while i < len(lines) and lines[i].strip():
                m = pattern.match(lines[i])
                if m:
                    items.append(m.group(1).strip())
                elif items:
                    items[-1] += " " + lines[i].strip()
                i += 1
            marker = "* " if bullet else "#. "
            blocks.append("\n".join(marker + inline(item) for item in items) + "\n")
            continue
        if stripped.startswith(">"):
            para.append(stripped.lstrip("> "))
            i += 1
            continue
        para.append(line)
        i += 1
    flush()
    return "\n".join(blocks)
