"""The markdown sanitiser: hostile input comes out inert, ordinary markdown survives."""

from __future__ import annotations

import re

import pytest

from reviewapp.rendering import render_markdown, sanitize_html


def html_of(text: str) -> str:
    return str(render_markdown(text))


@pytest.mark.parametrize(
    "text",
    [
        "<script>window.__xss=1</script>",
        '<img src=x onerror="window.__xss=1">',
        "<svg onload=alert(1)>",
        '<iframe src="https://evil.example"></iframe>',
        '<a href="javascript:alert(1)">raw link</a>',
        "<div onclick=alert(1)>block</div>",
        "<style>body{display:none}</style>",
    ],
)
def test_raw_html_in_markdown_is_shown_as_text(text):
    html = html_of(text)
    assert "<" + text[1:4] not in html  # no tag of that name survives
    assert "&lt;" in html
    assert not re.search(r"<[^>]+\son\w+=", html)


@pytest.mark.parametrize(
    "text",
    [
        "[click](javascript:window.__xss=1)",
        "[click](JaVaScRiPt:alert(1))",
        "[click](java&#x09;script:alert(1))",
        "[click](vbscript:msgbox(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[click](/admin/)",
        "[click](//evil.example/x)",
        "<javascript:alert(1)>",
    ],
)
def test_only_http_https_and_mailto_links_keep_their_href(text):
    assert "href=" not in html_of(text)


def test_safe_links_get_rel_and_open_in_a_new_tab():
    html = html_of("[docs](https://example.com/a?b=1) and [mail](mailto:help@example.com)")
    assert '<a href="https://example.com/a?b=1"' in html and '<a href="mailto:help@example.com"' in html
    assert html.count('rel="noopener nofollow"') == 2 and html.count('target="_blank"') == 2


def test_images_become_links_and_data_urls_are_dropped():
    html = html_of("![chart](https://example.com/c.png) ![pixel](data:image/png;base64,AAAA)")
    assert "<img" not in html
    assert '<a href="https://example.com/c.png"' in html and "[image: chart]" in html
    assert "data:" not in html and "[image: pixel]" in html


def test_tables_code_and_lists_survive():
    text = (
        "# Title\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n```python\nif a < b:\n    print('<tag>')\n```\n\n"
        "- one\n- **two**\n\n> quote with `code`\n\n~~gone~~"
    )
    html = html_of(text)
    assert '<th style="text-align:left">a</th>' in html and '<td style="text-align:right">2</td>' in html
    assert "<pre><code>if a &lt; b:\n    print('&lt;tag&gt;')\n</code></pre>" in html
    assert "<li><strong>two</strong></li>" in html and "<blockquote>" in html and "<code>code</code>" in html
    assert "<h1>Title</h1>" in html and "<s>gone</s>" in html


def test_sanitizer_alone_strips_what_markdown_would_never_emit():
    dirty = (
        '<p style="position:fixed" onclick="x()">hi</p><script>alert(1)</script><img src=x onerror=alert(1)>'
        '<a href="javascript:alert(1)">a</a><a href="https://ok.example" onmouseover="x()">ok</a>'
        '<table><tr><td style="text-align:right;background:url(x)">c</td></tr></table>'
    )
    clean = sanitize_html(dirty)
    assert "<p>hi</p>" in clean
    assert "script" not in clean and "alert" not in clean and "<img" not in clean
    assert "onclick" not in clean and "onmouseover" not in clean and "position" not in clean
    assert '<a href="https://ok.example" target="_blank" rel="noopener nofollow">ok</a>' in clean
    assert '<td style="text-align:right">c</td>' in clean


def test_empty_input_renders_nothing():
    assert render_markdown("") == "" and render_markdown(None) == ""
