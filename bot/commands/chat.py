"""`hemadose chat`: the assistant in this terminal, on the same storage as the bot."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import sys

from bot.commands.common import (
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_UNREADABLE,
    configure_logging,
    reason,
    settings_or_none,
)


async def run_chat(args: argparse.Namespace) -> int:
    from bot.service import ChatService, system_clock
    from bot.storage import open_storage
    from bot.terminal import chat

    settings = settings_or_none("chat")
    if settings is None:
        return EXIT_INVALID
    configure_logging(settings, logging.WARNING)
    if args.record is not None and not args.record.expanduser().parent.is_dir():
        print(f"hemadose chat: --record: the folder {args.record.parent} does not exist", file=sys.stderr)
        return EXIT_INVALID
    files = getattr(args, "files", None)
    if files is not None and not files.expanduser().is_dir():
        print(f"hemadose chat: --files: the folder {files} does not exist", file=sys.stderr)
        return EXIT_INVALID
    url, problem = settings.database(args.db)
    if problem is not None:
        print(f"hemadose chat: {problem}", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        storage = await open_storage(url)
    except Exception as exc:  # a URL that does not parse, a missing driver, a file that cannot be written
        print(f"hemadose chat: cannot open the database: {reason(exc)}", file=sys.stderr)
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
            ChatService(storage, settings.time_zone, clock),
            args.user,
            record=args.record,
            today=args.today,
            files=files.expanduser() if files is not None else None,
            charts=settings.data_dir.expanduser() / "charts",
        )
    finally:
        try:
            await storage.close()
        except asyncio.CancelledError:  # Ctrl-C while an answer was handled: asyncio's cancel lands here
            await storage.close()
    return EXIT_INTERRUPTED if ended.interrupted else EXIT_UNREADABLE if ended.unsaved else EXIT_OK
