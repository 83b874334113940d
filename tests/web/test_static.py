"""The front end has no build step, so what a bundler would catch is checked here: module imports that
resolve, names that exist, nothing a strict CSP refuses, nothing that parses text as HTML, and CSS variables
that are defined."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imagestudio.web.routes import STATIC_DIR, TEMPLATES_DIR
from tests.web.htmlcheck import read_page

JS_DIR = STATIC_DIR / "js"
CSS_DIR = STATIC_DIR / "css"
JS_FILES = sorted(JS_DIR.rglob("*.js"))
CSS_FILES = sorted(CSS_DIR.rglob("*.css"))
TEMPLATES = sorted(TEMPLATES_DIR.glob("*.html"))
MAX_LINES = 800

IMPORT = re.compile(r"""import\s*(?:\{([^}]*)\}\s*from\s*)?["'](\.{1,2}/[^"']+)["']""", re.S)
EXPORT = re.compile(r"export\s+(?:async\s+)?(?:function\*?|class|const|let)\s+([A-Za-z_$][\w$]*)")
DYNAMIC_IMPORT = re.compile(r"""import\(\s*["'`]([^"'`]+)["'`]\s*\)""")
UNSAFE_JS = {
    "innerHTML": re.compile(r"\.innerHTML\b"),
    "outerHTML": re.compile(r"\.outerHTML\b"),
    "insertAdjacentHTML": re.compile(r"insertAdjacentHTML"),
    "document.write": re.compile(r"document\.write"),
    "eval": re.compile(r"\beval\("),
    "new Function": re.compile(r"new\s+Function\("),
    "style attribute": re.compile(r"""setAttribute\(\s*["']style["']"""),
    "string timers": re.compile(r"""set(?:Timeout|Interval)\(\s*["'`]"""),
}


def relative(path: Path) -> str:
    return str(path.relative_to(STATIC_DIR.parent))


def test_there_is_a_front_end_to_check() -> None:
    assert len(JS_FILES) >= 15 and len(CSS_FILES) >= 5 and len(TEMPLATES) >= 6


@pytest.mark.parametrize("path", JS_FILES, ids=relative)
def test_module_imports_resolve_to_exported_names(path: Path) -> None:
    source = path.read_text()
    for names, target in IMPORT.findall(source):
        imported = (path.parent / target).resolve()
        assert imported.is_file(), f"{relative(path)} imports missing {target}"
        exported = set(EXPORT.findall(imported.read_text()))
        for name in filter(None, (part.strip() for part in names.split(","))):
            original = name.split(" as ")[0].strip()
            assert original in exported, f"{relative(path)} imports {original} that {target} does not export"


def test_every_page_module_the_entry_point_loads_exists() -> None:
    entry = (JS_DIR / "app.js").read_text()
    pages = set()
    for block in re.findall(r"new Set\(\[([^\]]*)\]\)", entry):
        pages.update(re.findall(r'"([a-z]+)"', block))
    assert {"landing", "session", "settings", "admin", "login", "setup", "signup"} <= pages
    for target in DYNAMIC_IMPORT.findall(entry):
        if "${" in target:
            continue
        assert (JS_DIR / target).resolve().is_file(), target
    for page in pages - {"login", "setup", "signup"}:
        module = JS_DIR / "pages" / f"{page}.js"
        assert module.is_file(), module
        assert "export async function start" in module.read_text()
    assert "export async function start" in (JS_DIR / "pages" / "auth.js").read_text()


@pytest.mark.parametrize("path", JS_FILES, ids=relative)
def test_scripts_never_parse_strings_as_code_or_markup(path: Path) -> None:
    source = path.read_text()
    found = [name for name, pattern in UNSAFE_JS.items() if pattern.search(source)]
    assert found == [], f"{relative(path)} uses {found}"


@pytest.mark.parametrize("path", [*JS_FILES, *CSS_FILES, *TEMPLATES], ids=relative)
def test_files_stay_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: path.name)
def test_templates_have_nothing_inline(path: Path) -> None:
    facts = read_page(path.read_text())
    assert facts.inline_problems == []
    assert all(script.get("src") for script in facts.scripts)


def test_css_uses_only_defined_custom_properties() -> None:
    defined: set[str] = set()
    used: dict[str, str] = {}
    for path in CSS_FILES:
        text = path.read_text()
        assert text.count("{") == text.count("}"), f"unbalanced braces in {relative(path)}"
        defined.update(re.findall(r"(--[\w-]+)\s*:", text))
        for name in re.findall(r"var\((--[\w-]+)", text):
            used.setdefault(name, relative(path))
    missing = {name: where for name, where in used.items() if name not in defined}
    assert missing == {}


def test_both_themes_define_the_same_colours() -> None:
    base = (CSS_DIR / "base.css").read_text()
    blocks = re.findall(r"(:root(?:\[data-theme=\"dark\"\]|:not\(\[data-theme=\"light\"\]\))?)\s*\{([^}]*)\}", base)
    palettes = {selector: set(re.findall(r"(--[\w-]+)\s*:", body)) for selector, body in blocks}
    light = palettes[":root"]
    colour_tokens = {name for name in light if not name.startswith(("--space", "--radius", "--font", "--topbar"))}
    for selector in (':root[data-theme="dark"]', ':root:not([data-theme="light"])'):
        assert colour_tokens <= palettes[selector], selector
