r"""Markdown report sections in the reST pages, parsed by MyST (myst-parser).

The experiment protocol returns report sections in Markdown.  Instead of a
converter of our own, a page embeds the Markdown verbatim in the directive
``conserve-markdown`` (:func:`markdown_to_rst` writes it), and the directive
parses it with myst-parser's Markdown parser (markdown-it-py) and renders it
with myst-parser's docutils renderer into the page's document -- under plain
docutils as under Sphinx (where the directive is registered by the
``conserve_docs`` extension).

What a report can contain: CommonMark with pipe tables and ``$...$`` /
``$$...$$`` math (MyST's ``dollarmath``), headings (rendered as rubrics, so a
section's own heading levels never clash with the page's), images of plots
that exist (others become a note), fenced code, lists, links (always external).

Escaping guarantee (identity): no report can inject markup.  The parser is
MyST's with every syntax that reaches past Markdown disabled -- raw HTML
(``html_block``, ``html_inline``), MyST roles and targets, front matter (which
could set parser options) -- and every fenced block is rendered as literal
code, so ```` ```{raw} html ```` and ```` ```{eval-rst} ```` are shown, not
run; reST syntax in the text (``.. raw::``, ``:role:``) is Markdown text.
Everything outside the recognised Markdown reaches the page as text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes  # type: ignore[import-untyped]
from docutils.parsers.rst import Directive, directives  # type: ignore[import-untyped]
from markdown_it import MarkdownIt
from markdown_it.token import Token
from myst_parser.config.main import MdParserConfig
from myst_parser.mdit_to_docutils.base import DocutilsRenderer
from myst_parser.parsers.mdit import create_md_parser

from . import _rst

__all__ = ["DIRECTIVE", "MarkdownSection", "markdown_to_rst", "parse_markdown", "register"]

#: Name of the reST directive that embeds a Markdown section.
DIRECTIVE = "conserve-markdown"

#: markdown-it rules switched off: everything that is not plain Markdown.
_DISABLED = (
    "html_block",
    "html_inline",
    "myst_role",
    "myst_target",
    "myst_line_comment",
    "myst_block_break",
    "front_matter",
)

#: The parser configuration of report sections (see the module docstring).
CONFIG = MdParserConfig(
    enable_extensions={"dollarmath"},
    disable_syntax=list(_DISABLED),
    all_links_external=True,
    heading_anchors=0,
)


def _parser(renderer: type[Any] = DocutilsRenderer) -> MarkdownIt:
    return create_md_parser(CONFIG, renderer)


def _walk(tokens: list[Token]) -> Iterator[Token]:
    for tok in tokens:
        yield tok
        if tok.children:
            yield from _walk(tok.children)


def _images(text: str) -> list[str]:
    """The image sources of ``text`` as the parser sees them, in order."""
    return [
        str(t.attrGet("src"))
        for t in _walk(_parser().parse(text))
        if t.type == "image" and t.attrGet("src")
    ]


def markdown_to_rst(
    text: str, base_dir: Path | None = None, rewrite_image: Callable[[str], str] | None = None
) -> str:
    """A reST block that renders the Markdown ``text`` (a ``conserve-markdown`` directive).

    ``base_dir`` is the directory the section's relative image paths refer to;
    ``rewrite_image`` maps such a path to the one the page should use
    (default: unchanged).  Images that do not exist under ``base_dir`` are
    rendered as a note saying the plot is missing.

    Identity: the directive's content is ``text`` itself (tabs expanded), so
    what is rendered is what the report wrote, parsed once, by MyST.
    """
    rewrite = rewrite_image or (lambda s: s)
    images = {}
    for src in _images(text):
        exists = base_dir is not None and (Path(base_dir) / src).is_file()
        images[src] = rewrite(src) if exists else ""
    options = [("images", json.dumps(images, sort_keys=True))] if images else []
    body = text.expandtabs(4).rstrip("\n")
    if not body.strip():
        return ""
    return _rst.directive(DIRECTIVE, options=options, body=body)


def _sanitize(tokens: list[Token], images: dict[str, str]) -> list[Token]:
    """Fences as literal code, headings as bold rubric paragraphs, images mapped or noted."""
    out: list[Token] = []
    for tok in tokens:
        if tok.type == "fence":
            info = tok.info.strip().split(maxsplit=1)
            lang = info[0] if info else ""
            tok.info = lang if lang.replace("-", "").replace("+", "").isalnum() else ""
        elif tok.type in ("heading_open", "heading_close"):
            tok.type = tok.type.replace("heading", "paragraph")
            tok.tag = "p"
            tok.attrs = {"class": "rubric"}
        elif (
            tok.type == "inline"
            and out
            and out[-1].type == "paragraph_open"
            and out[-1].attrs.get("class") == "rubric"
        ):
            tok.children = [
                Token("strong_open", "strong", 1),
                *(tok.children or []),
                Token("strong_close", "strong", -1),
            ]
        if tok.children:
            tok.children = _sanitize_inline(tok.children, images)
        out.append(tok)
    return out


def _sanitize_inline(children: list[Token], images: dict[str, str]) -> list[Token]:
    out: list[Token] = []
    for tok in children:
        if tok.type == "image":
            src = str(tok.attrGet("src") or "")
            target = images.get(src, "")
            if not target:
                note = Token("text", "", 0)
                note.content = f"[Plot {src} is missing from the report.]"
                out.append(note)
                continue
            tok.attrSet("src", target)
        out.append(tok)
    return out


def parse_markdown(
    text: str, document: nodes.document, images: dict[str, str] | None = None
) -> list[nodes.Node]:
    """Render the Markdown ``text`` into docutils nodes for ``document`` (see module docs).

    Uses myst-parser's Sphinx renderer inside a Sphinx build and its docutils
    renderer otherwise.
    """
    renderer: type[Any] = DocutilsRenderer
    if getattr(document.settings, "env", None) is not None:
        from myst_parser.mdit_to_docutils.sphinx_ import SphinxRenderer

        renderer = SphinxRenderer
    md = _parser(renderer)
    container = nodes.container(classes=["conserve-markdown"])
    env: dict[str, Any] = {}
    tokens = _sanitize(md.parse(text, env), images or {})
    options = {**md.options, "document": document, "current_node": container}
    md.renderer.render(tokens, options, env)  # type: ignore[arg-type]
    return list(container.children)


class MarkdownSection(Directive):
    """``.. conserve-markdown::`` -- its content is Markdown, rendered by MyST.

    Option ``:images:`` -- a JSON object mapping each image source of the
    content to the path the page uses (``""``: the plot is missing).
    """

    has_content = True
    option_spec: ClassVar[dict[str, Callable[[str], Any]]] = {"images": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        try:
            images = json.loads(self.options.get("images", "{}"))
        except json.JSONDecodeError as exc:
            raise self.error(f"{DIRECTIVE}: :images: is not JSON ({exc})") from exc
        if not isinstance(images, dict):
            raise self.error(f"{DIRECTIVE}: :images: must be a JSON object")
        text = "\n".join(self.content)
        return parse_markdown(
            text, self.state.document, {str(k): str(v) for k, v in images.items()}
        )


def register() -> None:
    """Make ``conserve-markdown`` known to plain docutils.

    (The Sphinx extension registers it with ``add_directive(..., override=True)``.)
    """
    directives.register_directive(DIRECTIVE, MarkdownSection)


register()
