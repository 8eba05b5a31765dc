"""Pinned, audited dependencies: upper bounds in pyproject.toml, exact versions with hashes in
requirements.lock, and CI's audit step (.ci/deps.py) telling a vulnerability from an unreachable service."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DEPS = ROOT / ".ci" / "deps.py"
README_TEST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest"


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    texts = [
        *project["build-system"]["requires"],
        *project["project"]["dependencies"],
        *[r for extra in project["project"]["optional-dependencies"].values() for r in extra],
    ]
    return [Requirement(text) for text in texts]


def locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) from requirements.lock."""
    pins: dict[str, tuple[str, int]] = {}
    name = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line[0].isspace() and "==" in line:
            name, version = line.split("==")
            name = canonicalize_name(name)
            pins[name] = (version.split()[0], 0)
        elif "--hash=sha256:" in line:
            pins[name] = (pins[name][0], pins[name][1] + 1)
    return pins


def test_every_dependency_has_an_upper_bound():
    for requirement in declared():
        assert any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier), str(requirement)


def test_the_lock_pins_every_declared_dependency_within_its_bounds_with_hashes():
    pins = locked()
    assert len(pins) >= 40
    for requirement in declared():
        version, _ = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (str(requirement), version)
    assert all(hashes >= 1 for _, hashes in pins.values()), [n for n, (_, h) in pins.items() if not h]


def test_ci_installs_from_the_lock_and_runs_the_readme_command_unchanged():
    run = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert README_TEST_COMMAND in readme
    assert f"\n{README_TEST_COMMAND} || exit 1\n" in run
    assert 'export PIP_CONSTRAINT="$PWD/.venv/constraints.txt"' in run
    assert run.index("export PIP_CONSTRAINT") < run.index(README_TEST_COMMAND)
    assert "pip install -q --require-hashes -r requirements.lock" in run
    assert "python3 .ci/deps.py audit" in run


def test_constraints_are_the_locks_versions_without_hashes(tmp_path: Path):
    out = tmp_path / "constraints.txt"
    subprocess.run([sys.executable, str(DEPS), "constraints", str(out)], check=True)
    lines = out.read_text().splitlines()
    assert "--hash" not in out.read_text()
    assert {line.split("==")[0]: line.split("==")[1] for line in lines} == {n: v for n, (v, _) in locked().items()}


# --- the audit step, with a stand-in pip-audit ---------------------------------------------------
FAKE_PIP_AUDIT = """#!{python}
import json, os, sys
mode = os.environ["FAKE_MODE"]
out = sys.argv[sys.argv.index("--output") + 1]
deps = [{{"name": "httpx", "version": "0.28.1"}}, {{"name": "pyyaml", "version": "6.0.4"}}]
if mode == "unreachable":
    sys.stderr.write("Traceback (most recent call last):\\nrequests.exceptions.ConnectionError: "
                     "HTTPSConnectionPool(host='api.osv.dev', port=443): Max retries exceeded\\n")
    sys.exit(1)
if mode == "broken":
    sys.stderr.write("usage: pip-audit ...\\npip-audit: error: invalid requirement\\n")
    sys.exit(2)
if mode == "not-found":
    for d in deps:
        del d["version"]
        d["skip_reason"] = "Dependency not found on PyPI and could not be audited: " + d["name"]
if mode == "vulnerable":
    deps[0]["vulns"] = [{{"id": "PYSEC-2099-1", "fix_versions": ["0.28.2"], "aliases": [], "description": "x"}}]
    deps[1]["vulns"] = []
if mode == "clean":
    for d in deps:
        d["vulns"] = []
with open(out, "w") as f:
    json.dump({{"dependencies": deps, "fixes": []}}, f)
sys.exit(1 if mode == "vulnerable" else 0)
"""


