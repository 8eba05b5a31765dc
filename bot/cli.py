"""`hemadose` command line. `recommend` is the JSON contract of shared/spec/dosing-contract.md.

Imports are kept to the dosing core: a `hemadose recommend` process must start fast and must not
load the Telegram stack.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from bot.settings import Settings

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C

# What `hemadose run --help` lists (bot.settings.ENVIRONMENT says the same; a test keeps them in step).
# Written out here so that `hemadose recommend` never imports the settings stack.
RUN_EPILOG = """environment variables:
  TELEGRAM_BOT_TOKEN      the bot's token from @BotFather (required; never logged)
  HEMADOSE_ALLOWED_USERS  comma-separated Telegram user ids to serve, or * for everyone (required)
  HEMADOSE_DB_URL         SQLAlchemy database URL or a plain SQLite file path; its folder must exist
                          (default: hemadose.db in the data directory)
  HEMADOSE_DATA_DIR       data directory, created private if missing
                          (default: $XDG_DATA_HOME/hemadose, i.e. ~/.local/share/hemadose)
  HEMADOSE_TIMEZONE       default time zone for 'today' and reminders, an Area/City name (default: UTC)
  HEMADOSE_LOG_FORMAT     text (default) or json: one JSON object per line (time, level, logger, message)
  HEMADOSE_LOG_LEVEL      DEBUG, INFO, WARNING or ERROR (default: INFO for run, WARNING for chat);
                          no level logs the token or what users typed

example:
  TELEGRAM_BOT_TOKEN=123456:ABC... HEMADOSE_ALLOWED_USERS=111,222 hemadose run
