"""Markdown from models and guidelines, turned into HTML that is safe to put in our pages.

Two layers, so that a bug in one is not an XSS: markdown-it-py runs with raw HTML disabled
(``<script>`` in a response shows up as text) and only lets through URLs it considers safe;
nh3 (ammonia) then keeps an allow-list of tags, attributes and URL schemes. Images are shown
as links, never loaded: an item must not make the reviewer's browser fetch third-party URLs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.token import Token

ALLOWED_TAGS = {
    "a",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    # markdown-it writes column alignment as style="text-align:…"; only that property survives.
    "th": {"style"},
    "td": {"style"},
}
URL_SCHEMES = {"http", "https", "mailto"}


def _absolute_urls_only(tag: str, attribute: str, value: str) -> str | None:
    # nh3 passes relative URLs through; a response has no business linking into this app.
    if attribute == "href" and not value.lower().startswith(("http://", "https://", "mailto:")):
        return None
    return value


_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes=ALLOWED_ATTRIBUTES,
    url_schemes=URL_SCHEMES,
    attribute_filter=_absolute_urls_only,
    link_rel="noopener nofollow",
    set_tag_attribute_values={"a": {"target": "_blank"}},
    filter_style_properties={"text-align"},
    strip_comments=True,
)


def _image_as_link(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = escapeHtml(str(token.attrGet("src") or ""))
    alt = escapeHtml(self.renderInlineAsText(token.children or [], options, env) or "image")
    return f'<a href="{src}">[image: {alt}]</a>'


_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)
_md.add_render_rule("image", _image_as_link)


def sanitize_html(html: str) -> str:
    """Keep only the allow-listed markup of ``html``."""
    return _cleaner.clean(html)


def render_markdown(text: str | None) -> SafeString:
    """Markdown to sanitised HTML, safe to insert into a page as is."""
    if not text:
        return mark_safe("")
    return mark_safe(sanitize_html(_md.render(text)))  # noqa: S308 - nh3 output is allow-listed markup
