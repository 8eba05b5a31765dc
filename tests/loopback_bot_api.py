"""A loopback Bot API: a real HTTP server on 127.0.0.1 that answers like Telegram, for running the
real `hemadose run` process end to end (issue 13, item 4).

bot/offline.py's `RecordingRequest` is the in-process counterpart (no HTTP); this one is reached
through python-telegram-bot's own httpx transport, so time-outs, dropped connections and HTTP
status codes are the real thing. Standard library only (`ThreadingHTTPServer` in a thread).

- Updates are queued by the test (`push`) and handed out by `getUpdates` (long polling: `offset`
  confirms, `timeout` waits); once `setWebhook` is set, getUpdates answers 409 and the test posts
  each update to the webhook (`deliver`, with the secret token header).
- Every accepted call is recorded (`calls`: method, params, time, result); calls refused by a limit
  or a fault are in `refused`; unknown methods in `unknown` (answered 404, as Telegram does).
- Telegram's limits (`limits=True`, switchable per test): text over 4,096 characters (captions
  over 1,024) is a 400; more than 30 messages a second overall, or a second message to a chat
  within a second, is a 429 with `parameters.retry_after`.
- Faults on request (`fail`): the next N calls of a method get a 429, a 502, a time-out (the
  server holds the request past the client's time-out, then drops it) or a dropped connection;
  or a share of all calls of some methods, drawn from a seeded generator (`chaos`).
- Standing in for Telegram *and* a load-balancing proxy (`balance`): `post` hands an update to one
  of several replicas (round robin) and, as Telegram does, posts it again, to the next replica,
  until one answers 200 (every attempt is in `posts`).
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import math
import random
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from bot.offline import BOT_USER, TOKEN, button_update, message_update

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
OVERALL_PER_SECOND = 30
PER_CHAT_SECONDS = 1.0
SENDING = frozenset({"sendMessage", "sendPhoto", "sendDocument"})
# Parameters sent JSON-encoded by python-telegram-bot (RequestParameter.json_value): decoded back.
JSON_PARAMS = frozenset(
    {"reply_markup", "entities", "caption_entities", "commands", "scope", "allowed_updates", "link_preview_options"}
)
INT_PARAMS = frozenset({"chat_id", "message_id", "offset", "limit", "timeout", "user_id", "max_connections"})
Fault = Literal["429", "502", "timeout", "drop"]


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    time: float  # time.monotonic() when it arrived
    result: Any = None
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # field -> (file name, bytes)


@dataclass
class Post:
    """One attempt to post an update to a replica (`LoopbackBotApi.post`)."""

    update_id: int
    replica: int  # index into `LoopbackBotApi.upstreams`
    status: int  # the HTTP status (0: no answer: refused, reset, timed out)
    started: float  # time.monotonic()
    ended: float


@dataclass
class _Chaos:
    rate: float
    kinds: tuple[Fault, ...]
    methods: frozenset[str]
    rng: random.Random
    retry_after: int
    seconds: float


@dataclass
class _Planned:
    kind: Fault
    left: int
    retry_after: int
    seconds: float


def post_update(url: str, update: dict[str, Any], secret: str | None, timeout: float = 20.0) -> int:
    """Post `update` to a webhook as Telegram does (the secret in its header when one is set); the HTTP
    status the bot answered (0: no answer)."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(url, json.dumps(update).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return 0


