"""The README's configuration table states the defaults the code has (issue 15, L16: it said
``MEDIO_PROJECTOR_BATCH_SIZE`` 500 while the code used 2000)."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from adapters.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
# A row naming one variable with one plain default: | `MEDIO_X` | `value` | meaning |
ROW = re.compile(r"^\| `MEDIO_([A-Z_]+)` \| `([^`]+)` \|", re.MULTILINE)


def test_every_single_default_in_the_readme_is_the_codes() -> None:
    rows = ROW.findall(README.read_text())
    assert len(rows) >= 8
    defaults = msgspec.structs.asdict(Settings())
    wrong = {}
    for name, stated in rows:
        key = name.lower()
        if defaults.get(key) is None:
            continue  # not a setting, or one whose default is computed (the data dir's)
        expected = defaults[key]
        read = msgspec.convert(stated, type(expected), strict=False)
        if read != expected:
            wrong[f"MEDIO_{name}"] = (stated, expected)
    assert wrong == {}
