"""`hemadose` command line. `recommend` is the JSON contract of shared/spec/dosing-contract.md.

Imports are kept to the dosing core: a `hemadose recommend` process must start fast and must not
load the Telegram stack.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import BinaryIO

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_INVALID = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hemadose", description="HemaDose dosing assistant.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    recommend = commands.add_parser(
        "recommend",
        help="dose recommendation from a JSON request (the dosing contract)",
        description="Read one JSON request (FILE or standard input) and write one JSON response. "
        "With --batch, read JSON Lines and write one response per line.",
    )
    recommend.add_argument("file", nargs="?", metavar="FILE", help="request file (default: standard input)")
    recommend.add_argument("--batch", action="store_true", help="JSON Lines: one request per line")
    recommend.add_argument(
        "--pretty", action="store_true", help="indent the single response for people (not with --batch)"
    )
    return parser


def _open_input(path: str | None) -> BinaryIO:
    return sys.stdin.buffer if path in (None, "-") else open(path, "rb")


def run_recommend(path: str | None, batch: bool, pretty: bool = False) -> int:
    from core.contract import recommend_json, recommend_lines

    try:
        source = _open_input(path)
    except OSError as exc:
        print(f"hemadose recommend: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_UNREADABLE
    out = sys.stdout
    with source:
        try:
            if batch:
                for line in recommend_lines(source):
                    out.write(line + "\n")
                return EXIT_OK
            text = source.read()
        except OSError as exc:
            print(f"hemadose recommend: cannot read input: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
    line, ok = recommend_json(text)
    if pretty:
        import json

        line = json.dumps(json.loads(line), indent=2, ensure_ascii=False)
    out.write(line + "\n")
    return EXIT_OK if ok else EXIT_INVALID


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "recommend":
        if args.batch and args.pretty:
            _parser().error("--pretty is for a single request, not --batch")
        return run_recommend(args.file, args.batch, args.pretty)
    raise AssertionError(args.command)  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
