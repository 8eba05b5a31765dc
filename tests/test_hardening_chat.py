"""Issue 10, the chat's rows: bounded input, linear parsing, replies within Telegram's limit, labels
that cannot be names, private chats only, damaged buttons, flood control, two first contacts at once."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from telegram import Update

from bot.limits import BAD_BUTTON, CUT_NOTE, MAX_REPLY, MAX_TEXT, SLOW_DOWN, FloodGate, fit, split_text, units
from bot.offline import TOKEN, RecordingRequest, button_update, message_update
from bot.service import PRIVATE_ONLY, ChatService
from bot.storage import open_storage
from bot.telegram_app import EDITED, NO_CHAT, build_application
from flows import parsing, steps
from flows.reminders import parse_time
from flows.replies import Button, Env, Reply
from flows.state import Answers
from tests.databases import fresh_url

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
TODAY = NOW.date()
LABEL_QUESTION = "Type a label for the patient (a code with a digit, e.g. RX-12 or bed 4; no names)."
TO_LABEL = ["/new", "Romiplostim", "US label"]


async def service_at(tmp_path: Path) -> ChatService:
    return ChatService(await open_storage(fresh_url(tmp_path, "h")), clock=lambda: NOW)  # or PostgreSQL


# --- 1. length limit, linear parsing, replies within 4,096 -------------------------------------


async def test_a_message_over_the_limit_is_refused_and_the_question_asked_again(tmp_path: Path):
    service = await service_at(tmp_path)
    for typed in TO_LABEL:
        await service.handle("local:a", "local:a", text=typed)
    huge = "RX-12 " * 20_000
    replies = await service.handle("local:a", "local:a", text=huge)
    assert [r.text for r in replies] == [
        f"That message is {len(huge):,} characters long; an answer here is never more than 1,000. "
        "Nothing from it was entered. Send a shorter answer:",
        LABEL_QUESTION,
    ]
    # nothing was lost: the same question takes the answer
    [reply] = await service.handle("local:a", "local:a", text="RX-12")
    assert reply.text == "Body weight in kg?"
    # a message at the limit is read as usual
    [reply] = await service.handle("local:a", "local:a", text="7" * MAX_TEXT)
    assert reply.text.startswith(f"{'7' * MAX_TEXT} is far too large for the weight.")
    await service.storage.close()


async def test_a_huge_command_argument_is_refused_before_any_query(tmp_path: Path):
    service = await service_at(tmp_path)
    replies = await service.handle("local:a", "local:a", text="/history " + "A" * 200_000)
    assert replies[0].text.startswith("That message is 200,009 characters long")
    assert replies[1].text == "Start a new consultation when you are ready."
    assert all(units(r.text) <= MAX_REPLY for r in replies)
    await service.storage.close()


N = 100_000
# The shapes that made the old patterns backtrack: runs of spaces, digits, words after a number or a date.
SHAPES = {
    "spaces after a number and a word": "1 a" + " " * N + "x",
    "spaces after a date": "2026-11-01 1 a" + " " * N + "x",
    "digits": "1" * N + "x",
    "words": "x " * (N // 2),
    "numbers": "1 " * (N // 2) + "x",
    "a date and numbers": "2026-11-01 " + "1 " * (N // 2) + "x",
    "spaces after an hour": "8" + " " * N + "x",
    "dotted digits": "1." * (N // 2) + "x",
}
ROMIPLOSTIM_ON = Answers(
    drug="romiplostim", indication="itp", region="us", status="on", dose_amount=3, dose_since=dt.date(2026, 11, 1)
)
PARSERS: dict[str, Callable[[str], object]] = {
    "number with a unit": lambda s: parsing.parse_number(s, what="count", example="1", units=parsing.PLATELET_UNITS),
    "number": lambda s: parsing.parse_number(s, what="age", example="1"),
    "date": lambda s: parsing.parse_date(s, TODAY, what="date"),
    "time": parse_time,
    "count line": lambda s: steps.STEP_BY_NAME["counts"].parse(s, ROMIPLOSTIM_ON, parsing_env()),
    "transfusion line": lambda s: steps.STEP_BY_NAME["transfusions"].parse(
        s, ROMIPLOSTIM_ON.model_copy(update={"drug": "luspatercept"}), parsing_env()
    ),
    "label": lambda s: steps.STEP_BY_NAME["patient"].parse(s, ROMIPLOSTIM_ON, parsing_env()),
}


def parsing_env() -> Env:

    return Env(TODAY)


@pytest.mark.parametrize("parser", PARSERS)
def test_parsing_is_linear_in_the_length_of_the_text(parser: str):
    """A regression guard against catastrophic backtracking, not a timing goal: each 100 KB shape took
    25 to 73 s before (quadratic); linear parsing does them all in milliseconds, so 1 s is generous."""
    parse = PARSERS[parser]
    for shape, text in SHAPES.items():
        started = time.perf_counter()
        parse(text)
        assert time.perf_counter() - started < 1.0, f"{parser} on {shape}"


def test_the_fixed_parsers_still_read_what_they_read():
    assert parsing.parse_number(" 52 x10^9/l ", what="c", example="1", units=parsing.PLATELET_UNITS) == (
        Decimal(52),
        "10^9/L",
    )
    assert parsing.parse_number("52 000", what="c", example="1", units=parsing.PLATELET_UNITS) == (
        Decimal(52000),
        "10^9/L",
    )
    assert parsing.parse_number("8,9", what="h", example="1", units=parsing.HEMOGLOBIN_UNITS) == (
        Decimal("8.9"),
        "g/dL",
    )
    assert parsing.parse_number("72 kg", what="age", example="45") == parsing.Problem(
        "Type the age as a number only, without 'kg'."
    )
    assert parse_time(" 8 pm ") == dt.time(20)
    assert parse_time("08:30") == dt.time(8, 30)
    assert parse_time("8.15 a.m.") == dt.time(8, 15)
    assert isinstance(parse_time("8 x"), parsing.Problem)
    lus = Answers(drug="luspatercept", status="on", dose_since=dt.date(2026, 10, 1))
    parse = steps.STEP_BY_NAME["transfusions"].parse
    by_date, by_days_ago = parse("2026-11-08 2 units", lus, parsing_env()), parse("3 days ago 1u", lus, parsing_env())
    assert isinstance(by_date, dict)
    assert isinstance(by_days_ago, dict)
    assert by_date["transfusions"][-1].units == 2
    assert by_days_ago["transfusions"][-1].date == dt.date(2026, 11, 19)


def test_a_long_reply_is_split_between_lines_with_its_buttons_on_the_last_part():
    lines = [f"2026-11-{day % 28 + 1:02d} platelets {day} 10^9/L (entry {day})" for day in range(400)]
    button = Button("New consultation", "new")
    parts = fit([Reply("\n".join(lines), ((button,),))])
    assert len(parts) > 1
    assert all(units(p.text) <= MAX_REPLY for p in parts)
    assert "\n".join(p.text for p in parts) == "\n".join(lines)  # split at line boundaries, nothing lost
    assert [p.buttons for p in parts] == [()] * (len(parts) - 1) + [((button,),)]


def test_a_line_too_long_for_one_message_is_cut_with_a_note_and_a_huge_reply_stops_after_five_parts():
    [part] = split_text("🩸" * 5000)  # astral characters count two for Telegram
    assert part.endswith(CUT_NOTE)
    assert units(part) <= MAX_REPLY
    parts = split_text("\n".join("x" * 1000 for _ in range(100)))
    assert len(parts) == 5
    assert all(units(p) <= MAX_REPLY for p in parts)
    assert parts[-1].endswith("more lines not shown: too long for the chat)")


async def test_history_with_many_entries_stays_within_telegram_s_limit(tmp_path: Path):
    from flows import listings

    events = [(TODAY - dt.timedelta(days=i), "recommendation: " + "increase 4 mcg/kg " * 8) for i in range(300)]
    reply = listings.history("RX-12", events)
    assert units(reply.text) > MAX_REPLY  # the case the limit is for
    assert all(units(p.text) <= MAX_REPLY for p in fit([reply]))


# --- 2. labels that look like names ------------------------------------------------------------

NAMES = ["Smith", "JOHNSMITH", "john.smith", "J.Smith", "John_Smith", "Smith 1950", "Mary-Jane", "Anna", "john.smith1"]


@pytest.mark.parametrize("typed", NAMES)
def test_a_name_like_label_is_refused(typed: str):
    parsed = steps.STEP_BY_NAME["patient"].parse(typed, Answers(drug="romiplostim"), parsing_env())
    assert isinstance(parsed, parsing.Problem)
    if not any(char.isdigit() for char in typed):
        assert parsed.message == "A patient label needs at least one digit, e.g. RX-12 or bed 4; no names."
    else:
        assert "looks like it holds a name" in parsed.message


@pytest.mark.parametrize("typed", ["RX-12", "bed 4", "AB12", "JS-01", "ward 3", "room 12B", "H-S1", "ICU 7"])
def test_a_code_with_a_digit_is_a_label(typed: str):
    parsed = steps.STEP_BY_NAME["patient"].parse(typed, Answers(drug="romiplostim"), parsing_env())
    assert parsed == {"patient_label": typed, "patient_is_new": True, "history_labs": [], "record": None}


# --- 3. private chats only; 4. damaged buttons; 5. flood control --------------------------------


async def run_app(
    tmp_path: Path, updates: list[dict[str, Any]], flood: FloodGate | None = None
) -> tuple[RecordingRequest, ChatService]:
    service = await service_at(tmp_path)
    request = RecordingRequest()
    app = build_application(TOKEN, service, frozenset({1001}), request=request, polling=False, flood=flood)
    await app.initialize()
    try:
        for update in updates:
            await app.process_update(Update.de_json(update, app.bot))
    finally:
        await app.shutdown()
    return request, service


def in_group(update: dict[str, Any], kind: str = "group") -> dict[str, Any]:
    update["message"]["chat"] = {"id": -4242, "type": kind, "title": "Ward team"}
    return update


@pytest.mark.parametrize("kind", ["group", "supergroup"])
async def test_in_a_group_every_update_gets_one_line_and_nothing_is_read_or_kept(tmp_path: Path, kind: str):
    updates = [in_group(message_update(i, 1001, -4242, text), kind) for i, text in enumerate(["/history RX-1", "/new"])]
    request, service = await run_app(tmp_path, updates)
    assert [(m.chat_id, m.text) for m in request.sent] == [(-4242, PRIVATE_ONLY), (-4242, PRIVATE_ONLY)]
    from sqlalchemy import func, select

    from bot.storage.tables import ConversationRow, User

    async with service.storage.session() as session:
        assert await session.scalar(select(func.count(User.id))) == 0
        assert await session.scalar(select(func.count()).select_from(ConversationRow)) == 0
    await service.storage.close()


async def test_a_channel_post_gets_the_one_line(tmp_path: Path):
    post = message_update(1, 1001, -100777, "/new")["message"]
    del post["from"]
    post["chat"] = {"id": -100777, "type": "channel", "title": "News"}
    request, service = await run_app(tmp_path, [{"update_id": 1, "channel_post": post}])
    assert [m.text for m in request.sent] == [PRIVATE_ONLY]
    await service.storage.close()


async def test_the_service_itself_refuses_a_group_chat_so_no_reminder_can_be_keyed_to_one(tmp_path: Path):
    service = await service_at(tmp_path)
    assert [r.text for r in await service.handle("tg:1001", "tg:-4242:1001", text="/new")] == [PRIVATE_ONLY]
    assert [r.text for r in await service.handle("tg:1001", "tg:-4242:1001", button="oc:t:1")] == [PRIVATE_ONLY]
    await service.storage.close()


@pytest.mark.parametrize("data", ["oc:t:" + "9" * 25, "rm:p:" + "1" * 25, "oc:d:1:2026110", "x" * 65, "v:\x00", ""])
async def test_damaged_button_data_gets_a_clear_reply_and_the_question_again(tmp_path: Path, data: str):
    service = await service_at(tmp_path)
    for typed in TO_LABEL:
        await service.handle("local:a", "local:a", text=typed)
    replies = await service.handle("local:a", "local:a", button=data)
    assert [r.text for r in replies] == [BAD_BUTTON, LABEL_QUESTION]
    await service.storage.close()


async def test_a_25_digit_id_pressed_in_telegram_is_answered_not_a_traceback(tmp_path: Path):
    pressed_on = message_update(1, 1001, 1001, "x")["message"]
    request, service = await run_app(tmp_path, [button_update(2, 1001, pressed_on, "oc:t:" + "1" * 25)])
    assert [m.text for m in request.sent] == [BAD_BUTTON, "Start a new consultation when you are ready."]
    await service.storage.close()


async def test_an_inline_button_without_a_message_is_answered_in_its_pop_up(tmp_path: Path):
    update = button_update(1, 1001, {}, "new")
    del update["callback_query"]["message"]
    update["callback_query"]["inline_message_id"] = "inline-1"
    request, service = await run_app(tmp_path, [update])
    assert request.sent == []
    [(_, params)] = [call for call in request.calls if call[0] == "answerCallbackQuery"]
    assert params["text"] == NO_CHAT
    await service.storage.close()


async def test_an_edited_message_is_answered_not_a_traceback(tmp_path: Path):
    update = message_update(1, 1001, 1001, "72")
    update["edited_message"] = update.pop("message")
    update["edited_message"]["edit_date"] = update["edited_message"]["date"]
    request, service = await run_app(tmp_path, [update])
    assert [m.text for m in request.sent] == [EDITED]
    await service.storage.close()


async def test_a_flood_gets_one_slow_down_note_and_every_message_answered_in_order(tmp_path: Path):
    clock = iter(float(i) / 10 for i in range(1000))  # 10 updates a second
    gate = FloodGate(limit=20, window=10.0, clock=lambda: next(clock))
    sent = [*TO_LABEL, *(f"RX-{n}" for n in range(1, 28))]
    updates = [message_update(i, 1001, 1001, text) for i, text in enumerate(sent, 1)]
    request, service = await run_app(tmp_path, updates, gate)
    texts = [m.text for m in request.sent]
    assert texts.count(SLOW_DOWN) == 1
    assert texts.index(SLOW_DOWN) == 20  # told before the 21st update's answer, which still comes
    # every message was handled, in order: RX-1 is the label, RX-2 ... RX-27 are each refused as the weight
    answered = [t for t in texts if t != SLOW_DOWN]
    assert len(answered) == len(sent)
    assert answered[3] == "Body weight in kg?"
    assert [t.split("\n")[0] for t in answered[4:]] == [
        f"I could not read 'RX-{n}' as the weight. Type a number, e.g. 72." for n in range(2, 28)
    ]
    await service.storage.close()


def test_the_slow_down_note_comes_once_per_window():
    now = [0.0]
    gate = FloodGate(limit=3, window=10.0, clock=lambda: now[0])
    said = []
    for step in range(40):
        now[0] = step * 0.5
        said.append(gate.arrived(7))
    assert [i for i, s in enumerate(said) if s] == [3, 23]  # the 4th update, then once 10 s later
    assert gate.arrived(8) is False  # another user is counted apart


def test_an_update_posted_again_is_not_counted_again():
    """Webhook mode: Telegram posts an update not answered 200 again, every second while a replica's lease
    runs. Three messages posted eight times each are three messages, not 24: no slow-down note."""
    now = [0.0]
    gate = FloodGate(limit=3, window=10.0, clock=lambda: now[0])
    said = []
    for step in range(24):
        now[0] = step * 0.3
        said.append(gate.arrived(7, 100 + step // 8))
    assert not any(said)
    assert gate.arrived(7, 103) is True  # a fourth message is one too many


# --- 6. the same new user started twice at once ----------------------------------------------


def test_twenty_first_contacts_of_one_new_user_at_once_all_succeed(tmp_path: Path):
    exe = Path(sys.executable).parent / "hemadose"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEMADOSE_")} | {"HEMADOSE_DATA_DIR": str(tmp_path)}
    subprocess.run(
        [str(exe), "chat", "--user", "seed"], stdin=subprocess.DEVNULL, env=env, capture_output=True, check=True
    )
    started = [
        subprocess.Popen(
            [str(exe), "chat", "--user", "newbie"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(20)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in started]
    assert [code for code, _, _ in results] == [0] * 20, [err for _, _, err in results if err][:1]
    assert all("Welcome to HemaDose" in out for _, out, _ in results)
