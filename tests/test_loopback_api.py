"""The loopback Bot API itself (tests/loopback_bot_api.py): what it answers, records and refuses,
through python-telegram-bot's own `Bot` over real HTTP, as `hemadose run` reaches it."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Conflict, EndPointNotFound, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.request import HTTPXRequest

from bot.offline import BOT_USER, TOKEN, message_update
from tests.loopback_bot_api import LoopbackBotApi

CHAT = 1001


@pytest.fixture
def api() -> Iterator[LoopbackBotApi]:
    with LoopbackBotApi() as server:
        yield server


@pytest.fixture
async def bot(api: LoopbackBotApi) -> AsyncIterator[Bot]:
    request = HTTPXRequest(read_timeout=1.0)
    async with Bot(TOKEN, base_url=f"{api.base_url}/bot", request=request, get_updates_request=request) as client:
        yield client


def retry_after(error: RetryAfter) -> float:
    return error._retry_after.total_seconds()


async def test_get_me_answers_the_bot_and_every_accepted_call_is_recorded(api: LoopbackBotApi, bot: Bot):
    before = time.monotonic()
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Romiplostim", callback_data="v:romiplostim")]])
    sent = await bot.send_message(CHAT, "Which drug?", reply_markup=markup)
    assert bot.username == BOT_USER["username"]
    assert [call.method for call in api.calls] == ["getMe", "sendMessage"]
    call = api.calls[1]
    assert call.params == {
        "chat_id": CHAT,
        "text": "Which drug?",
        "reply_markup": {"inline_keyboard": [[{"text": "Romiplostim", "callback_data": "v:romiplostim"}]]},
    }
    assert before <= call.time <= time.monotonic()
    assert call.result["message_id"] == sent.message_id == 1
    assert sent.reply_markup == markup
    assert api.texts(CHAT) == ["Which drug?"]


async def test_edits_answers_commands_and_the_webhook(api: LoopbackBotApi, bot: Bot):
    edited = await bot.edit_message_text("Drug: Romiplostim", chat_id=CHAT, message_id=7)
    assert getattr(edited, "message_id", None) == 7
    await bot.edit_message_reply_markup(chat_id=CHAT, message_id=7, reply_markup=None)
    assert await bot.answer_callback_query("42") is True
    await bot.set_my_commands([BotCommand("new", "start a consultation")])
    assert [(c.command, c.description) for c in await bot.get_my_commands()] == [("new", "start a consultation")]
    assert await bot.set_webhook("https://hemadose.example/telegram", secret_token="s3cret") is True
    assert (await bot.get_webhook_info()).url == "https://hemadose.example/telegram"
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates(timeout=0)
    assert await bot.delete_webhook() is True
    assert api.accepted("setWebhook")[0].params["secret_token"] == "s3cret"
    assert api.accepted("answerCallbackQuery")[0].params == {"callback_query_id": "42"}
    assert await bot.get_updates(timeout=0) == ()


async def test_photos_and_documents_come_as_multipart_with_their_file(api: LoopbackBotApi, bot: Bot):
    document = await bot.send_document(CHAT, io.BytesIO(b"x" * 1500), filename="card.pdf", caption="The card")
    assert document.document is not None
    assert document.document.file_name == "card.pdf"
    await bot.send_photo(CHAT + 1, io.BytesIO(b"\x89PNG" + b"0" * 96), filename="chart.png")
    [sent_document] = api.accepted("sendDocument")
    assert sent_document.files == {"document": ("card.pdf", 1500)}
    assert sent_document.params["caption"] == "The card"
    assert sent_document.params["chat_id"] == CHAT
    assert api.accepted("sendPhoto")[0].files == {"photo": ("chart.png", 100)}


async def test_a_text_over_4096_characters_is_refused(api: LoopbackBotApi, bot: Bot):
    await bot.send_message(CHAT, "x" * 4096)
    with pytest.raises(BadRequest, match=r"^Message is too long$"):
        await bot.send_message(CHAT + 1, "x" * 4097)
    with pytest.raises(BadRequest, match=r"^Message is too long$"):
        await bot.edit_message_text("x" * 4097, chat_id=CHAT, message_id=1)
    assert [len(text) for text in api.texts()] == [4096]
    assert [(call.method, code) for call, code in api.refused] == [("sendMessage", 400), ("editMessageText", 400)]


async def test_a_second_message_to_a_chat_within_a_second_waits(api: LoopbackBotApi, bot: Bot):
    now = [1000.0]
    api.clock = lambda: now[0]
    await bot.send_message(CHAT, "one")
    await bot.send_message(CHAT + 1, "another chat")  # the limit is per chat
    now[0] += 0.999
    with pytest.raises(RetryAfter) as refused:
        await bot.send_message(CHAT, "two")
    assert retry_after(refused.value) == 1
    assert api.texts() == ["one", "another chat"]
    now[0] += 0.001
    await bot.send_message(CHAT, "two")
    assert api.texts(CHAT) == ["one", "two"]
    assert [call.time for call in api.accepted("sendMessage")] == [1000.0, 1000.0, 1001.0]


async def test_more_than_30_messages_a_second_overall_wait(api: LoopbackBotApi, bot: Bot):
    api.clock = lambda: 1000.0  # all within the same second, however slow the machine
    await asyncio.gather(*(bot.send_message(CHAT + n, f"to {n}") for n in range(30)))
    with pytest.raises(RetryAfter) as refused:
        await bot.send_message(CHAT + 30, "the 31st")
    assert retry_after(refused.value) == 1
    assert len(api.texts()) == 30


async def test_limits_can_be_switched_off(api: LoopbackBotApi, bot: Bot):
    api.limits = False
    for n in range(3):
        await bot.send_message(CHAT, f"{n}" + "x" * 5000)
    assert len(api.texts(CHAT)) == 3
    assert not api.refused


async def test_long_polling_hands_out_queued_updates_until_confirmed(api: LoopbackBotApi, bot: Bot):
    assert await bot.get_updates(timeout=0) == ()
    started = time.monotonic()
    assert await bot.get_updates(timeout=dt.timedelta(seconds=0.3)) == ()  # nothing queued: waits the timeout
    assert time.monotonic() - started >= 0.3
    first = api.say(CHAT, "/start")["update_id"]
    api.say(CHAT, "72")
    updates = await bot.get_updates(timeout=5)
    assert [u.message.text for u in updates if u.message] == ["/start", "72"]
    assert [u.update_id for u in await bot.get_updates(offset=first + 1, timeout=0)] == [first + 1]
    waiting = asyncio.create_task(bot.get_updates(offset=first + 2, timeout=dt.timedelta(seconds=0.9), read_timeout=5))
    await asyncio.sleep(0.1)
    api.say(CHAT, "32")  # wakes the waiting poll at once
    [update] = await waiting
    assert update.message is not None
    assert update.message.text == "32"


async def test_unknown_methods_are_recorded_and_refused(api: LoopbackBotApi, bot: Bot):
    with pytest.raises(EndPointNotFound, match="'sendHologram' not found"):
        await bot.do_api_request("sendHologram", api_kwargs={"chat_id": CHAT})
    assert [(call.method, call.params) for call in api.unknown] == [("sendHologram", {"chat_id": CHAT})]
    assert api.calls[-1].method == "getMe"


async def test_a_wrong_token_is_unauthorized(api: LoopbackBotApi):
    with pytest.raises(InvalidToken):
        async with Bot("123:WRONG", base_url=f"{api.base_url}/bot"):
            pass
    assert api.calls == []


async def test_faults_on_request(api: LoopbackBotApi, bot: Bot):
    api.fail("sendMessage", "429", retry_after=7)
    api.fail("sendMessage", "502", times=2)
    api.fail("sendMessage", "drop")
    with pytest.raises(RetryAfter) as asked:
        await bot.send_message(CHAT, "a")
    assert retry_after(asked.value) == 7
    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(CHAT, "b")
    with pytest.raises(NetworkError):
        await bot.send_message(CHAT, "c")
    await bot.send_message(CHAT, "d")
    assert api.texts() == ["d"]
    assert [(call.params["text"], code) for call, code in api.refused] == [("a", 429), ("b", 502), ("b", 502), ("c", 0)]


async def test_a_time_out_holds_the_request_past_the_client_time_out(api: LoopbackBotApi, bot: Bot):
    api.fail("sendMessage", "timeout", seconds=1.5)
    started = time.monotonic()
    with pytest.raises(TimedOut):
        await bot.send_message(CHAT, "held", read_timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 1.5
    assert api.texts() == []
    await bot.send_message(CHAT + 1, "next")
    assert api.texts() == ["next"]


def test_plain_http_and_json_bodies_are_read_too(api: LoopbackBotApi):
    url = f"{api.base_url}/bot{TOKEN}"
    answer = httpx.post(f"{url}/sendMessage", json={"chat_id": CHAT, "text": "json", "reply_markup": {"a": 1}})
    assert answer.json()["result"]["text"] == "json"
    assert api.calls[-1].params == {"chat_id": CHAT, "text": "json", "reply_markup": {"a": 1}}
    assert httpx.get(f"{url}/getMe").json() == {"ok": True, "result": BOT_USER}
    assert httpx.get(f"{api.base_url}/nowhere").status_code == 404
    # what goes over the wire when a limit refuses, as Telegram words it
    too_long = httpx.post(f"{url}/sendMessage", data={"chat_id": str(CHAT + 1), "text": "x" * 4097})
    assert (too_long.status_code, too_long.json()) == (
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"},
    )
    too_soon = httpx.post(f"{url}/sendMessage", data={"chat_id": str(CHAT), "text": "again"})
    assert (too_soon.status_code, too_soon.json()) == (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 1",
            "parameters": {"retry_after": 1},
        },
    )


def test_updates_are_posted_to_the_webhook_with_its_secret_token(api: LoopbackBotApi):
    received: list[tuple[str | None, dict[str, object]]] = []

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers.get("X-Telegram-Bot-Api-Secret-Token"), json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with ThreadingHTTPServer(("127.0.0.1", 0), Receiver) as receiver:
        threading.Thread(target=receiver.handle_request, daemon=True).start()
        url = f"{api.base_url}/bot{TOKEN}"
        webhook = f"http://127.0.0.1:{receiver.server_address[1]}/telegram"
        httpx.post(f"{url}/setWebhook", data={"url": webhook, "secret_token": "s3cret"})
        assert api.deliver(message_update(5, CHAT, CHAT, "/start")) == 200
    assert received == [("s3cret", message_update(5, CHAT, CHAT, "/start"))]
    assert api.pushed == [message_update(5, CHAT, CHAT, "/start")]
