"""An offline Bot API: python-telegram-bot's request layer, answering like Telegram, recording calls.

Used by dialogue replays, tests and benchmarks: the real `Application` runs with no network.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from telegram.request import BaseRequest, RequestData

BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "HemaDose", "username": "hemadose_test_bot"}
TOKEN = "7000000001:OFFLINE-TOKEN-FOR-TESTS-ONLY"


@dataclass(frozen=True)
class SentDocument:
    """A file the bot sent (sendDocument): its name and bytes, for a test or a dialogue to read."""

    filename: str
    content: bytes


@dataclass
class SentMessage:
    chat_id: int
    text: str  # a document's caption
    buttons: list[list[dict[str, str]]]  # rows of {"text": label, "callback_data": data}
    message: dict[str, Any]  # as Telegram returned it
    document: SentDocument | None = None
    photo: bytes | None = None  # a sendPhoto's picture (its caption is `text`)

    def labels(self) -> list[str]:
        return [button["text"] for row in self.buttons for button in row]


@dataclass
class RecordingRequest(BaseRequest):
    """Answers Bot API methods from memory and keeps every call for the test to read."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    sent: list[SentMessage] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)  # file_id -> the bytes a user sent (getFile)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        if "/file/bot" in url:  # a download (File.download_*): the bytes a user uploaded
            return 200, self.uploads[url.rsplit("/", 1)[-1]]
        name = url.rsplit("/", 1)[-1]
        params = request_data.parameters if request_data is not None else {}
        self.calls.append((name, params))
        if name == "sendDocument" and request_data is not None:
            return 200, json.dumps({"ok": True, "result": self.document(params, request_data)}).encode()
        if name == "sendPhoto":  # the picture comes as a file of the multipart upload
            files = request_data.multipart_data if request_data is not None else None
            return 200, json.dumps({"ok": True, "result": self.photo(params, files or {})}).encode()
        return 200, json.dumps({"ok": True, "result": self.answer(name, params)}).encode()

    def document(self, params: dict[str, Any], request_data: RequestData) -> dict[str, Any]:
        """sendDocument: the file kept with its caption and buttons."""
        filename, content = next((part[0], part[1]) for part in request_data.multipart_data.values())
        data = content if isinstance(content, bytes) else content.read()
        number = len(self.sent)
        media: dict[str, Any] = {"file_id": f"sent-{number}", "file_unique_id": f"sent-{number}"}
        media |= {"file_name": filename, "file_size": len(data)}
        return self._keep(params, "document", media, document=SentDocument(str(filename), data))

    def photo(self, params: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
        """A sendPhoto, kept with its picture's bytes so a dialogue can check that a chart was sent."""
        upload = next(iter(files.values()), None)
        picture: bytes = upload[1] if isinstance(upload, tuple) else b""
        number = len(self.sent)
        media = [{"file_id": f"photo-{number}", "file_unique_id": f"p{number}", "width": 1, "height": 1}]
        return self._keep(params, "photo", media, photo=picture)

    def _keep(self, params: dict[str, Any], kind: str, media: Any, **kept: Any) -> dict[str, Any]:
        """A sent file's message (its caption is the text), recorded with what a dialogue checks of it."""
        return self._message(params, {"caption": params.get("caption", ""), kind: media}, record=True, **kept)

    def _message(self, params: dict[str, Any], content: dict[str, Any], *, record: bool, **kept: Any) -> dict[str, Any]:
        """The message Telegram would return (a text's or a file's); recorded when it was sent."""
        markup = params.get("reply_markup") or {}
        chat_id = int(params["chat_id"])
        message = {
            "message_id": next(self._ids),
            "date": int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
        } | content
        if markup:
            message["reply_markup"] = markup
        if record:
            text = str(content.get("caption", content.get("text", "")))
            self.sent.append(SentMessage(chat_id, text, markup.get("inline_keyboard", []), message, **kept))
        return message

    def upload(self, content: bytes) -> str:
        """A file a user sends: kept for getFile and the download; its file_id."""
        file_id = f"upload-{len(self.uploads) + 1}"
        self.uploads[file_id] = content
        return file_id

    def answer(self, name: str, params: dict[str, Any]) -> Any:
        if name == "getMe":
            return BOT_USER
        if name == "getFile":
            file_id = str(params["file_id"])
            return {"file_id": file_id, "file_unique_id": file_id, "file_size": len(self.uploads[file_id])} | {
                "file_path": f"documents/{file_id}"
            }
        if name in ("sendMessage", "editMessageText"):
            return self._message(params, {"text": params.get("text", "")}, record=name == "sendMessage")
        return True

    def take(self) -> list[SentMessage]:
        """The messages sent since the last take (the calls log is cleared with them)."""
        sent, self.sent = self.sent, []
        self.calls.clear()
        return sent


def _user_message(update_id: int, user_id: int, chat_id: int, **content: Any) -> dict[str, Any]:
    """An update carrying a user's message in a private chat (`content`: its text, or its document)."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": 100000 + update_id,
            "date": int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()),
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Tester"},
        }
        | content,
    }


def message_update(update_id: int, user_id: int, chat_id: int, text: str) -> dict[str, Any]:
    entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}] if text.startswith("/") else []
    return _user_message(update_id, user_id, chat_id, text=text, entities=entities)


def document_update(
    update_id: int, user_id: int, chat_id: int, file_id: str, filename: str, size: int
) -> dict[str, Any]:
    """A user sends a file (the bytes are the recording request's `uploads[file_id]`)."""
    document = {"file_id": file_id, "file_unique_id": file_id, "file_name": filename, "file_size": size}
    return _user_message(update_id, user_id, chat_id, document=document)


def button_update(update_id: int, user_id: int, pressed_on: dict[str, Any], data: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "callback_query": {
            "id": str(update_id),
            "from": {"id": user_id, "is_bot": False, "first_name": "Tester"},
            "chat_instance": "offline",
            "message": pressed_on,
            "data": data,
        },
    }