class _Server(ThreadingHTTPServer):
    """A listen backlog of 128, not socketserver's 5: 30 connections opened at once (a burst of sends
    on a slow machine) must queue, not be reset (Telegram's server does not reset them either)."""

    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone mid-request (killed, timed out) is no server error: nothing printed for it."""
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            answer["parameters"] = {"retry_after": self.retry_after}
        return answer


class LoopbackBotApi:
    """Start with `with LoopbackBotApi() as api:`; `api.base_url` is what HEMADOSE_TELEGRAM_BASE_URL takes."""

    def __init__(self, token: str = TOKEN, *, limits: bool = True) -> None:
        self.token = token
        self.limits = limits
        self.calls: list[Call] = []
        self.refused: list[tuple[Call, int]] = []  # (call, HTTP status)
        self.by_chat: dict[int, list[Call]] = {}  # the accepted calls naming a chat, per chat (`chat_calls`)
        self.unknown: list[Call] = []
        self.webhook_url = ""
        self.webhook_secret = ""
        self.commands: list[dict[str, Any]] = []
        self._updates: list[dict[str, Any]] = []
        self.pushed: list[dict[str, Any]] = []  # every update the test queued
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._faults: dict[str, list[_Planned]] = {}
        self._chaos: _Chaos | None = None
        self.upstreams: list[str] = []  # the replicas' webhook URLs (`balance`)
        self.posts: list[Post] = []
        # Telegram opens at most setWebhook's max_connections (default 40) posts at once, over all replicas.
        self.max_connections = 40
        self._posting = threading.BoundedSemaphore(self.max_connections)
        self._turn = itertools.count()
        self._sent_at: deque[float] = deque()
        self._chat_sent_at: dict[int, float] = {}
        self._changed = threading.Condition()
        self._closing = False
        self.clock = time.monotonic  # a test may stop it, to make the rate limits exact
        self.polls = 0  # getUpdates requests that arrived (a long poll is recorded only when it returns)
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="loopback-bot-api", daemon=True
        )

    # -- life -----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackBotApi:
        self._thread.start()
        return self

    def close(self) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackBotApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the test does ----------------------------------------------------------------------
    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update (its update_id is given if it has none) for the next getUpdates."""
        with self._changed:
            if "update_id" not in update:
                update["update_id"] = next(self._update_ids)
            self._updates.append(update)
            self.pushed.append(update)
            self._changed.notify_all()
        return update

    def say(self, user_id: int, text: str, chat_id: int | None = None) -> dict[str, Any]:
        """A user's text message in their private chat."""
        return self.push(message_update(next(self._update_ids), user_id, chat_id or user_id, text))

    def press(self, user_id: int, message: dict[str, Any], label: str) -> dict[str, Any]:
        """A press on the button labelled `label` of a message the bot sent (as it returned it)."""
        rows = message.get("reply_markup", {}).get("inline_keyboard", [])
        data = next(b["callback_data"] for row in rows for b in row if b["text"] == label)
        return self.push(button_update(next(self._update_ids), user_id, message, data))

    def deliver(self, update: dict[str, Any], timeout: float = 10.0) -> int:
        """Post an update to the webhook set by `setWebhook`, as Telegram does (with its secret token
        header when one was set); the HTTP status the bot answered (0: no answer)."""
        with self._changed:
            url, secret = self.webhook_url, self.webhook_secret
            if "update_id" not in update:
                update["update_id"] = next(self._update_ids)
            self.pushed.append(update)
        assert url, "no webhook set: the bot polls (use push)"
        return post_update(url, update, secret or None, timeout)

    def fail(self, method: str, kind: Fault, times: int = 1, *, retry_after: int = 1, seconds: float = 6.0) -> None:
        """The next `times` calls of `method` get `kind`: 429 (with retry_after), 502, a time-out
        (held `seconds`, then dropped unanswered) or a connection closed with no answer."""
        with self._changed:
            self._faults.setdefault(method, []).append(_Planned(kind, times, retry_after, seconds))

    def chaos(
        self,
        rate: float,
        methods: frozenset[str],
        kinds: tuple[Fault, ...] = ("429", "502", "timeout"),
        *,
        seed: int = 0,
        retry_after: int = 1,
        seconds: float = 6.0,
    ) -> None:
        """From now on a share `rate` of the calls of `methods` fail, each with one of `kinds` drawn from
        a generator seeded with `seed` (rate 0: none). Planned faults (`fail`) come first."""
        with self._changed:
            self._chaos = _Chaos(rate, kinds, methods, random.Random(seed), retry_after, seconds) if rate else None

    def balance(self, upstreams: list[str]) -> None:
        """The replicas' webhook URLs `post` spreads updates over (as a proxy in front of them would)."""
        with self._changed:
            self.upstreams = list(upstreams)

    def post(self, update: dict[str, Any], *, patience: float = 120.0, timeout: float = 20.0) -> int:
        """Post `update` as Telegram does through a load balancer: to the replicas in turn, again to the
        next one after any answer but 200 (none, a 5xx: killed, stopping, overloaded), until one answers
        200; the index of that replica (AssertionError after `patience` seconds)."""
        with self._changed:
            if "update_id" not in update:
                update["update_id"] = next(self._update_ids)
            self.pushed.append(update)
            upstreams, secret = list(self.upstreams), self.webhook_secret or None
            first = next(self._turn)
        assert upstreams, "no replicas to post to: balance() first"
        deadline = time.monotonic() + patience
        for attempt in itertools.count():
            index = (first + attempt) % len(upstreams)
            with self._posting:
                started = time.monotonic()
                status = post_update(upstreams[index], update, secret, timeout)
            with self._changed:
                self.posts.append(Post(int(update["update_id"]), index, status, started, time.monotonic()))
            if status == 200:
                return index
            assert time.monotonic() < deadline, f"update {update['update_id']} not taken in {patience} s"
            if attempt % len(upstreams) == len(upstreams) - 1:  # every replica refused it: Telegram waits
                time.sleep(min(0.05 * 2 ** (attempt // len(upstreams)), 1.0))  # longer each time, up to 1 s
        raise AssertionError("unreachable")

    def accepted(self, method: str) -> list[Call]:
        with self._changed:
            return [call for call in self.calls if call.method == method]

    def chat_calls(self, chat_id: int) -> list[Call]:
        """The accepted calls to one chat, in order (kept per chat: no scan of every call)."""
        with self._changed:
            return list(self.by_chat.get(chat_id, []))

    def texts(self, chat_id: int | None = None) -> list[str]:
        """The texts of the accepted sendMessage calls (to one chat), in order."""
        return [
            str(call.params.get("text", ""))
            for call in self.accepted("sendMessage")
            if chat_id is None or call.params.get("chat_id") == chat_id
        ]

    def wait_for(self, method: str, count: int, timeout: float = 10.0) -> list[Call]:
        """Until `count` calls of `method` were accepted; all of them (AssertionError on time-out)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                calls = [call for call in self.calls if call.method == method]
                if len(calls) >= count:
                    return calls
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(c.method, c.params.get("text", "")) for c in self.calls]
                    raise AssertionError(f"{len(calls)} of {count} {method} calls after {timeout} s; calls: {seen}")
                self._changed.wait(left)

    def polled(self, timeout: float = 10.0) -> None:
        """Until the bot is polling (its first getUpdates arrived)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self.polls:
                left = deadline - time.monotonic()
                assert left > 0, f"no getUpdates after {timeout} s; calls: {[c.method for c in self.calls]}"
                self._changed.wait(left)

    # -- answering -------------------------------------------------------------------------------
    def _fault(self, method: str) -> _Planned | None:
        with self._changed:
            planned = self._faults.get(method, [])
            if not planned:
                chaos = self._chaos
                if chaos is None or method not in chaos.methods or chaos.rng.random() >= chaos.rate:
                    return None
                return _Planned(chaos.rng.choice(chaos.kinds), 1, chaos.retry_after, chaos.seconds)
            fault = planned[0]
            fault.left -= 1
            if fault.left <= 0:
                planned.pop(0)
            return fault

    def _check_limits(self, method: str, params: dict[str, Any], now: float) -> None:
        text = params.get("text")
        if method in ("sendMessage", "editMessageText") and isinstance(text, str):
            if not text:
                raise ApiError(400, "Bad Request: message text is empty")
            if self.limits and len(text) > TEXT_LIMIT:
                raise ApiError(400, "Bad Request: message is too long")
        caption = params.get("caption")
        if self.limits and isinstance(caption, str) and len(caption) > CAPTION_LIMIT:
            raise ApiError(400, "Bad Request: message caption is too long")
        if not self.limits or method not in SENDING:
            return
        while self._sent_at and now - self._sent_at[0] >= 1.0:
            self._sent_at.popleft()
        if len(self._sent_at) >= OVERALL_PER_SECOND:
            wait = 1.0 - (now - self._sent_at[0])
            raise ApiError(429, f"Too Many Requests: retry after {math.ceil(wait)}", math.ceil(wait))
        chat = params.get("chat_id")
        last = self._chat_sent_at.get(chat) if isinstance(chat, int) else None
        if last is not None and now - last < PER_CHAT_SECONDS:
            wait = max(1, math.ceil(PER_CHAT_SECONDS - (now - last)))
            raise ApiError(429, f"Too Many Requests: retry after {wait}", wait)
        self._sent_at.append(now)
        if isinstance(chat, int):
            self._chat_sent_at[chat] = now

    def _message(self, params: dict[str, Any], message_id: int | None = None) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        message: dict[str, Any] = {
            "message_id": message_id if message_id is not None else next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if isinstance(chat_id, int) and chat_id > 0 else "group"},
            "from": BOT_USER,
        }
        if "text" in params:
            message["text"] = params["text"]
        if "caption" in params:
            message["caption"] = params["caption"]
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        if message_id is not None:
            message["edit_date"] = int(time.time())
        return message

    def answer(self, method: str, call: Call) -> Any:
        """The result of an accepted call (under the lock); ApiError for a refusal."""
        params = call.params
        self._check_limits(method, params, call.time)
        if method == "getMe":
            return BOT_USER
        if method in ("setWebhook", "deleteWebhook"):
            self.webhook_url = str(params.get("url", "")) if method == "setWebhook" else ""
            self.webhook_secret = str(params.get("secret_token", "")) if method == "setWebhook" else ""
            if method == "setWebhook" and isinstance(params.get("max_connections"), int):
                self.max_connections = int(params["max_connections"])
                self._posting = threading.BoundedSemaphore(self.max_connections)
            if method == "deleteWebhook" and str(params.get("drop_pending_updates", "")).lower() == "true":
                self._updates.clear()
            return True
        if method == "getWebhookInfo":
            return {
                "url": self.webhook_url,
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
            }
        if method in ("setMyCommands", "deleteMyCommands"):
            self.commands = list(params.get("commands", [])) if method == "setMyCommands" else []
            return True
        if method == "getMyCommands":
            return self.commands
        if method == "sendMessage":
            return self._message(params)
        if method in ("editMessageText", "editMessageReplyMarkup"):
            if "message_id" not in params:  # an inline message: Telegram answers True
                return True
            return self._message(params, int(params["message_id"]))
        if method == "answerCallbackQuery":
            return True
        if method == "sendPhoto":
            message = self._message(params)
            message["photo"] = [
                {"file_id": f"photo-{message['message_id']}", "file_unique_id": "p", "width": 1, "height": 1}
            ]
            return message
        if method == "sendDocument":
            message = self._message(params)
            name, size = call.files.get("document", ("document", 0))
            message["document"] = {
                "file_id": f"document-{message['message_id']}",
                "file_unique_id": "d",
                "file_name": name,
                "file_size": size,
            }
            return message
        raise KeyError(method)

    def get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Long polling: confirmed updates (below `offset`) are forgotten; waits up to `timeout` s."""
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        with self._changed:
            self.polls += 1
            self._changed.notify_all()
            if self.webhook_url:
                raise ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
                    "the webhook first",
                )
            while True:
                if offset:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                if self._updates or self._closing:
                    return self._updates[:limit]
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._changed.wait(min(left, 0.5))


def _decode(name: str, value: str) -> Any:
    if name in JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    if name in INT_PARAMS and value.lstrip("-").isdigit():
        return int(value)
    return value


def _handler(api: LoopbackBotApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            self.do_POST()

        def do_POST(self) -> None:
            now = api.clock()
            parts = self.path.split("?", 1)
            path = parts[0].strip("/").split("/")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if len(body) < length:  # the client died mid-request (kill -9): a request never whole is no call
                self.close_connection = True
                return
            if len(path) != 2 or not path[0].startswith("bot"):
                self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                return
            token, method = path[0][3:], path[1]
            params, files = self._params(body, parts[1] if len(parts) > 1 else "")
            call = Call(method, params, now, files=files)
            if token != api.token:
                self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                return
            fault = api._fault(method)
            if fault is not None:
                with api._changed:
                    api.refused.append((call, {"429": 429, "502": 502}.get(fault.kind, 0)))
                    api._changed.notify_all()
                if fault.kind == "429":
                    error = ApiError(429, f"Too Many Requests: retry after {fault.retry_after}", fault.retry_after)
                    self._reply(429, error.body())
                elif fault.kind == "502":
                    self._reply(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}, html=True)
                else:
                    if fault.kind == "timeout":
                        time.sleep(fault.seconds)
                    self.close_connection = True
                    self.connection.close()
                return
            try:
                if method == "getUpdates":
                    call.result = api.get_updates(params)
                    with api._changed:
                        api.calls.append(call)
                        api._changed.notify_all()
                else:
                    with api._changed:
                        call.result = api.answer(method, call)
                        api.calls.append(call)
                        chat = params.get("chat_id")
                        if isinstance(chat, int):
                            api.by_chat.setdefault(chat, []).append(call)
                        api._changed.notify_all()
            except ApiError as error:
                with api._changed:
                    api.refused.append((call, error.code))
                    api._changed.notify_all()
                self._reply(error.code, error.body())
                return
            except KeyError:
                with api._changed:
                    api.unknown.append(call)
                    api._changed.notify_all()
                self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"})
                return
            self._reply(200, {"ok": True, "result": call.result})

        def _params(self, body: bytes, query: str) -> tuple[dict[str, Any], dict[str, tuple[str, int]]]:
            kind = self.headers.get("Content-Type", "")
            raw: dict[str, str] = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
            files: dict[str, tuple[str, int]] = {}
            if kind.startswith("multipart/form-data"):
                message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    f"Content-Type: {kind}\r\n\r\n".encode() + body
                )
                for part in message.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    payload = part.get_payload(decode=True) or b""
                    if not isinstance(name, str) or not isinstance(payload, bytes):
                        continue
                    filename = part.get_filename()
                    if filename is not None:
                        files[name] = (filename, len(payload))
                    else:
                        raw[name] = payload.decode()
            elif kind.startswith("application/json") and body:
                loaded = json.loads(body)
                raw.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in loaded.items()})
            elif body:
                raw.update({k: v[-1] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()})
            params = {name: _decode(name, value) for name, value in raw.items()}
            for name, (filename, _) in files.items():
                params.setdefault(name, f"attach://{filename}")
            return params, files

        def _reply(self, status: int, answer: dict[str, Any], html: bool = False) -> None:
            data = b"<html><body>502 Bad Gateway</body></html>" if html else json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if html else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (its own time-out)
                self.close_connection = True

    return Handler
