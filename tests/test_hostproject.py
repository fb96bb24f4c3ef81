"""The host-project test: a fresh shop that follows the README installs the built wheel and works.

``tests/hostproject/`` is what ``django-admin startproject`` writes, plus a catalogue app with
an item model, plus exactly the blocks the README's "Embedding" section shows (marked
``# readme: begin NAME`` / ``# readme: end NAME``; the README quotes them verbatim, checked
here). The integration test builds the sdist and the wheel from this checkout, installs the
wheel (not the source tree) into a fresh virtual environment, copies the host project out of
the repository and, there, runs ``migrate`` and ``check --deploy``, posts events over HTTP to
``runserver``, runs ``retrain`` and reads a personal list and a similar-items list over HTTP.
"""

from __future__ import annotations

import base64
import importlib.metadata
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[1]
HOST = ROOT / "tests" / "hostproject"
README = ROOT / "README.md"

FILE_BLOCK = re.compile(
    r"^# readme: begin (?P<name>[\w-]+)\n(?P<body>.*?)^# readme: end (?P=name)$", re.S | re.M
)
README_BLOCK = re.compile(
    r"^(?P<indent>[ ]*)<!-- hostproject: (?P<name>[\w-]+) -->\n"
    r"(?P=indent)```python\n(?P<body>.*?)\n(?P=indent)```$",
    re.S | re.M,
)
# A browser's User-Agent: the plugin flags scripts' agents (python-requests, curl...) as bots.
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def host_blocks() -> dict[str, str]:
    """``{name: code}`` of every marked block in the host project's files."""
    blocks: dict[str, str] = {}
    for path in sorted(HOST.rglob("*.py")):
        for match in FILE_BLOCK.finditer(path.read_text()):
            assert match["name"] not in blocks, f"block {match['name']!r} is marked twice"
            blocks[match["name"]] = match["body"].strip("\n")
    return blocks


def readme_blocks() -> dict[str, str]:
    """``{name: code}`` of every block the README quotes from the host project."""
    blocks: dict[str, str] = {}
    for match in README_BLOCK.finditer(README.read_text()):
        indent = len(match["indent"])
        lines = match["body"].split("\n")
        blocks[match["name"]] = "\n".join(line[indent:] for line in lines).strip("\n")
    return blocks


def test_the_readme_shows_the_host_projects_blocks_verbatim():
    # given
    files, readme = host_blocks(), readme_blocks()

    # then: every block of the host project is in the guide, unchanged, and nothing else is
    assert {"settings", "urls", "celery-app", "project-init", "item-model"} <= set(files)
    assert set(readme) == set(files)
    for name, code in files.items():
        assert readme[name] == code, f"README block {name!r} differs from tests/hostproject:\n{code}"


def test_a_host_without_the_item_model_setting_gets_a_check_error_not_a_traceback(tmp_path):
    # given the host project with RECOMMENDER_ITEM_MODEL left out (run from this checkout)
    host = tmp_path / "host"
    shutil.copytree(HOST, host)
    (host / "hostproject" / "forgot.py").write_text(
        "from hostproject.settings import *  # noqa: F403\ndel RECOMMENDER_ITEM_MODEL\n"
    )
    env = _host_env(pythonpath=str(ROOT))

    # when
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--settings", "hostproject.forgot"],
        cwd=host,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    # then
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "(recommendations.E002) RECOMMENDER_ITEM_MODEL must be set" in done.stderr
    assert "before the first migrate" in done.stderr


