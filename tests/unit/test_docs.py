"""The README stays a front page and the docs stay true to each other and to the code.

The README is at most ``README_MAX_LINES`` lines (the rest lives in ``docs/``, one page per
reader); every relative link of the README and of ``docs/*.md`` names a file that exists and,
when it has a ``#fragment``, a heading of that file; every source file (``api/app.py``) and
module (``api.errors.ApiError``) the pages name in code spans exists, so moving code cannot
leave the docs behind; and the configuration table of ``docs/operations.md`` names every
setting exactly once, with the defaults the code has (it once said
``MEDIO_PROJECTOR_BATCH_SIZE`` 500 while the code used 2000).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from adapters.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
OPERATIONS = ROOT / "docs" / "operations.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)
EXTERNAL = ("http://", "https://", "mailto:")
CODE_SPAN = re.compile(r"`([^`\s]+)`")
SOURCE_FILE = re.compile(r"[\w./]*/\w+\.py")  # api/app.py, e2e/test_cors.py (under tests/)
MODULE = re.compile(r"[a-z_]+(?:\.\w+)+")  # api.errors, domain.catalog.json_integer
PACKAGES = ("adapters", "api", "bench", "domain", "medio", "projections", "services", "workers")
# A configuration row: | `MEDIO_X` / `MEDIO_Y` | default | meaning |
CONFIG_ROW = re.compile(r"^\| (`MEDIO_[A-Z_]+`(?:(?: / |, )`MEDIO_[A-Z_]+`)*) \|", re.MULTILINE)
# A row naming one variable with one plain default: | `MEDIO_X` | `value` | meaning |
SINGLE_DEFAULT = re.compile(r"^\| `MEDIO_([A-Z_]+)` \| `([^`]+)` \|", re.MULTILINE)


def prose(page: Path) -> str:
    """The page without its fenced code blocks (a ``[x](y)`` in code is not a link)."""
    return FENCE.sub("", page.read_text(encoding="utf-8"))


def anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lower case, punctuation dropped, spaces to ``-``."""
    text = re.sub(r"[^\w\- ]", "", heading.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: Counter[str] = Counter()
    found = set()
    for heading in HEADING.findall(prose(page)):
        slug = anchor(heading)
        found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return found


def test_the_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines"


def test_the_anchor_of_a_heading_is_githubs() -> None:
    assert anchor("Safe retries: `Idempotency-Key`") == "safe-retries-idempotency-key"
    assert anchor("`medio dev` and its data dir") == "medio-dev-and-its-data-dir"
    assert anchor("How to add …") == "how-to-add-"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_points_at_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for target in LINK.findall(prose(page)):
        if target.startswith(EXTERNAL):
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked.relative_to(ROOT)}")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading #{fragment}")
    assert broken == []


def named_code(span: str) -> str | None:
    """What is wrong with the file or module a code span names, or ``None``."""
    if SOURCE_FILE.fullmatch(span):
        found = (ROOT / span).exists() or (ROOT / "tests" / span).exists()
        return None if found else f"{span}: no such file"
    if not MODULE.fullmatch(span) or span.split(".")[0] not in PACKAGES:
        return None
    parts = span.split(".")
    for end in range(len(parts), 1, -1):  # the longest prefix that is a module in a package
        module = ROOT.joinpath(*parts[:end])
        source = module.with_suffix(".py") if module.with_suffix(".py").exists() else None
        if source is None and (module / "__init__.py").exists():
            source = module / "__init__.py"
        if source is not None:
            text = source.read_text(encoding="utf-8")
            absent = [name for name in parts[end:] if not re.search(rf"\b{name}\b", text)]
            return f"{span}: {source.relative_to(ROOT)} has no {absent[0]}" if absent else None
    return f"{span}: no such module"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_file_and_module_named_exists(page: Path) -> None:
    spans = CODE_SPAN.findall(page.read_text(encoding="utf-8"))
    wrong = [problem for span in spans if (problem := named_code(span.split("(")[0]))]
    assert wrong == []


def test_a_moved_module_is_noticed() -> None:
    assert named_code("api/app.py") is None
    assert named_code("e2e/test_cors.py") is None
    assert named_code("api.errors.ApiError") is None
    assert named_code("api/nowhere.py") == "api/nowhere.py: no such file"
    assert named_code("api.errors.Nowhere") == "api.errors.Nowhere: api/errors.py has no Nowhere"
    assert named_code("api.nowhere") == "api.nowhere: no such module"


def test_the_readme_links_every_doc() -> None:
    linked = {target.partition("#")[0] for target in LINK.findall(prose(README))}
    assert {f"docs/{page.name}" for page in PAGES[1:]} <= linked


def test_every_setting_is_in_the_configuration_table_once() -> None:
    rows = CONFIG_ROW.findall(OPERATIONS.read_text(encoding="utf-8"))
    named = Counter(re.findall(r"`MEDIO_([A-Z_]+)`", " ".join(rows)))
    settings = {field.upper() for field in Settings.__struct_fields__}
    assert set(named) == settings
    assert [name for name, count in named.items() if count > 1] == []


def test_every_single_default_in_the_table_is_the_codes() -> None:
    rows = SINGLE_DEFAULT.findall(OPERATIONS.read_text(encoding="utf-8"))
    assert len(rows) >= 8
    defaults = msgspec.structs.asdict(Settings())
    wrong = {}
    for name, stated in rows:
        key = name.lower()
        if defaults.get(key) is None:
            continue  # one whose default is computed (the data dir's) or unset
        expected = defaults[key]
        read = msgspec.convert(stated, type(expected), strict=False)
        if read != expected:
            wrong[f"MEDIO_{name}"] = (stated, expected)
    assert wrong == {}
