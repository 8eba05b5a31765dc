"""`hemadose` command line: the argument parser and `main()`; each subcommand is a module of
bot/commands. `recommend` is the JSON contract of shared/spec/dosing-contract.md.

Imports are kept to the dosing core: a `hemadose recommend` process must start fast and must not
load the Telegram stack, so each subcommand's module is imported only when it runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.commands.common import EXIT_INTERRUPTED, EXIT_UNREADABLE

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
  HEMADOSE_TELEGRAM_BASE_URL the Bot API server's address (default: https://api.telegram.org);
                          a local Bot API server, or the tests' loopback one
  HEMADOSE_WEBHOOK_SECRET with --webhook (required there): the secret Telegram sends with every update,
                          1-256 of A-Z a-z 0-9 _ -; a post without it is refused (403)
  HEMADOSE_WEBHOOK_LISTEN with --webhook: the address the webhook server listens on (default: 127.0.0.1,
                          behind a reverse proxy that terminates HTTPS)
  HEMADOSE_WEBHOOK_PORT   with --webhook: its port (default: 8080); it also serves /healthz and /readyz
  HEMADOSE_TELEGRAM_PER_SECOND messages a second the bot may send, shared by all its replicas
                          (default: 30, Telegram's limit; 0: no limit, for a test Bot API)

examples:
  TELEGRAM_BOT_TOKEN=123456:ABC... HEMADOSE_ALLOWED_USERS=111,222 hemadose run
  HEMADOSE_WEBHOOK_SECRET=... hemadose run --webhook https://bot.example.org/telegram  (the other settings as above)
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


MAX_USER = 32  # `chat --user`: stored as 'local:<name>', within the 64 characters of a user's and a chat's key


def _user(value: str) -> str:
    """--user's type: refused here, before the database, when too long or unprintable (PostgreSQL would
    refuse an over-long key deep in a write; SQLite would have kept it)."""
    if not value or len(value) > MAX_USER or not value.isprintable():
        raise argparse.ArgumentTypeError(
            f"a name of 1 to {MAX_USER} printable characters, e.g. 'ward-3' (this one has {len(value)})"
        )
    return value


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
    chat.add_argument(
        "--user",
        default="local",
        type=_user,
        help=f"who is chatting (a name for this terminal, at most {MAX_USER} characters; default local)",
    )
    chat.add_argument("--record", metavar="FILE", type=Path, help="write the session as a replayable dialogue")
    chat.add_argument("--today", metavar="YYYY-MM-DD", type=_date, help="fix the date (for tests)")
    chat.add_argument(
        "--files", metavar="DIR", type=Path, help="where /export writes its files (default: the current folder)"
    )
    importing = commands.add_parser(
        "import",
        help="add a patient's results from a CSV (the export's format) or a FHIR Bundle",
        description="Read FILE (a CSV in /export's format, docs/csv-format.md, or a FHIR Bundle in JSON) and add "
        "its patients' results, doses, transfusions and facts to the user's records, so the next consultation "
        "pre-fills them. Duplicates (same test, date and value) are skipped and listed; any problem is listed "
        "line by line (CSV) or entry by entry (FHIR) and then nothing is imported. Exit 0: imported; 1: nothing "
        "imported (problems listed); 2: could not start.",
    )
    importing.add_argument("file", type=Path, metavar="FILE")
    importing.add_argument(
        "--user", default="local", type=_user, help="the terminal user whose records receive it (as chat --user)"
    )
    importing.add_argument(
        "--telegram-user", metavar="ID", type=int, help="a Telegram user's id instead: their records receive it"
    )
    importing.add_argument("--db", metavar="URL", help="database URL or SQLite file (default: as for chat)")
    importing.add_argument("--today", metavar="YYYY-MM-DD", type=_date, help="fix the date (for tests)")
    run = commands.add_parser(
        "run",
        help="the Telegram bot (long polling or a webhook); needs TELEGRAM_BOT_TOKEN and HEMADOSE_ALLOWED_USERS",
        description="Run the Telegram bot with long polling, or with --webhook behind HTTPS (several replicas may "
        "share one database). Settings come from the environment only.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--webhook",
        metavar="URL",
        help="receive updates at this public https URL (its path is served on HEMADOSE_WEBHOOK_LISTEN:PORT, "
        "with /healthz and /readyz) instead of long polling",
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "recommend":
        from bot.commands.recommend import run_recommend

        if args.batch and args.pretty:
            _parser().error("--pretty is for a single request, not --batch")
        return _interruptible(lambda: run_recommend(args.file, args.batch, args.pretty))
    import asyncio  # not for `recommend`, which must start fast

    if args.command == "chat":
        from bot.commands.chat import run_chat

        return _interruptible(lambda: asyncio.run(run_chat(args)), bye=True)
    if args.command == "run":
        from bot.commands.run import run_bot

        return _interruptible(lambda: run_bot(args.webhook))
    if args.command == "backup":
        from bot.commands.database import run_backup

        return _interruptible(lambda: run_backup(args.file, args.db))
    if args.command == "audit":
        from bot.commands.database import run_audit

        return _interruptible(lambda: asyncio.run(run_audit(args.audit_command, args.db, getattr(args, "file", None))))
    if args.command == "import":
        from bot.commands.importing import run_import

        user = f"tg:{args.telegram_user}" if args.telegram_user is not None else f"local:{args.user}"
        return _interruptible(lambda: asyncio.run(run_import(args.file, user, args.db, args.today)))
    if args.command == "replay":
        from bot.commands.replay import run_replay

        return asyncio.run(run_replay(args.files, args.bless, args.show))
    raise AssertionError(args.command)  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
