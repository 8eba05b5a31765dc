"""`hemadose recommend`: the JSON contract of shared/spec/dosing-contract.md.

Imports are kept to the dosing core: this process must start fast and must not load the Telegram stack.
"""

from __future__ import annotations

import sys
from typing import BinaryIO

from bot.commands.common import EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE


def _open_input(path: str | None) -> BinaryIO:
    return sys.stdin.buffer if path in (None, "-") else open(path, "rb")


def run_recommend(path: str | None, batch: bool, pretty: bool = False) -> int:
    from core.contract import recommend_outcome, recommend_outcomes

    try:
        source = _open_input(path)
    except OSError as exc:
        print(f"hemadose recommend: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_UNREADABLE
    out = sys.stdout
    with source:
        try:
            if batch:
                # One line out per request line whatever happens; a fault of ours on one line is that
                # line's internal_error object and exit 1 at the end, the rest still decided.
                status = EXIT_OK
                for line, outcome in recommend_outcomes(source):
                    out.write(line + "\n")
                    if outcome == "internal":
                        status = EXIT_UNREADABLE
                return status
            text = source.read()
        except BrokenPipeError:  # the output's reader went away (main ends quietly)
            raise
        except OSError as exc:
            print(f"hemadose recommend: cannot read input: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
    line, outcome = recommend_outcome(text)
    if pretty:
        import json

        line = json.dumps(json.loads(line), indent=2, ensure_ascii=False)
    out.write(line + "\n")
    return {"ok": EXIT_OK, "invalid": EXIT_INVALID, "internal": EXIT_UNREADABLE}[outcome]
