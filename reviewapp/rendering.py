"""Markdown from models and guidelines, turned into HTML that is safe to put in our pages.

Two layers, so that a bug in one is not an XSS: markdown-it-py runs with raw HTML disabled
(``<script>`` in a response shows up as text) and only lets through URLs it considers safe;
nh3 (ammonia) then keeps an allow-list of tags, attributes and URL schemes. Images are shown
as links, never loaded: an item must not make the reviewer's browser fetch third-party URLs.

Bidirectional control characters (RLO, LRI, …) can make text read differently from what it is
("Trojan Source"), so untrusted text never carries them into a page: each is shown as a marked
escape, ``<span class="bidi">⟨U+202E⟩</span>`` (plain ``⟨U+202E⟩`` inside an attribute). Plain
untrusted text goes through :func:`render_untrusted` (the ``untrusted`` template filter).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, cast

import nh3
from django.utils.html import conditional_escape
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
    "span",
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
    "span": {"class", "title"},
    # markdown-it writes column alignment as style="text-align:…"; only that property survives.
    "th": {"style"},
    "td": {"style"},
}
URL_SCHEMES = {"http", "https", "mailto"}

# Embedding/override/isolate controls and the LRM/RLM marks (Unicode TR9).
BIDI_CONTROLS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_BIDI_RE = re.compile(f"[{BIDI_CONTROLS}]")
# Markdown text carries each control as <U+E000>hex<U+E001> (private-use code points, which markdown
# and nh3 leave alone) until sanitising is over; those code points are never kept from the input.
_SENTINEL_IN, _SENTINEL_OUT = "\ue000", "\ue001"
_SENTINEL_RE = re.compile(f"{_SENTINEL_IN}([0-9A-F]{{4}}){_SENTINEL_OUT}")


def bidi_escape_text(text: str) -> str:
    """``text`` with each bidi control written out as ``⟨U+XXXX⟩`` (for attributes and plain text)."""
    return _BIDI_RE.sub(lambda m: f"\u27e8U+{ord(m.group()):04X}\u27e9", text)


def _bidi_span(code: str) -> str:
    return f'<span class="bidi" title="A hidden text-direction control character">\u27e8U+{code}\u27e9</span>'


def render_untrusted(text: object) -> SafeString:
    """Untrusted plain text as HTML: escaped, and with bidi controls shown as marked escapes."""
    if text is None:
        return mark_safe("")
    escaped = str(conditional_escape(cast("str", text)))  # Django escapes str() of any object
    return mark_safe(_BIDI_RE.sub(lambda m: _bidi_span(f"{ord(m.group()):04X}"), escaped))  # noqa: S308


def _absolute_urls_only(tag: str, attribute: str, value: str) -> str | None:
    # nh3 passes relative URLs through; a response has no business linking into this app.
    if attribute == "href" and not value.lower().startswith(("http://", "https://", "mailto:")):
        return None
    if tag == "span" and attribute == "class" and value != "bidi":
        return None
    # In an attribute a marked <span> cannot exist: write the control out as plain text.
    return _SENTINEL_RE.sub(lambda m: f"\u27e8U+{m.group(1)}\u27e9", value)


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
    """Markdown to sanitised HTML, safe to insert into a page as is, bidi controls made visible."""
    if not text:
        return mark_safe("")
    text = text.replace(_SENTINEL_IN, "\ufffd").replace(_SENTINEL_OUT, "\ufffd")
    text = _BIDI_RE.sub(lambda m: f"{_SENTINEL_IN}{ord(m.group()):04X}{_SENTINEL_OUT}", text)
    html = sanitize_html(_md.render(text))
    # What is left of the sentinels is in text nodes (attribute_filter rewrote attributes'), so a span fits.
    html = _SENTINEL_RE.sub(lambda m: _bidi_span(m.group(1)), html)
    return mark_safe(html)  # noqa: S308 - nh3 output is allow-listed markup