"""
CHAT_EPILOG = """buttons:
  Each button is shown as [#N] Label. Type the label, or #N; a plain N also picks button N
  where the question does not take a number (where it does, a typed 3 is the answer 3).

environment variables:
  HEMADOSE_DB_URL, HEMADOSE_DATA_DIR, HEMADOSE_TIMEZONE, HEMADOSE_LOG_FORMAT and HEMADOSE_LOG_LEVEL
  as for `hemadose run --help`.
"""


def _date(value: str) -> dt.date:
    """--today's type: a clear message for a date argparse cannot read."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a date; use YYYY-MM-DD, e.g. 2026-11-22") from None


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
        description="Chat in the terminal, on the same storage as the bot (no token, no network).\n"
        "Reads standard input, so it can be scripted. End with Ctrl-D, Ctrl-C or /quit: every answer\n"
        "is saved as it is given, and the next `hemadose chat` resumes the consultation.",
        epilog=CHAT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat.add_argument(
        "--db",
        metavar="URL",
        help="database URL or SQLite file, in a folder that exists (default: HEMADOSE_DB_URL or the data directory)",
    )
    chat.add_argument("--user", default="local", help="who is chatting (a name for this terminal; default local)")
    chat.add_argument("--record", metavar="FILE", type=Path, help="write the session as a replayable dialogue")
    chat.add_argument("--today", metavar="YYYY-MM-DD", type=_date, help="fix the date (for tests)")
    commands.add_parser(
        "run",
        help="the Telegram bot (long polling); needs TELEGRAM_BOT_TOKEN and HEMADOSE_ALLOWED_USERS",
        description="Run the Telegram bot with long polling. Settings come from the environment only.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from bot.dialogue_format import FORMAT

    replay = commands.add_parser(
        "replay",
        help="replay dialogue files through the bot, offline",
        description="Replay YAML dialogues through the real bot, offline, and check each step's expectations.",
        epilog=FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backup = commands.add_parser(
        "backup",
        help="a consistent copy of the SQLite database, safe while the bot runs",
        description="Copy the SQLite database to FILE (created 0600; an existing FILE is replaced only "
        "once the new copy is complete and checked). Safe while the bot or a chat is running. "
        "PostgreSQL: use pg_dump (see the README).",
    )
    backup.add_argument("file", type=Path, metavar="FILE", help="where to write the copy")
    backup.add_argument("--db", metavar="URL", help="database URL or SQLite file (default: as for chat)")
    audit = commands.add_parser(
        "audit",
        help="check or export the audit of recommendations (a hash chain)",
        description="The audit is a hash chain: each entry carries the previous entry's hash and its own.",
    )
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_commands.add_parser(
        "verify",
        help="check the chain; name the first broken entry",
        description="Check every entry's hash and link. Exit 0: intact (the head hash is printed; keep it "
        "elsewhere to compare later); 1: broken, the first broken entry named; 2: could not check.",
    )
    export = audit_commands.add_parser(
        "export",
        help="write the audit as JSON Lines",
        description="Write every audit entry, in chain order, as one JSON object per line (FILE is created 0600).",
    )
    export.add_argument("file", nargs="?", type=Path, metavar="FILE", help="output file (default: standard output)")
    for command in (verify, export):
        command.add_argument("--db", metavar="URL", help="database URL or SQLite file (default: as for chat)")
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


def _settings(command: str) -> Settings | None:
    """The environment's settings, or None after a one-line error (e.g. a malformed user id)."""
    from pydantic import ValidationError

    from bot.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"hemadose {command}: {str(first['msg']).removeprefix('Value error, ')}", file=sys.stderr)
        return None


async def _chat(args: argparse.Namespace) -> int:
    from bot.service import ChatService, system_clock
    from bot.storage import open_storage
    from bot.terminal import chat

    settings = _settings("chat")
    if settings is None:
        return EXIT_INVALID
    _logging(settings, logging.WARNING)
    if args.record is not None and not args.record.expanduser().parent.is_dir():
        print(f"hemadose chat: --record: the folder {args.record.parent} does not exist", file=sys.stderr)
        return EXIT_INVALID
    url, problem = settings.database(args.db)
    if problem is not None:
        print(f"hemadose chat: {problem}", file=sys.stderr)
        return EXIT_UNREADABLE
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
        print(
            f"HemaDose terminal chat on {url.split('///')[-1]}. Type an answer, a button's label or #N "
            "for button N; Ctrl-D or Ctrl-C to end.\n"
        )
        ended = await chat(
            ChatService(storage, settings.time_zone, clock), args.user, record=args.record, today=args.today
        )
    finally:
        try:
            await storage.close()
        except asyncio.CancelledError:  # Ctrl-C while an answer was handled: asyncio's cancel lands here
            await storage.close()
    return EXIT_INTERRUPTED if ended.interrupted else EXIT_UNREADABLE if ended.unsaved else EXIT_OK


def run_backup(target: Path, db: str | None) -> int:
    from sqlalchemy.engine import make_url

    from bot.settings import sqlite_file
    from bot.storage.backup import BackupError, backup_sqlite

    settings = _settings("backup")
    if settings is None:
        return EXIT_INVALID
    url, problem = settings.database(db)
    if problem is not None:
        print(f"hemadose backup: {problem}", file=sys.stderr)
        return EXIT_INVALID
    if not url.startswith("sqlite"):
        try:
            backend = make_url(url).get_backend_name()
        except Exception:  # an unreadable URL: never echo it (it may carry a password)
            backend = "not SQLite"
        print(
            f"hemadose backup: the database is {backend}, not SQLite; back it up with pg_dump "
            "(e.g. pg_dump --format=custom --file FILE DBNAME; see the README).",
            file=sys.stderr,
        )
        return EXIT_INVALID
    source = sqlite_file(url)
    if source is None:
        print("hemadose backup: an in-memory database has nothing to back up", file=sys.stderr)
        return EXIT_INVALID
    try:
        size = backup_sqlite(source, target)
    except (BackupError, OSError) as exc:
        reason = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"hemadose backup: {reason}", file=sys.stderr)
        return EXIT_UNREADABLE
    print(f"Backed up {source} to {target} ({size} bytes, checked).")
    return EXIT_OK


async def _audit(action: str, db: str | None, target: Path | None) -> int:
    """`audit verify` (0 intact, 1 broken, 2 could not check) and `audit export`."""
    from bot.settings import sqlite_file
    from bot.storage import audit_chain, open_storage
    from bot.storage.files import open_private

    name = f"audit {action}"
    settings = _settings(name)
    if settings is None:
        return EXIT_INVALID
    url, problem = settings.database(db)
    file = sqlite_file(url)
    if problem is None and file is not None and not file.is_file():
        problem = f"there is no database at {file}"
    if problem is not None:
        print(f"hemadose {name}: {problem}", file=sys.stderr)
        return EXIT_INVALID
    try:
        storage = await open_storage(url)
    except Exception as exc:
        print(f"hemadose {name}: cannot open the database: {_reason(exc)}", file=sys.stderr)
        return EXIT_INVALID
    try:
        async with storage.session() as session:
            if action == "verify":
                verdict = await audit_chain.verify(session)
                if verdict.problem is not None:
                    print(f"audit chain BROKEN: {verdict.problem} ({verdict.entries} entries before it intact)")
                    return EXIT_UNREADABLE
                print(f"audit chain intact: {verdict.entries} entries; head {verdict.head}")
                return EXIT_OK
            try:
                out = sys.stdout if target is None else open_private(target)
            except OSError as exc:
                print(f"hemadose {name}: cannot write {target}: {exc.strerror}", file=sys.stderr)
                return EXIT_UNREADABLE
            count = 0
            try:
                async for row in audit_chain.entries(session):
                    out.write(audit_chain.export_line(row) + "\n")
                    count += 1
            finally:
                if target is not None:
                    out.close()
            if target is not None:
                print(f"{count} audit entries written to {target}", file=sys.stderr)
            return EXIT_OK
    finally:
        await storage.close()


def _interruptible(command: Callable[[], int], bye: bool = False) -> int:
    """Run a command; Ctrl-C ends it with status 130 and no traceback (chat: with its goodbye), and
    a reader that goes away (`hemadose recommend ... | head -c 10`) ends it quietly."""
    try:
        return command()
    except KeyboardInterrupt:
        if bye:
            from bot.terminal import BYE

            print(f"\n{BYE}", flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # As the Python documentation advises: nothing more can be written, and flushing at exit
        # must not fail again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_UNREADABLE


def run_bot() -> int:
    from telegram.error import InvalidToken, NetworkError, TelegramError

    from bot.logs import protect
    from bot.telegram_app import StartupError, build_application, serve

    settings = _settings("run")
    if settings is None:
        return EXIT_INVALID
    token = settings.telegram_bot_token.get_secret_value().strip() if settings.telegram_bot_token else ""
    _logging(settings, logging.INFO, token)
    if not token:
        print("hemadose run: set TELEGRAM_BOT_TOKEN (from @BotFather) in the environment.", file=sys.stderr)
        return EXIT_INVALID
    if re.fullmatch(r"\d+:[A-Za-z0-9_-]+", token) is None:
        print(
            "hemadose run: TELEGRAM_BOT_TOKEN does not look like a bot token (digits, a colon, then letters, "
            "e.g. 123456:ABC-DEF...); copy it again from @BotFather.",
            file=sys.stderr,
        )
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
    url, problem = settings.database()
    if problem is None and (unusable := _database_problem(url)) is not None:
        problem = f"HEMADOSE_DB_URL: {unusable}"
    if problem is not None:
        print(f"hemadose run: {problem}", file=sys.stderr)
        return EXIT_INVALID
    if policy is None:
        logging.warning("HEMADOSE_ALLOWED_USERS=*: serving every Telegram user")

    app = build_application(token, None, policy)
    serve(app, url, settings.time_zone)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_failed_start)
    protect([token])
    try:
        app.run_polling()
    except InvalidToken:
        print("hemadose run: Telegram refused the token; check TELEGRAM_BOT_TOKEN (from @BotFather).", file=sys.stderr)
        return EXIT_INVALID
    except NetworkError as exc:  # time-outs included
        print(f"hemadose run: cannot reach Telegram: {_hide(exc, token)}; check the network/token.", file=sys.stderr)
        return EXIT_UNREADABLE
    except TelegramError as exc:
        print(f"hemadose run: Telegram refused to start the bot: {_hide(exc, token)}.", file=sys.stderr)
        return EXIT_UNREADABLE
    except StartupError as exc:
        print(f"hemadose run: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    return EXIT_OK


def _logging(settings: Settings, default_level: int, token: str = "") -> None:
    """Root logging for `run` and `chat`: HEMADOSE_LOG_FORMAT and HEMADOSE_LOG_LEVEL, through the filter
    that keeps the token and message contents out of every record (bot/logs.py)."""
    from bot.logs import configure

    configure(settings.log_level or default_level, settings.log_format, [token])
    if settings.log_level != "DEBUG":
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per Bot API call (redacted): noise


def _quiet_failed_start(record: logging.LogRecord) -> bool:
    """Drop python-telegram-bot's traceback of a failed start-up: `run` reports it in one line."""
    return not (record.name == "telegram.ext" and "Bootstrap Initialize Application" in record.getMessage())


def _hide(exc: Exception, token: str) -> str:
    """The error in one line, never with the token (a URL in an error message can carry it)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].replace(token, "<token>")


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
        return _interruptible(lambda: run_recommend(args.file, args.batch, args.pretty))
    if args.command == "chat":
        return _interruptible(lambda: asyncio.run(_chat(args)), bye=True)
    if args.command == "run":
        return _interruptible(run_bot)
    if args.command == "backup":
        return _interruptible(lambda: run_backup(args.file, args.db))
    if args.command == "audit":
        return _interruptible(lambda: asyncio.run(_audit(args.audit_command, args.db, getattr(args, "file", None))))
    if args.command == "replay":
        return asyncio.run(_replay(args.files, args.bless, args.show))
    raise AssertionError(args.command)  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
