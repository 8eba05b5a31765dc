"""Start-up benchmark: `hemadose chat` to its first prompt and `hemadose recommend`, beside their floors.

    python tests/benchmarks/bench_startup.py [--runs 7] [--source DIR]

Each figure is the median (and the minimum) of `--runs` fresh processes, measured in interleaved
rounds so that a noisy moment of the machine touches every figure alike, with the processes' CPU
time beside (on a machine shared with other work, wall time is partly waiting for a core):

- `python -c pass`: the interpreter alone;
- `import pydantic` and `import core.contract`: the floor of `recommend` (the core needs pydantic);
- `hemadose recommend FILE`: one request, the whole process (goal <= 120 ms);
- `hemadose chat` to the first prompt: run on a terminal (a pseudo-terminal), timed until it shows
  its first `> ` on a database already at the schema's head, then sent /quit (goal <= 250 ms);
- the same on a new database (the migrations run: Alembic is imported then).

Then the largest imports of each command (`python -X importtime`, cumulative, top level first).
`--source DIR` runs the code of another checkout (e.g. `git archive` of an older commit) through
PYTHONPATH, with this virtual environment; `--before DIR` times that checkout's `recommend` and
`chat` in the same rounds as this one's, for a fair before/after on a busy machine. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
CLI = "import sys; from bot.cli import main; sys.exit(main())"  # what the console script runs


def _env(source: Path | None, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEMADOSE_")}
    env |= {"XDG_DATA_HOME": str(data), "HEMADOSE_TIMEZONE": "UTC"}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], env: dict[str, str], stdin: str = "") -> tuple[float, float]:
    """Wall seconds of the whole process, and its CPU seconds."""
    cpu = _children_cpu()
    start = time.perf_counter()
    subprocess.run(command, input=stdin, env=env, cwd=env["XDG_DATA_HOME"], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, _children_cpu() - cpu


def _to_first_prompt(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from the start of the process to its first `> ` on a terminal, then /quit; and the
    process's CPU seconds (to its end: the /quit and closing included)."""
    import pty

    cpu = _children_cpu()
    master, slave = pty.openpty()
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env, cwd=env["XDG_DATA_HOME"]
    )
    os.close(slave)
    seen = b""
    elapsed = None
    try:
        while elapsed is None:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                raise TimeoutError("no prompt within 30 s")
            seen += os.read(master, 65536)
            if b"\n> " in seen or seen.startswith(b"> "):
                elapsed = time.perf_counter() - start
        os.write(master, b"/quit\n")
        while process.poll() is None:  # drain the goodbye so that the process can end
            if select.select([master], [], [], 0.05)[0]:
                try:
                    os.read(master, 65536)
                except OSError:
                    break
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    assert elapsed is not None
    return elapsed, _children_cpu() - cpu


def _top_imports(command: list[str], env: dict[str, str], stdin: str, count: int) -> list[tuple[int, str]]:
    """The `count` largest imports (cumulative microseconds), outermost first among equals."""
    done = subprocess.run(
        [PYTHON, "-X", "importtime", *command[1:]],
        input=stdin,
        env=env,
        cwd=env["XDG_DATA_HOME"],  # not this checkout: `python -c` puts the working directory first on sys.path
        capture_output=True,
        text=True,
        check=True,
    )
    rows = re.findall(r"^import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)$", done.stderr, re.MULTILINE)
    top_level = [(int(us), name) for us, indent, name in rows if len(indent) <= 2]
    alembic = max((int(us) for us, _indent, name in rows if name == "alembic"), default=0)
    return [*sorted(top_level, reverse=True)[:count], (alembic, "(alembic, wherever imported; 0: not imported)")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="processes per figure (the median is shown)")
    parser.add_argument("--source", type=Path, help="run the code of this checkout instead (PYTHONPATH)")
    parser.add_argument(
        "--before", type=Path, help="also time `recommend` and `chat` on this checkout, in the same rounds"
    )
    parser.add_argument("--top", type=int, default=8, help="largest imports shown per command")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        env = _env(args.source, data)
        request = data / "request.json"
        sys.path.insert(0, str(ROOT))
        from tests.helpers import romiplostim

        request.write_text(json.dumps(romiplostim()))
        at_head = data / "at-head.db"
        chat = [PYTHON, "-c", CLI, "chat", "--today", "2026-11-22", "--db"]
        prepare = [*chat, str(at_head)]
        subprocess.run(prepare, input=b"/quit\n", env=env, cwd=env["XDG_DATA_HOME"], capture_output=True, check=True)
        fresh = iter(range(10**6))

        figures: dict[str, tuple[Callable[[], tuple[float, float]], str]] = {
            "python -c pass": (lambda: _timed([PYTHON, "-c", "pass"], env), ""),
            "python -c 'import pydantic'": (lambda: _timed([PYTHON, "-c", "import pydantic"], env), ""),
            "floor: import core.contract": (lambda: _timed([PYTHON, "-c", "import core.contract"], env), ""),
            "hemadose recommend FILE": (
                lambda: _timed([PYTHON, "-c", CLI, "recommend", str(request)], env),
                "goal <= 120 ms",
            ),
            "hemadose chat, first prompt (db at head)": (
                lambda: _to_first_prompt([*chat, str(at_head)], env),
                "goal <= 250 ms",
            ),
            "hemadose chat, first prompt (new db)": (
                lambda: _to_first_prompt([*chat, str(data / f"new{next(fresh)}.db")], env),
                "migrations run",
            ),
        }
        if args.before is not None:
            earlier = _env(args.before, data)
            figures["before: hemadose recommend FILE"] = (
                lambda: _timed([PYTHON, "-c", CLI, "recommend", str(request)], earlier),
                f"{args.before}",
            )
            figures["before: hemadose chat, first prompt (db at head)"] = (
                lambda: _to_first_prompt([*chat, str(at_head)], earlier),
                f"{args.before}",
            )
        times: dict[str, list[float]] = {name: [] for name in figures}
        cpu: dict[str, list[float]] = {name: [] for name in figures}
        for _ in range(args.runs):  # interleaved rounds
            for name, (measure, _goal) in figures.items():
                wall, used = measure()
                times[name].append(wall)
                cpu[name].append(used)

        print(f"start-up, {args.runs} processes each: wall median (min), CPU median; code: {args.source or ROOT}")
        for name, (_measure, goal) in figures.items():
            median, least = statistics.median(times[name]) * 1000, min(times[name]) * 1000
            used = statistics.median(cpu[name]) * 1000
            print(f"  {name:<50} {median:7.1f} ms  (min {least:6.1f})  CPU {used:6.1f} ms  {goal}")
        for title, command, stdin in (
            ("hemadose recommend", [PYTHON, "-c", CLI, "recommend", str(request)], ""),
            ("hemadose chat (db at head, stdin /quit)", [*chat, str(at_head)], "/quit\n"),
        ):
            print(f"largest imports of {title} (cumulative, python -X importtime):")
            for us, name in _top_imports(command, env, stdin, args.top):
                print(f"  {us / 1000:7.1f} ms  {name}")


if __name__ == "__main__":
    main()