# --- the installed wheel -----------------------------------------------------------------------------
def _host_env(**extra: str) -> dict[str, str]:
    """The environment of a host process: no trace of the test suite's settings or paths."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTHON"))}
    env.update({"PYTHONUNBUFFERED": "1", **{k.upper(): v for k, v in extra.items()}})
    return env


def _redis_url() -> str:
    """The test's own Redis database for the host's cache (the suite's CACHE_URL when it is Redis)."""
    url = os.environ.get("CACHE_URL", "")
    return url if url.startswith("redis://") else "redis://127.0.0.1:6379/15"


def build_distributions(out: Path) -> tuple[Path, Path]:
    """The sdist and the wheel built from this checkout (the wheel from the sdist)."""
    require_service("the 'build' package (the dev extra)", importlib.util.find_spec("build") is not None)
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


# Installed here for the demo, the tests or the benchmarks, never needed by the plugin: left out of
# the new environment, so that the host shows the package's own dependencies are enough.
NOT_THE_PLUGINS = (
    "psycopg",
    "psycopg-binary",
    "gunicorn",
    "whitenoise",
    "dj-database-url",
    "drf-spectacular-sidecar",
    "psutil",
)


def _entries_of(distributions: tuple[str, ...]) -> set[str]:
    """The top-level names in site-packages that belong to these installed distributions."""
    entries: set[str] = set()
    for name in distributions:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            continue
        entries.update(path.parts[0] for path in files if path.parts and path.parts[0] != "..")
    return entries


def fresh_venv(folder: Path) -> Path:
    """A new virtual environment whose dependencies come from this test's environment.

    Installing torch and the rest again would take minutes and the network; instead the new
    environment sees a folder of links to this environment's installed distributions, minus
    this project itself (its editable install would put the source tree on the path) and minus
    :data:`NOT_THE_PLUGINS`. The package under test is then installed by pip from the wheel.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    deps = folder / "deps"
    deps.mkdir()
    left_out = _entries_of(NOT_THE_PLUGINS)
    here = [Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    for source in here:
        for entry in source.iterdir():
            lowered = entry.name.lower()
            if lowered.startswith(("django_behavior_recommender", "__editable__")) or entry.suffix == ".pth":
                continue
            if entry.name in left_out or (deps / entry.name).exists():
                continue
            (deps / entry.name).symlink_to(entry)
    (site / "dependencies-of-the-test.pth").write_text(f"{deps}\n")
    return python


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(url: str, *, body: object = None, cookie: str = "", auth: str = "") -> tuple[int, dict]:
    headers = {"User-Agent": BROWSER, "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if cookie:
        headers["Cookie"] = cookie
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {"body": error.read().decode(errors="replace")[:2000]}


def _wait_for_server(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"runserver exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"runserver did not answer within {timeout} s")


WHERE_FROM = """
import importlib.util, behavior, recommendations
print(behavior.__file__, recommendations.__file__)
print("importable:", [name for name in {absent!r} if importlib.util.find_spec(name)])
"""

# The synthetic shop: two categories of 12 products; each shopper keeps to one category.
CATEGORIES = {"audio": "AUD", "kitchen": "KIT"}
PRODUCTS_PER_CATEGORY = 12
SEED_CATALOGUE = """
from decimal import Decimal
from django.contrib.auth import get_user_model
from catalogue.models import Category, Product
for slug, prefix in {categories!r}.items():
    category = Category.objects.create(name=slug.title(), slug=slug)
    Product.objects.bulk_create(
        Product(sku=f"{{prefix}}-{{i:02d}}", name=f"{{slug.title()}} {{i}}", category=category,
                price=Decimal("10.00") + i, stock=5)
        for i in range({per})
    )
get_user_model().objects.create_user("alice", password="alice-host-pass")
"""


def shopper_events(rng: random.Random, prefix: str, start: datetime, count: int) -> list[dict]:
    """One shopper's session: views within one category, a cart and sometimes a purchase."""
    favourites = rng.sample(range(PRODUCTS_PER_CATEGORY), 6)
    events = []
    for step in range(count):
        index = favourites[min(int(rng.expovariate(0.6)), len(favourites) - 1)]
        event_type = "view" if step < count - 2 else ("add_to_cart" if step == count - 2 else "purchase")
        events.append(
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "event_type": event_type,
                "item": f"{prefix}-{index:02d}",
                "occurred_at": (start + timedelta(minutes=step)).isoformat(),
            }
        )
    return events


