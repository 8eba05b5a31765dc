"""`hemadose` command line. `recommend` is the JSON contract of shared/spec/dosing-contract.md.

Imports are kept to the dosing core: a `hemadose recommend` process must start fast and must not
load the Telegram stack.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
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
    chat = commands.add_parser(
        "chat",
        help="the assistant in this terminal (SQLite by default; no token, no network)",
        description="Chat in the terminal: buttons are numbered; type the number or the label. "
        "Reads standard input, so it can be scripted. End with Ctrl-D or /quit.",
    )
    chat.add_argument(
        "--db", metavar="URL", help="database URL or SQLite file (default: HEMADOSE_DB_URL or the data directory)"
    )
    chat.add_argument("--user", default="local", help="who is chatting (a name for this terminal; default local)")
    chat.add_argument("--record", metavar="FILE", type=Path, help="write the session as a replayable dialogue")
    chat.add_argument("--today", metavar="YYYY-MM-DD", type=dt.date.fromisoformat, help="fix the date (for tests)")
    commands.add_parser(
        "run",
        help="the Telegram bot (long polling); needs TELEGRAM_BOT_TOKEN and HEMADOSE_ALLOWED_USERS",
    )
    from bot.dialogue_format import FORMAT

    replay = commands.add_parser(
        "replay",
        help="replay dialogue files through the bot, offline",
        description="Replay YAML dialogues through the real bot, offline, and check each step's expectations.",
        epilog=FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("files", nargs="+", type=Path, metavar="FILE")
    replay_mode = replay.add_mutually_exclusive_group()
    replay_mode.add_argument(
        "--bless", action="store_true", help="write the actual recommendation cards into the files as `card:`"
    )
    replay_mode.add_argument("--show", action="store_true", help="print each exchange: what the user did, the replies")
    return parser


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
        except OSError as exc:
            print(f"hemadose recommend: cannot read input: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
    line, outcome = recommend_outcome(text)
    if pretty:
        import json

        line = json.dumps(json.loads(line), indent=2, ensure_ascii=False)
    out.write(line + "\n")
    return {"ok": EXIT_OK, "invalid": EXIT_INVALID, "internal": EXIT_UNREADABLE}[outcome]


async def _chat(args: argparse.Namespace) -> int:
    from bot.service import ChatService, system_clock
    from bot.settings import Settings, as_database_url
    from bot.storage import open_storage
    from bot.terminal import chat

    settings = Settings()
    url = as_database_url(args.db) if args.db else settings.database_url
    try:
        storage = await open_storage(url)
    except Exception as exc:  # a URL that does not parse, a missing driver, a file that cannot be written
        print(f"hemadose chat: cannot open the database: {_reason(exc)}", file=sys.stderr)
        return EXIT_UNREADABLE
    clock = system_clock
    if args.today is not None:
        fixed = dt.datetime.combine(args.today, dt.time(12), tzinfo=dt.UTC)
        clock = lambda: fixed  # noqa: E731
    try:
        print(f"HemaDose terminal chat on {url.split('///')[-1]}. Type a number or an answer; Ctrl-D to end.\n")
        await chat(ChatService(storage, settings.time_zone, clock), args.user, record=args.record, today=args.today)
    finally:
        await storage.close()
    return EXIT_OK


def run_bot() -> int:
    from bot.service import ChatService
    from bot.settings import Settings
    from bot.storage import open_storage
    from bot.telegram_app import build_application, start_reminders

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its lines carry the token in the URL
    settings = Settings()
    if settings.telegram_bot_token is None:
        print("hemadose run: set TELEGRAM_BOT_TOKEN (from @BotFather) in the environment.", file=sys.stderr)
        return EXIT_INVALID
    policy = settings.access_policy()
    if policy == "unset":
        print(
            "hemadose run: refusing to start without an access policy: set HEMADOSE_ALLOWED_USERS to the "
            "Telegram user ids to serve (comma-separated), or * to serve everyone.",
            file=sys.stderr,
        )
        return EXIT_INVALID
    assert not isinstance(policy, str)
    problem = _database_problem(settings.database_url)
    if problem is not None:
        print(f"hemadose run: HEMADOSE_DB_URL: {problem}", file=sys.stderr)
        return EXIT_INVALID
    if policy is None:
        logging.warning("HEMADOSE_ALLOWED_USERS=*: serving every Telegram user")

    async def open_service(application: object) -> None:
        storage = await open_storage(settings.database_url)
        service = ChatService(storage, settings.time_zone)
        app.bot_data["service"] = service
        start_reminders(app, service)
        await app.bot.set_my_commands(__import__("bot.telegram_app").telegram_app.COMMANDS)

    async def close_service(application: object) -> None:
        await app.bot_data["service"].storage.close()

    app = build_application(settings.telegram_bot_token.get_secret_value(), None, policy)
    app.post_init = open_service
    app.post_shutdown = close_service
    app.run_polling()
    return EXIT_OK


def _reason(exc: Exception) -> str:
    """What went wrong, in one line for the operator (database errors hide their statement parameters)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _database_problem(url: str) -> str | None:
    """Why the bot could not use this database URL (checked before going online), or None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url).get_dialect()
    except (ArgumentError, ValueError) as exc:
        return f"not a database URL I can use ({_reason(exc)}); e.g. sqlite:///path/hemadose.db"
    return None


async def _replay(files: list[Path], bless: bool = False, show: bool = False) -> int:
    from bot.replay import bless as write_cards
    from bot.replay import load, replay
    from bot.replay import show as exchanges

    failed = 0
    for path in files:
        result = await replay(load(path))
        if show:
            print(exchanges(result) + "\n")
        if bless:
            notes = write_cards(path, result)
            print(f"blessed {path}: {sum(len(c) for c in result.cards.values())} card(s)")
            for note in notes:
                print(f"  {note}")
            result = await replay(load(path))
        print(f"{'PASS' if result.passed else 'FAIL'} {path} ({result.steps} steps) {result.title}")
        if not result.passed:
            failed += 1
            for mismatch in result.mismatches:
                print(mismatch.report())
        if result.unasserted:
            print(f"  steps with a card not asserted whole: {result.unasserted} (hemadose replay --bless)")
    print(f"{len(files) - failed} passed, {failed} failed")
    return EXIT_OK if failed == 0 else EXIT_UNREADABLE


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "recommend":
        if args.batch and args.pretty:
            _parser().error("--pretty is for a single request, not --batch")
        return run_recommend(args.file, args.batch, args.pretty)
    if args.command == "chat":
        return asyncio.run(_chat(args))
    if args.command == "run":
        return run_bot()
    if args.command == "replay":
        return asyncio.run(_replay(args.files, args.bless, args.show))
    raise AssertionError(args.command)  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
