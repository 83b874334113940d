"""The built-in UI composer: a deterministic page from the words of the request, which iterations
really change."""

from __future__ import annotations

from PIL import Image

from imagestudio.uicode.brief import ACCENTS, read_brief
from imagestudio.uicode.composer import GENERATOR, compose, title_of
from imagestudio.uicode.document import clean_document
from imagestudio.uicode.writer import compose_builtin


def test_sections_come_from_the_words() -> None:
    assert read_brief(["A login form for our app"]).sections == ["login"]
    assert read_brief(["a pricing table for a coffee shop"]).sections == ["pricing"]
    assert read_brief(["an analytics dashboard with a table of orders"]).sections == ["navbar", "dashboard", "table"]
    landing = read_brief(["a landing page for a yoga studio with testimonials and a faq"])
    assert landing.sections == ["navbar", "hero", "features", "testimonials", "faq", "footer"]
    assert landing.subject == "Yoga Studio"
    assert read_brief(['a card called "Mina"']).subject == "Mina"
    assert read_brief(["something nice"]).sections == ["cards"]


def test_iterations_change_the_look_and_the_sections() -> None:
    first = ["a landing page for a bakery"]
    then = [*first, "dark theme", "make the buttons larger", "without the footer", "in green, rounded"]
    before, after = read_brief(first), read_brief(then)
    assert (before.dark, before.button_step, before.accent) == (False, 0, ACCENTS["indigo"])
    assert (after.dark, after.button_step, after.accent, after.radius) == (True, 1, ACCENTS["green"], 18)
    assert "footer" in before.sections and "footer" not in after.sections
    assert read_brief([*then, "light theme please"]).dark is False
    old, new = compose(before), compose(after)
    assert "--bg: #f8fafc" in old and "--bg: #0f172a" in new
    assert "--button-size: 15px" in old and "--button-size: 18px" in new
    assert '<footer id="footer">' in old and '<footer id="footer">' not in new


def test_the_page_is_deterministic_self_contained_and_labelled() -> None:
    words = ["a signup form and pricing for a tea shop", "dark theme"]
    html = compose(read_brief(words))
    assert html == compose(read_brief(words))
    assert f'<meta name="generator" content="{GENERATOR}">' in html
    assert clean_document(html).removed_references == 0
    assert "Create your Tea Shop account" in html and "Tea Shop pricing" in html
    assert title_of(read_brief(words)) == "Tea Shop: sign-up form, pricing, dark theme"


def test_words_are_escaped() -> None:
    html = compose(read_brief(['a card called "<script>alert(1)</script>"']))
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html


def test_an_image_lends_its_colour_and_brightness() -> None:
    draft = compose_builtin([], Image.new("RGB", (80, 60), (20, 30, 40)))
    assert draft.by_ai is False and draft.model == "ui-composer"
    assert "--bg: #0f172a" in draft.html  # a dark picture: a dark page
    red = compose_builtin(["a card"], Image.new("RGB", (80, 60), (220, 40, 60)))
    accent = red.html.split("--accent: ")[1][:7]
    assert int(accent[1:3], 16) > 180 and int(accent[3:5], 16) < 90
