"""The built wheel is complete: installed alone into a fresh virtualenv, the demo serves every page.

The editable install of the checkout hides missing package data (the files are read from the
source tree), so this builds the wheel, installs it into a new virtualenv and runs it from
outside the tree. The new virtualenv borrows ``.venv``'s third-party packages through a
``.pth`` line: a path listed there is appended to ``sys.path``, but the ``.pth`` files inside
it (the editable install's finder among them) are not processed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.deps import SESSION_COOKIE

ROOT = Path(__file__).resolve().parents[1]
# What a build reads; caches, virtualenvs and earlier build output stay behind.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".gpuledger", "__pycache__", "*.egg-info", "*_cache", "build", "dist", "*.db*"
)
START_POLLS = 600  # x 0.2 s: the demo migrates, then starts listening
DATA_POLLS = 300  # x 0.2 s: then its backfill and bill import land
METRICS_TOKEN = "wheel-test-scrape-token"  # /metrics takes this, not an API key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the checkout (an in-tree build would write build/)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "src"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    out = base / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(source),
        ],  # the dev extras bring setuptools and wheel: no network
        check=True,
        cwd=base,
    )
    [built] = out.glob("gpuledger-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with only the wheel installed, seeing ``.venv``'s dependencies."""
    env = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", str(wheel)],
        check=True,
    )  # fmt: skip
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "gpuledger_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env


def test_wheel_holds_the_data_templates_and_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {"app/billing/data/pricebook.csv", "migrations/env.py", "migrations/script.py.mako"}
    # The agent's committed gRPC modules: installing needs no code generation.
    wanted |= {f"agent/proto/podresources/v1/{m}.py" for m in ("api_pb2", "api_pb2_grpc")}
    wanted |= {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "app").rglob("*")
        if p.is_file() and "templates" in p.relative_to(ROOT).parts
    }
    wanted |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "migrations/versions").glob("*.py")}
    assert len(wanted) > 6
    assert sorted(wanted - names) == []


def _run_installed(fresh: Path, cwd: Path, code: str) -> Any:
    """Run ``code`` (it prints JSON) with the fresh virtualenv's Python outside the tree."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(fresh / "bin" / "python"), "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_installed_package_is_the_wheel(fresh: Path, tmp_path: Path) -> None:
    found = _run_installed(
        fresh,
        tmp_path,
        "import json, app, migrations, app.billing.catalog as c; print(json.dumps({"
        "'app': app.__file__, 'migrations': migrations.__file__,"
        "'prices': len(c.shipped_pricebook())}))",
    )
    assert Path(found["app"]).is_relative_to(fresh)
    assert Path(found["migrations"]).is_relative_to(fresh)
    assert found["prices"] > 0


def _pages(fresh: Path, cwd: Path) -> list[str]:
    """The installed app's GET routes that OpenAPI leaves out: the web pages, /docs and the
    like (the app's own routes and the web router's), without path parameters."""
    paths: list[str] = _run_installed(
        fresh,
        cwd,
        "import json; from starlette.routing import Route; from app.main import create_app; "
        "from app.web.router import router as web; "
        "routes = [*create_app(embedded_jobs=False).routes, *web.routes]; "
        "print(json.dumps(sorted({r.path for r in routes if isinstance(r, Route) "
        "and 'GET' in (r.methods or ()) and not r.include_in_schema and '{' not in r.path})))",
    )
    return paths


def _query(param: dict[str, Any], window: tuple[str, str]) -> str:
    """A value for a required query parameter, from its name and schema."""
    name, schema = param["name"], param.get("schema", {})
    if name in ("from", "to"):
        return window[0] if name == "from" else window[1]
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("type") == "integer":
        return "1"
    raise AssertionError(f"no test value for required query parameter {name!r}: add one here")


def _get_routes(spec: dict[str, Any], window: tuple[str, str]) -> list[tuple[str, dict[str, str]]]:
    """Every GET route without path parameters, with its required query parameters."""
    routes = []
    for path, ops in spec["paths"].items():
        op = ops.get("get")
        if op is None or "{" in path:
            continue
        params = {
            p["name"]: _query(p, window)
            for p in op.get("parameters", [])
            if p["in"] == "query" and p.get("required")
        }
        routes.append((path, params))
    return routes


@pytest.fixture
def demo(fresh: Path, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """``gpuledger demo`` from the fresh virtualenv, outside the source tree; (url, key, log)."""
    data_dir = tmp_path / "data"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["GPULEDGER_METRICS_TOKEN"] = METRICS_TOKEN
    log_path = tmp_path / "demo.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(fresh / "bin" / "gpuledger"), "demo", "--port", str(port),
             "--data-dir", str(data_dir)],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(START_POLLS):
                if proc.poll() is not None or _answers(url + "/healthz"):
                    break
                time.sleep(0.2)
            assert proc.poll() is None, log_path.read_text()
            assert _answers(url + "/healthz"), log_path.read_text()
            yield url, (data_dir / "demo-admin-key").read_text().strip(), log_path
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _latest_sample(client: httpx.Client) -> str | None:
    nodes = client.get("/api/v1/nodes").json()["items"]
    seen = [n["last_seen"] for n in nodes if n["last_seen"] is not None]
    return max(seen) if seen else None


def _get(
    client: httpx.Client, path: str, params: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[int | str, str]:
    """(status, body) of a GET, or the transport error where the server gave no answer."""
    try:
        r = client.get(path, params=params, headers=headers)
    except httpx.TransportError as e:
        return repr(e), ""
    return r.status_code, r.text


def test_installed_demo_serves_every_page_and_api(
    fresh: Path, tmp_path: Path, demo: tuple[str, str, Path]
) -> None:
    url, key, log = demo
    pages = _pages(fresh, tmp_path)
    assert {"/", "/login", "/docs", "/openapi.json"} <= set(pages)
    with httpx.Client(base_url=url, timeout=30) as client:
        signed_in = client.post("/login", data={"api_key": key, "next": "/"})
        assert signed_in.status_code == 303, signed_in.text
        cookie = {"Cookie": f"{SESSION_COOKIE}={signed_in.cookies[SESSION_COOKIE]}"}
        answers = {p: _get(client, p, {}, cookie) for p in pages}
        failed = {p: a for p, a in answers.items() if a[0] != 200}
        assert failed == {}, log.read_text()[-3000:]
        assert "<html" in answers["/"][1].lower()

        client.headers["Authorization"] = f"Bearer {key}"
        # The costs window comes from the demo's own data, not from this machine's clock.
        latest = None
        for _ in range(DATA_POLLS):
            latest = _latest_sample(client)
            if latest is not None:
                break
            time.sleep(0.2)
        assert latest is not None
        end = datetime.fromisoformat(latest) + timedelta(minutes=1)
        window = ((end - timedelta(days=1)).isoformat(), end.isoformat())
        routes = _get_routes(json.loads(answers["/openapi.json"][1]), window)
        assert {"/api/v1/costs", "/api/v1/pricebook", "/api/v1/gpus", "/api/v1/nodes"} <= {
            p for p, _ in routes
        }
        scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        answers = {
            path: _get(client, path, params, scrape if path == "/metrics" else None)
            for path, params in routes
        }
        failed = {p: a for p, a in answers.items() if a[0] != 200}
        assert failed == {}, log.read_text()[-3000:]
        assert json.loads(answers["/api/v1/pricebook"][1])
