"""The wheel ships agents, tables and web inside the persona namespace, with its data files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_maps_the_top_level_folders_into_persona(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps",
                    "-q", "-w", str(tmp_path)], check=True, cwd=tmp_path)
    [wheel] = tmp_path.glob("persona-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("persona/events.py", "persona/agents/app.py", "persona/tables/state.py",
                     "persona/web/views.py", "persona/web/static/index.html", "persona/default_rules.json"):
        assert expected in names
    assert not any(n.startswith(("tables/", "agents/", "web/")) for n in names), "no top-level tables package"

    # Imported from the wheel alone (the worker module pulls in every agent, table and view).
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import persona.agents.worker as w, persona.rules as r; "
             "assert w.__file__.startswith(sys.argv[1]), w.__file__; r.load_default_rules(); "
             "import importlib.util; assert importlib.util.find_spec('tables') is None or "
             "not importlib.util.find_spec('tables').origin.startswith(sys.argv[1])")
    subprocess.run([sys.executable, "-c", probe, str(wheel)], check=True, cwd=tmp_path, timeout=120)


def test_editable_install_imports_the_same_modules():
    import persona.agents.app
    import persona.tables.state
    import persona.web.views

    assert Path(persona.tables.state.__file__).parent == REPO / "tables"
    assert Path(persona.web.views.__file__).parent == REPO / "web"
    assert persona.agents.app.app is persona.tables.state.app, "one Faust app"
