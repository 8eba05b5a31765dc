"""/trend through the service (both transports' entry), the terminal's PNG file, and what stays light.

matplotlib is imported only when a chart is drawn: `hemadose recommend`, and importing the flows and
the bot's modules, must not load it (about a second and tens of megabytes on the development machine).
"""

from __future__ import annotations

import datetime as dt
import io
import stat
import subprocess
import sys
from pathlib import Path

from bot.replay import load, replay
from bot.service import ChatService
from bot.storage import open_storage
from bot.storage.tables import PatientRow, Regimen
from bot.terminal import chat
from flows.replies import Photo
from tests.test_routes import SAVED_RX12

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
DIALOGUES = Path(__file__).resolve().parent / "dialogues"
PNG = b"\x89PNG\r\n\x1a\n"


async def test_trend_sends_a_photo_of_the_users_own_patient_only(db_url: str):
    storage = await open_storage(db_url)
    service = ChatService(storage, clock=lambda: NOW)
    for typed in SAVED_RX12:
        await service.handle("tg:1", "tg:1", text=typed)
    [photo] = await service.handle("tg:1", "tg:1", text="/trend rx-12")
    assert isinstance(photo, Photo)
    assert photo.png.startswith(PNG)
    assert photo.filename == "trend-RX-12-2026-11-22.png"
    assert photo.text.startswith("Trend of RX-12: 1 platelet count from 2026-11-21 to 2026-11-22")
    assert "Last recommendation (2026-11-22): CONTINUE 3 mcg/kg (romiplostim.continue)." in photo.text
    assert photo.button_labels() == ["History", "New consultation"]
    [refused] = await service.handle("tg:2", "tg:2", text="/trend RX-12")  # another user's patient
    assert not isinstance(refused, Photo)
    assert refused.text == "You have no patient labelled 'RX-12'. /patients lists your labels."
    await storage.close()


async def test_a_patient_without_results_gets_a_clear_reply_not_a_chart(db_url: str):
    storage = await open_storage(db_url)
    service = ChatService(storage, clock=lambda: NOW)
    await service.handle("tg:1", "tg:1", text="/start")
    async with storage.session() as session, session.begin():
        user = await storage.open_chat(session, "tg:1", "tg:1")
        patient = PatientRow(user_id=user.user_id, label="RX-5", created_at=NOW.replace(tzinfo=None))
        session.add(patient)
        await session.flush()
        session.add(
            Regimen(
                patient_id=patient.id,
                drug="romiplostim",
                indication="itp",
                region="us",
                dose_amount="3",
                dose_unit="mcg/kg",
                since=dt.date(2026, 11, 1),
                on_hold=False,
                updated_at=NOW.replace(tzinfo=None),
            )
        )
    [reply] = await service.handle("tg:1", "tg:1", text="/trend RX-5")
    assert not isinstance(reply, Photo)
    assert reply.text == (
        "No platelet counts are on record for RX-5 yet, so there is no trend to draw. "
        "Save a consultation with a result (Save to patient), then ask again."
    )
    assert reply.button_labels() == ["History", "New consultation"]
    await storage.close()


async def test_the_terminal_writes_the_chart_to_a_private_file_and_prints_its_path(tmp_path: Path, db_url: str):
    storage = await open_storage(db_url)
    service = ChatService(storage, clock=lambda: NOW)
    for typed in SAVED_RX12:
        await service.handle("local:me", "local:me", text=typed)
    out = io.StringIO()
    folder = tmp_path / "charts"
    await chat(service, "me", stdin=io.StringIO("/trend RX-12\n"), stdout=out, charts=folder)
    path = folder / "trend-RX-12-2026-11-22.png"
    assert f"Chart written to {path}" in out.getvalue()
    assert "Trend of RX-12: 1 platelet count" in out.getvalue()
    assert path.read_bytes().startswith(PNG)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    await storage.close()


def test_the_chat_modules_do_not_import_matplotlib_until_a_chart_is_drawn(tmp_path: Path):
    """`hemadose recommend` is checked by tests/test_startup.py (matplotlib in NOT_FOR_RECOMMEND)."""
    modules = "flows.trend, flows.routes, bot.service, bot.telegram_app, bot.terminal, bot.charts, bot.replay"
    probe = f"import sys, {modules}; print(sorted(m for m in ('matplotlib', 'PIL') if m in sys.modules))"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert imported.stdout.strip() == "[]"
    drawn = (
        "import sys; from bot.charts import main; main(['--examples', sys.argv[1]]); print('matplotlib' in sys.modules)"
    )
    rendered = subprocess.run(
        [sys.executable, "-c", drawn, str(tmp_path)], capture_output=True, text=True, timeout=120, check=True
    )
    assert rendered.stdout.strip().endswith("True")  # (the probe can see it when it is loaded)


async def test_messages_to_see_a_trend(db_url: str):
    """User messages from opening to the chart, counted in the replayed dialogue: a new patient's whole
    consultation, then one press after it is saved; one command from anywhere; two from the record."""
    result = await replay(load(DIALOGUES / "trend_romiplostim_card_button_and_command.yaml"), db_url)
    assert result.passed, result.mismatches
    sent = [line.split(": ", 1)[1] for line in result.transcript if line.startswith("[")]
    photos = [n for n, line in enumerate(result.transcript) if "[photo: PNG" in line]
    asked = [sum(1 for line in result.transcript[:at] if line.startswith("[")) for at in photos]
    assert sent[0] == "/new"
    assert sent[asked[0] - 2 : asked[0]] == ["[Save to patient]", "[Trend]"]
    assert asked[0] == 16  # /new to the card (14), Save to patient, Trend
    assert sent[asked[1] - 1] == "/trend rx-12"  # one message from anywhere (after /start too)
    assert sent[asked[2] - 2 : asked[2]] == ["/patients RX-12", "[Trend]"]  # two from the record
