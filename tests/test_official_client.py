"""The original ``botwire==0.2.1`` client from PyPI, unchanged, against a real server.

The client lives in its own virtualenv under ``.cache/`` at the repository root (kept between
runs, rebuilt when broken), so it never mixes with this repository's ``botwire`` package. It
reads ``BOTWIRE_URL`` at import time, which points it at a real ``botwire serve`` process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from server_process import ServerProcess, clean_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".cache" / "official-botwire-0.2.1"
PYTHON = VENV / "bin" / "python"
CHECK = "import botwire, httpx; assert botwire.__version__ == '0.2.1', botwire.__version__"


def _works() -> bool:
    if not PYTHON.exists():
        return False
    done = subprocess.run(
        [str(PYTHON), "-I", "-c", CHECK], capture_output=True, timeout=60, cwd=VENV
    )
    return done.returncode == 0


@pytest.fixture(scope="module")
def official_python() -> Path:
    if not _works():
        shutil.rmtree(VENV, ignore_errors=True)
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
        install = subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "--quiet", "botwire==0.2.1"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert install.returncode == 0, install.stdout + install.stderr
        assert _works(), "botwire==0.2.1 installed but does not import"
    return PYTHON


SCRIPT = textwrap.dedent(
    """
    import json
    from botwire import Memory

    m = Memory("compat")
    out = {}
    m.set("name", "Pedro")
    out["name"] = m.get("name")
    m.set("prefs", {"lang": "python", "tags": ["a", "b"], "n": 1.5})
    out["prefs"] = m.get("prefs")
    m.set("history", [{"role": "user", "content": "hi é"}])
    out["history"] = m.get("history")
    m.set("count", 5)
    out["count"] = m.get("count")
    m.set("name", "Ana")
    out["renamed"] = m.get("name")
    out["missing"] = m.get("missing", "fallback")
    out["contains"] = ["name" in m, "missing" in m]
    out["keys"] = m.keys()
    out["deleted"] = m.delete("count")
    out["after_delete"] = m.get("count")
    out["deleted_again"] = m.delete("count")
    print(json.dumps(out))
    """
)


def test_official_client_round_trip(official_python: Path, tmp_path: Path) -> None:
    with ServerProcess(f"sqlite:///{tmp_path / 'botwire.db'}") as server:
        done = subprocess.run(
            # -I and another directory: this repository's own ``botwire`` package must not
            # shadow the installed one.
            [str(official_python), "-I", "-c", SCRIPT],
            env=clean_env({"BOTWIRE_URL": server.url}),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["name"] == "Pedro" and out["renamed"] == "Ana"
        # The old client sends dicts and lists as JSON text and decodes them on the way back.
        assert out["prefs"] == {"lang": "python", "tags": ["a", "b"], "n": 1.5}
        assert out["history"] == [{"role": "user", "content": "hi é"}]
        # ... and numbers as JSON text too, which it does not decode: "5" comes back.
        assert out["count"] == "5"
        assert out["missing"] == "fallback"
        assert out["contains"] == [True, False]
        assert (out["deleted"], out["after_delete"], out["deleted_again"]) == (True, None, False)
        # keys() returns the list route's "keys" as they are: one object per key.
        listed = httpx.get(f"{server.url}/memory/compat").json()["keys"]
        assert [k["key"] for k in out["keys"]] == ["count", "history", "name", "prefs"]
        assert [k["key"] for k in listed] == ["history", "name", "prefs"]
        assert {k["key"]: k["version"] for k in out["keys"]}["name"] == 5
        # What the server holds is exactly what the old client sent: a JSON string.
        stored = httpx.get(f"{server.url}/memory/compat/prefs").json()["value"]
        assert isinstance(stored, str) and json.loads(stored)["lang"] == "python"


# Every key without '/', '?', '#' or '%' works through the old client, which puts it in the
# URL as it is (httpx encodes only what a path cannot hold: spaces, non-ASCII).
NAMES_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from botwire import Memory

    keys = json.loads(sys.argv[1])
    m = Memory("team:1 🙂")
    out = {}
    for i, key in enumerate(keys):
        m.set(key, {"i": i})
        out[key] = [m.get(key), key in m]
    out["__keys__"] = [k["key"] for k in m.keys()]
    out["__deleted__"] = m.delete(keys[0])
    print(json.dumps(out))
    """
)

OFFICIAL_KEYS = [
    "user:42",
    "alice@example.com",
    "two words",
    "café",
    "🙂",
    "a+b",
    "k;v=1,w=2",
    "it's (here)!",
    "[x]",
    "~tilde*star$",
    ".env",
    "x" * 1024,
]


def test_official_client_with_any_key(official_python: Path, tmp_path: Path) -> None:
    with ServerProcess(f"sqlite:///{tmp_path / 'botwire.db'}") as server:
        done = subprocess.run(
            [str(official_python), "-I", "-c", NAMES_SCRIPT, json.dumps(OFFICIAL_KEYS)],
            env=clean_env({"BOTWIRE_URL": server.url}),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        for i, key in enumerate(OFFICIAL_KEYS):
            assert out[key] == [{"i": i}, True], key
        assert out["__keys__"] == sorted(OFFICIAL_KEYS)
        assert out["__deleted__"] is True
        # The server holds exactly those names, as our client reads them back.
        ns = quote("team:1 🙂", safe="")
        listed = httpx.get(f"{server.url}/memory/{ns}").json()
        assert listed["namespace"] == "team:1 🙂"
        assert [k["key"] for k in listed["keys"]] == sorted(OFFICIAL_KEYS[1:])
