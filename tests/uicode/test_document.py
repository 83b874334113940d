"""The document a UI generation stores: found in a model's answer, refused when it is not one page,
and cut off from the network."""

from __future__ import annotations

import pytest

from imagestudio.language import LanguagePermanentError
from imagestudio.models.limits import UI_CODE_MAX_BYTES
from imagestudio.uicode.document import clean_document, extract_document

PAGE = "<!doctype html><html><head><title>t</title></head><body><p>hi</p></body></html>"


@pytest.mark.parametrize(
    "answer",
    [
        f"Sure! Here it is:\n```html\n{PAGE}\n```\nEnjoy.",
        f"```\n{PAGE}\n```",
        f"The page: {PAGE} -- done",
        PAGE,
    ],
)
def test_the_document_is_found_in_the_answer(answer: str) -> None:
    assert extract_document(answer) == PAGE


def test_the_longest_fenced_block_wins() -> None:
    answer = f"```html\n<p>a snippet</p>\n```\nand the page:\n```html\n{PAGE}\n```"
    assert extract_document(answer) == PAGE


def test_every_network_reference_is_removed_and_counted() -> None:
    document = clean_document(
        "<html><head>"
        '<link rel="stylesheet" href="https://cdn.example/a.css">'
        '<link rel="icon" href="data:image/png;base64,AA">'
        '<base href="https://evil.example/">'
        '<meta http-equiv="refresh" content="0; url=https://evil.example/">'
        "<style>@import url('https://fonts.example/f.css'); body { background: url(https://x.example/b.png) }"
        " .ok { background: url(data:image/png;base64,AA) }</style>"
        "</head><body>"
        '<img src="https://x.example/a.png" srcset="https://x.example/b.png 2x" alt="a">'
        '<img src=data:image/png;base64,AA alt="kept">'
        '<a href="https://example.com">out</a><a href="#top">in</a><a href="mailto:a@example.com">mail</a>'
        '<form action="https://collect.example/"><button formaction="/steal">go</button></form>'
        '<div style="background-image: url(//x.example/c.png)">s</div>'
        '<script src="https://cdn.example/app.js"></script>'
        '<script>const u = new URL("https://example.com"); fetch("/api/v1/me");</script>'
        "</body></html>"
    )
    html = document.html
    assert "example" not in html.replace('https://example.com")', "").replace("a@example.com", "")
    assert 'href="data:image/png;base64,AA"' in html and "src=data:image/png;base64,AA" in html
    assert 'href="#top"' in html and 'href="mailto:a@example.com"' in html and '<a href="#">out</a>' in html
    assert "url(data:image/png;base64,AA)" in html and 'new URL("https://example.com")' in html
    # link, base, meta refresh, @import, two url(), src, srcset, href, action, formaction, script src
    assert document.removed_references == 12
    assert html.startswith("<!doctype html>\n<html>")


def test_a_fragment_becomes_a_whole_document() -> None:
    document = clean_document('<main class="card"><h1>Hi</h1></main>')
    assert document.html.startswith('<!doctype html>\n<html lang="en">') and "<h1>Hi</h1>" in document.html
    assert document.removed_references == 0


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("I cannot draw that.", "no HTML"),
        (PAGE + PAGE, "more than one HTML document"),
        ("<p>" + "x" * UI_CODE_MAX_BYTES + "</p>", "larger than"),
    ],
)
def test_what_is_not_one_page_is_refused(text: str, why: str) -> None:
    with pytest.raises(LanguagePermanentError) as refused:
        clean_document(text)
    assert refused.value.code == "invalid_ui_code" and why in refused.value.message


def test_a_clean_document_is_stored_as_it_came() -> None:
    document = clean_document(PAGE)
    assert document.html == PAGE and document.removed_references == 0
    assert len(document.sha256) == 64
