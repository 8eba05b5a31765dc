"""Dosing-core benchmark: throughput against the pydantic floor, and one `hemadose recommend` process.

    python tests/benchmarks/bench_core.py [--requests 10000] [--repeat 5]

(a) recommendations per second through the in-process batch path (`core.recommend_lines`) over
mixed requests for every drug, indication and region; (b) the floor: parsing the same requests
and serialising the same responses with pydantic alone. Goal: (a) time / (b) time <= 2.0.
Then the wall time of one `hemadose recommend` process (goal < 0.3 s) and whether it loaded
the Telegram stack (it must not). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.contract import decide_json, recommend_lines
from core.models import DoseRequest, DoseResponse
from tests.generated_requests import make_request


def _best_of_interleaved(repeat: int, *works: Any) -> list[float]:
    """Best time of each, the rounds interleaved so that drift in machine speed hits both alike."""
    best = [float("inf")] * len(works)
    for _ in range(repeat):
        for index, work in enumerate(works):
            start = time.perf_counter()
            work()
            best[index] = min(best[index], time.perf_counter() - start)
    return best


def bench_throughput(count: int, repeat: int) -> None:
    rng = random.Random(20261122)
    lines = [json.dumps(make_request(rng)) for _ in range(count)]
    results = [decide_json(line) for line in lines]
    responses = [r for r in results if isinstance(r, DoseResponse)]
    actions: dict[str, int] = {}
    for response in responses:
        actions[response.action] = actions.get(response.action, 0) + 1
    drugs = {
        d: sum(1 for r in responses if r.ruleset.startswith(d))
        for d in ("romiplostim", "hetrombopag", "lusutrombopag", "luspatercept")
    }

    def full_path() -> None:
        for _ in recommend_lines(lines):
            pass

    def pydantic_floor() -> None:
        for line, result in zip(lines, results, strict=True):
            DoseRequest.model_validate_json(line)
            result.model_dump_json()

    # The precomputed requests and responses are the benchmark's own data: freeze them so that
    # garbage collection does not walk them on every pass (a real batch holds none of them).
    gc.collect()
    gc.freeze()
    full, floor = _best_of_interleaved(repeat, full_path, pydantic_floor)
    gc.unfreeze()
    print(f"requests: {count} ({len(responses)} recommendations, {count - len(responses)} error objects)")
    print("  by drug: " + ", ".join(f"{d} {n}" for d, n in drugs.items()))
    print("  by action: " + ", ".join(f"{a} {n}" for a, n in sorted(actions.items())))
    each_full, each_floor = full * 1e6 / count, floor * 1e6 / count
    print(f"(a) in-process batch (recommend_lines): {count / full:,.0f} recommendations/s ({each_full:.1f} us each)")
    print(f"(b) pydantic floor (parse + serialise): {count / floor:,.0f} requests/s ({each_floor:.1f} us each)")
    print(f"ratio (a time / b time): {full / floor:.2f}  (goal <= 2.0)")


def bench_process(runs: int) -> None:
    exe = shutil.which("hemadose", path=str(Path(sys.executable).parent)) or shutil.which("hemadose")
    command = [exe] if exe else [sys.executable, "-m", "bot.cli"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(make_request(random.Random(1)), handle)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*command, "recommend", handle.name], capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    probe = (
        "import sys; from bot.cli import main; main(['recommend', sys.argv[1]]); "
        "print(any(m.split('.')[0] == 'telegram' for m in sys.modules), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", probe, handle.name], capture_output=True, text=True, check=False)
    Path(handle.name).unlink()
    median, best = statistics.median(times) * 1000, min(times) * 1000
    print(
        f"one `hemadose recommend` process ({' '.join(Path(c).name for c in command)}): "
        f"median {median:.0f} ms, best {best:.0f} ms over {runs} runs  (goal < 300 ms)"
    )
    print(f"telegram stack imported by `hemadose recommend`: {done.stderr.strip().splitlines()[-1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7, help="timed passes; the best is reported")
    parser.add_argument("--process-runs", type=int, default=10)
    args = parser.parse_args()
    bench_throughput(args.requests, args.repeat)
    bench_process(args.process_runs)


if __name__ == "__main__":
    main()