@pytest.mark.integration
@pytest.mark.slow
def test_a_fresh_host_installs_the_wheel_and_recommends(tmp_path):
    require_service("Redis", _redis_reachable())
    import redis

    redis_url = _redis_url()
    redis.Redis.from_url(redis_url).flushdb()

    # given: the distributions of this checkout, holding the two plugin apps and not the demo shop
    sdist, wheel = build_distributions(tmp_path / "dist")
    wheel_names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in wheel_names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"behavior", "recommendations"}
    for expected in (
        "behavior/py.typed",
        "recommendations/py.typed",
        "behavior/static/behavior/beacon.js",
        "recommendations/templates/recommendations/block.html",
        "behavior/migrations/0001_initial_events.py",
        "recommendations/migrations/0001_initial.py",
    ):
        assert expected in wheel_names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in wheel_names)
    with tarfile.open(sdist) as archive:
        sdist_tops = {Path(name).parts[1] for name in archive.getnames() if len(Path(name).parts) > 1}
    # (setuptools adds the top-level tests/test*.py modules to every sdist by its own default)
    assert not {"shop", "bench", "docker", ".ci"} & sdist_tops
    assert {"behavior", "recommendations", "pyproject.toml", "LICENSE", "README.md"} <= sdist_tops

    # and a fresh environment with the wheel installed by pip (offline: no index, nothing to fetch)
    python = fresh_venv(tmp_path / "venv")
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "-c",
            str(ROOT / ".ci" / "constraints.txt"),
            f"{wheel}[redis]",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    # and the host project outside the repository
    host = tmp_path / "shop"
    shutil.copytree(HOST, host)
    broker = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/14"
    env = _host_env(redis_url=redis_url, celery_broker_url=broker)

    def manage(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(python), "manage.py", *args],
            cwd=host,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"manage.py {args[0]}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    # the plugin is imported from the installed wheel
    # (and none of the demo's, the tests' or the Postgres driver's packages is there)
    where = manage("shell", "-c", WHERE_FROM.format(absent=[m.replace("-", "_") for m in NOT_THE_PLUGINS]))
    files = [word for word in where.stdout.split() if word.endswith("__init__.py")]
    assert len(files) == 2 and all(path.startswith(str(tmp_path / "venv")) for path in files), where.stdout
    assert "importable: []" in where.stdout, where.stdout

    # when the host migrates and runs the deployment checks
    manage("migrate", "--noinput")
    deploy = manage("check", "--deploy")

    # then: no error, and only Django's own security warnings, each listed in the embedding guide
    assert "ERRORS:" not in deploy.stderr + deploy.stdout
    warnings = set(re.findall(r"\((\w+\.W\d+)\)", deploy.stderr + deploy.stdout))
    assert warnings and all(w.startswith("security.") for w in warnings), warnings
    documented = (ROOT / "docs" / "embedding.md").read_text()
    assert [w for w in sorted(warnings) if f"`{w}`" not in documented] == []

    # given a catalogue, one registered shopper and the site on a free loopback port
    manage("shell", "-c", SEED_CATALOGUE.format(categories=CATEGORIES, per=PRODUCTS_PER_CATEGORY))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(python), "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=host,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_server(f"{base}/api/items/popular/", server)

        # when anonymous visitors post their events over HTTP (one batch each, their own cookie)
        rng = random.Random(7)
        start = datetime.now(UTC) - timedelta(days=2)
        accepted = 0
        for number in range(120):
            category = list(CATEGORIES)[number % 2]
            events = shopper_events(rng, CATEGORIES[category], start + timedelta(minutes=20 * number), 10)
            status, body = _request(
                f"{base}/api/events/", body={"events": events}, cookie=f"rec_vid=v{number:08d}"
            )
            assert status == 202, body
            accepted += body["accepted"]
        # and a registered shopper of audio (basic authentication is one of DRF's defaults)
        alice = shopper_events(rng, "AUD", start + timedelta(days=1), 8)
        status, body = _request(f"{base}/api/events/", body={"events": alice}, auth="alice:alice-host-pass")
        assert (status, body.get("accepted")) == (202, 8), body
        accepted += 8

        # then every event was stored
        assert accepted == 120 * 10 + 8

        # when the host trains (with the plugin's default settings)
        began = time.monotonic()
        trained = manage("retrain", timeout=600)
        training_seconds = time.monotonic() - began
        print(f"retrain on {accepted} events: {training_seconds:.1f} s\n{trained.stdout}")

        # then a version is registered and active
        assert re.search(r"Run \d+: succeeded", trained.stdout), trained.stdout

        # and alice gets a personal list from the model, of audio products she has not bought
        status, mine = _request(f"{base}/api/recommendations/?limit=5", auth="alice:alice-host-pass")
        assert status == 200, mine
        print("personal:", _summary(mine))
        keys = [item["item"] for item in mine["items"]]
        assert len(keys) == 5 and mine["model_version"] is not None and mine["source"] == "personal"
        assert sum(key.startswith("AUD-") for key in keys) >= 4, mine

        # and similar items of a kitchen product are kitchen products
        status, similar = _request(f"{base}/api/items/KIT-00/similar/?limit=5")
        assert status == 200, similar
        print("similar:", _summary(similar))
        similar_keys = [item["item"] for item in similar["items"]]
        assert len(similar_keys) == 5 and "KIT-00" not in similar_keys
        assert sum(key.startswith("KIT-") for key in similar_keys) >= 4, similar
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _summary(served: dict) -> str:
    return f"{served['source']}: " + ", ".join(f"{i['item']} ({i['reason']})" for i in served["items"])


def _redis_reachable() -> bool:
    from tests.integration.harness import reachable

    return reachable("127.0.0.1", 6379)


def test_readme_marker_regexes_read_an_indented_block():
    # given a README-style block inside a list item
    text = textwrap.dedent(
        """\
        3. **Settings**:

           <!-- hostproject: demo -->
           ```python
           A = 1
               B = 2
           ```
        """
    )

    # when
    match = README_BLOCK.search(text)

    # then the list indentation is removed and the code's own kept
    assert match is not None and match["name"] == "demo"
    assert "\n".join(line[len(match["indent"]) :] for line in match["body"].split("\n")) == "A = 1\n    B = 2"
