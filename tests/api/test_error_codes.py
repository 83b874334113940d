"""Every problem `code` the server can answer is listed in the table of docs/api.md, and the table
lists nothing the server never says.

Codes are collected from the source with `ast`: any call whose callee (a function or a class) has a
parameter named `code` and gets a string literal there, the `code = "..."` attribute of exception
classes that carry a `status_code` and are raised somewhere (bases stand for their kinds), and the
codes the error handlers give framework errors. (Provider error codes are a failed generation's
`error.code`, not problem codes.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from imagestudio.kit import errors

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "imagestudio"
API_DOC = ROOT / "docs" / "api.md"
_KEYWORD_ONLY = 1_000_000


def _modules() -> list[ast.Module]:
    # Provider errors end up as a failed generation's `error.code`, never as a problem document; the
    # OpenAI-compatible API answers in OpenAI's error format with OpenAI's codes.
    outside = {"providers", "openai_api"}
    paths = [path for path in sorted(SOURCE.rglob("*.py")) if not outside & set(path.relative_to(SOURCE).parts)]
    return [ast.parse(path.read_text(), str(path)) for path in paths]


def _code_positions(modules: list[ast.Module]) -> dict[str, int]:
    """Callable name -> position of its `code` parameter among the call's positional arguments."""
    positions: dict[str, int] = {}
    for module in modules:
        for node in ast.walk(module):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                        position = _code_position(item, skip=1)  # without self
                        if position is not None:
                            positions[node.name] = position
            elif isinstance(node, ast.FunctionDef) and node.name != "__init__":
                position = _code_position(node, skip=0)
                if position is not None:
                    positions[node.name] = position
    return positions


def _code_position(function: ast.FunctionDef, skip: int) -> int | None:
    names = [arg.arg for arg in function.args.args][skip:]
    if "code" in names:
        return names.index("code")
    if "code" in [arg.arg for arg in function.args.kwonlyargs]:
        return _KEYWORD_ONLY
    return None


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _class_attributes(node: ast.ClassDef) -> dict[str, str | None]:
    return {
        target.id: _literal(item.value)
        for item in node.body
        if isinstance(item, ast.Assign)
        for target in item.targets
        if isinstance(target, ast.Name)
    }


def codes_in_source() -> set[str]:
    modules = _modules()
    positions = _code_positions(modules)
    codes: set[str] = set(errors._STATUS_CODES.values())  # framework errors (404, 405, 422, ...)
    called: set[str] = set()
    bases: set[str] = set()
    http_classes: dict[str, str] = {}
    for module in modules:
        for node in ast.walk(module):
            if isinstance(node, ast.Call) and (name := _callee(node)):
                called.add(name)
                if name in positions:
                    position = positions[name]
                    found = [_literal(node.args[position])] if len(node.args) > position else []
                    found += [_literal(keyword.value) for keyword in node.keywords if keyword.arg == "code"]
                    codes.update(code for code in found if code)
            elif isinstance(node, ast.ClassDef):
                bases.update(base.id for base in node.bases if isinstance(base, ast.Name))
                attributes = _class_attributes(node)
                if "status_code" in attributes and (code := attributes.get("code")):
                    http_classes[node.name] = code
    # A base class stands for its kinds; only the kinds are raised.
    return codes | {code for name, code in http_classes.items() if name in called and name not in bases}


def codes_in_docs() -> set[str]:
    text = API_DOC.read_text()
    table = text[text.index("| status | code | meaning |") :]
    table = table[: table.index("\n\n")]
    rows = [line.split("|")[2] for line in table.splitlines()[2:]]
    return {code for row in rows for code in re.findall(r"`([a-z_]+)`", row)}


def test_the_collector_sees_codes_raised_every_way() -> None:
    codes = codes_in_source()
    # ApiError positional, a helper with a code parameter, a class attribute, the TooMany and Invalid kinds.
    assert {"invalid_credentials", "upload_too_large", "invalid_generation_state"} <= codes
    assert {"too_many_attempts", "rate_limited", "content_rejected", "login_required"} <= codes


def test_every_code_the_server_answers_is_in_the_docs_table() -> None:
    missing = codes_in_source() - codes_in_docs()
    assert not missing, f"add to the code table of docs/api.md: {sorted(missing)}"


def test_the_docs_table_lists_only_codes_the_server_answers() -> None:
    stale = codes_in_docs() - codes_in_source()
    assert not stale, f"docs/api.md lists codes nothing raises: {sorted(stale)}"
