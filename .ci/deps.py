"""CI's dependency steps (standard library only; run with any python3).

  python3 .ci/deps.py constraints OUT     requirements.lock's exact versions, without hashes, as a pip constraints
                                          file (pip refuses an editable install when a constraint carries a hash)
  python3 .ci/deps.py check PYTHON        the environment of PYTHON holds exactly the lock's versions
  python3 .ci/deps.py audit [LOCK]        pip-audit over the lock (default requirements.lock): exit 1 on a known
                                          vulnerability; exit 0 saying "skipped" when the advisory data cannot be
                                          reached (no network, or the service answers "not found" for every
                                          package); exit 1 when pip-audit fails for another reason

The pip-audit executable is $PIP_AUDIT (default .venv-ci/bin/pip-audit).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
# Signs in pip-audit's error output that the advisory service could not be reached at all.
UNREACHABLE = (
    "ConnectionError",
    "NameResolutionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "timed out",
    "Timeout",
    "ProxyError",
    "SSLError",
)
NOT_FOUND = "Dependency not found on PyPI"
AUDIT_TIMEOUT = 600  # seconds


def normal(name: str) -> str:
    """PEP 503 name: 'PyYAML' and 'pyyaml', 'typing_extensions' and 'typing-extensions' are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Path = LOCK) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            found[normal(match.group(1))] = match.group(2)
    return found


def constraints(out: Path) -> int:
    out.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins().items())))
    return 0


def check(python: str) -> int:
    """Every installed distribution (but pip and the project) at the lock's version, none missing."""
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format", "json", "--exclude-editable", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {normal(d["name"]): d["version"] for d in json.loads(listed.stdout)}
    locked = pins()
    ignored = {"pip", "setuptools", "wheel"}  # the venv's own tools (setuptools/wheel: pinned for builds)
    wrong = [
        f"{name} {version} (lock: {locked.get(name, 'not in the lock')})"
        for name, version in sorted(installed.items())
        if name not in ignored and locked.get(name) != version
    ]
    if wrong:
        print("installed packages differ from requirements.lock:\n  " + "\n  ".join(wrong))
        return 1
    print(f"installed packages match requirements.lock ({len(installed)} packages)")
    return 0


def audit(lock: Path = LOCK) -> int:
    tool = os.environ.get("PIP_AUDIT", str(ROOT / ".venv-ci" / "bin" / "pip-audit"))
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "audit.json"
        command = [tool, "--requirement", str(lock), "--require-hashes", "--disable-pip", "--progress-spinner", "off"]
        try:
            done = subprocess.run(
                [*command, "--format", "json", "--output", str(report)],
                capture_output=True,
                text=True,
                timeout=AUDIT_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            print(f"dependency audit skipped: the advisory data did not answer in {AUDIT_TIMEOUT} s")
            return 0
        data = json.loads(report.read_text()) if report.is_file() and report.stat().st_size else None
    if data is None:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {done.returncode}"
        if any(sign in done.stderr for sign in UNREACHABLE):
            print(f"dependency audit skipped: the advisory data cannot be reached ({last[:200]})")
            return 0
        print(f"dependency audit failed: pip-audit gave no report: {last[:300]}")
        return 1
    dependencies = data.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    if vulnerable:
        print(f"dependency audit FAILED: known vulnerabilities in {len(vulnerable)} package(s):")
        for dep in vulnerable:
            for vuln in dep["vulns"]:
                fixed = ", ".join(vuln.get("fix_versions") or []) or "none yet"
                print(f"  {dep['name']} {dep.get('version', '?')}: {vuln.get('id')} (fixed in {fixed})")
        return 1
    skipped = [d for d in dependencies if d.get("skip_reason")]
    audited = len(dependencies) - len(skipped)
    if dependencies and audited == 0:
        reason = "the service knows none of them" if all(NOT_FOUND in d["skip_reason"] for d in skipped) else ""
        print(
            f"dependency audit skipped: the advisory data cannot be reached; 0 of {len(dependencies)} packages "
            f"audited ({reason or skipped[0]['skip_reason'][:200]})"
        )
        return 0
    if done.returncode != 0:
        print(f"dependency audit failed: pip-audit exited {done.returncode}: {done.stderr.strip()[-300:]}")
        return 1
    note = f"; not audited: {', '.join(d['name'] for d in skipped)}" if skipped else ""
    print(f"dependency audit: no known vulnerabilities in {audited} of {len(dependencies)} packages{note}")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "constraints":
        return constraints(Path(argv[1]))
    if len(argv) >= 2 and argv[0] == "check":
        return check(argv[1])
    if argv and argv[0] == "audit":
        return audit(Path(argv[1]) if len(argv) > 1 else LOCK)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