@pytest.mark.parametrize(
    ("mode", "status", "said"),
    [
        ("unreachable", 0, "dependency audit skipped: the advisory data cannot be reached (requests.exceptions."),
        ("not-found", 0, "dependency audit skipped: the advisory data cannot be reached; 0 of 2 packages audited"),
        ("vulnerable", 1, "dependency audit FAILED: known vulnerabilities in 1 package(s):\n"),
        ("clean", 0, "dependency audit: no known vulnerabilities in 2 of 2 packages\n"),
        ("broken", 1, "dependency audit failed: pip-audit gave no report: pip-audit: error: invalid requirement"),
    ],
)
def test_the_audit_fails_on_a_vulnerability_and_skips_when_it_cannot_know(
    tmp_path: Path, mode: str, status: int, said: str
):
    fake = tmp_path / "pip-audit"
    fake.write_text(FAKE_PIP_AUDIT.format(python=sys.executable))
    fake.chmod(0o755)
    env = os.environ | {"PIP_AUDIT": str(fake), "FAKE_MODE": mode}
    done = subprocess.run(
        [sys.executable, str(DEPS), "audit"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == status, done.stdout + done.stderr
    assert done.stdout.startswith(said)
    assert done.stdout.count("\n") == (2 if mode == "vulnerable" else 1)
    if mode == "vulnerable":
        assert done.stdout.endswith("  httpx 0.28.1: PYSEC-2099-1 (fixed in 0.28.2)\n")


# --- the coverage floor -----------------------------------------------------------------------------
FLOOR = ROOT / ".ci" / "coverage-floor"


def committed_floors(repo: Path, path: str = ".ci/coverage-floor") -> list[tuple[str, float]]:
    """(commit, floor) for every commit that changed the floor file, newest first; [] outside a git clone."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(repo), "log", "--format=%h", "--", path],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.CalledProcessError):
        return []
    floors = []
    for commit in listed.stdout.split():
        shown = subprocess.run(
            ["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, text=True, check=False
        )
        if shown.returncode == 0:  # not the commit that deleted it
            floors.append((commit, float(shown.stdout)))
    return floors


def fallen(current: float, history: list[tuple[str, float]]) -> list[str]:
    """The commits whose floor was above the current one."""
    return [f"{commit}: {floor}" for commit, floor in history if floor > current]


def test_the_coverage_floor_is_one_figure_that_ci_holds_the_total_to():
    floor = float(FLOOR.read_text())
    assert FLOOR.read_text() == f"{floor}\n"
    assert 80 <= floor <= 100
    run = (ROOT / ".ci" / "run").read_text()
    measure = (  # (the kill test runs once, in the PostgreSQL part)
        'export PYTEST_ADDOPTS="--cov=core --cov=flows --cov=bot --cov-report=term-missing:skip-covered '
        '--ignore=tests/test_scale_out.py"\n'
    )
    check = '.venv/bin/coverage report --format=total --precision=1 --fail-under="$(cat .ci/coverage-floor)"\n'
    assert run.index(measure) < run.index(README_TEST_COMMAND) < run.index("unset PYTEST_ADDOPTS") < run.index(check)


def test_the_coverage_floor_only_rises():
    """Against every committed value of .ci/coverage-floor (a clean clone has them all; outside git: none)."""
    history = committed_floors(ROOT)
    assert fallen(float(FLOOR.read_text()), history) == []


def test_a_lowered_floor_is_caught_in_the_history(tmp_path: Path):
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, timeout=60)

    git("init", "-q")
    (tmp_path / ".ci").mkdir()
    for figure in ("85.0", "88.5", "86.0"):
        (tmp_path / ".ci" / "coverage-floor").write_text(f"{figure}\n")
        git("add", ".")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", figure)
    history = committed_floors(tmp_path)
    assert [floor for _, floor in history] == [86.0, 88.5, 85.0]
    assert [line.split(": ")[1] for line in fallen(86.0, history)] == ["88.5"]
    assert fallen(88.5, history) == []
