"""docs/api.md is what `make docs` would write from today's datamodel."""

import os

from hostagent import docgen
from hostagent.datamodel.api import build_api

API_MD = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "api.md")


def test_api_md_is_current():
    expected = docgen.render(build_api())
    try:
        with open(API_MD, encoding="utf-8") as f:
            current = f.read()
    except FileNotFoundError:
        current = None
    assert current is not None, "docs/api.md is missing: run `make docs`"
    assert current == expected, "docs/api.md is stale (the datamodel changed): run `make docs`"


def test_render_is_deterministic():
    assert docgen.render(build_api()) == docgen.render(build_api())


def test_check_mode(tmp_path, capsys):
    out = tmp_path / "api.md"
    assert docgen.main(["--check", "--output", str(out)]) == 1
    assert "make docs" in capsys.readouterr().err
    assert docgen.main(["--output", str(out)]) == 0
    assert docgen.main(["--check", "--output", str(out)]) == 0
    out.write_text(out.read_text() + "edited\n")
    assert docgen.main(["--check", "--output", str(out)]) == 1
