from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from bridge import ids, recordings
from bridge.recordings import DAY, STALE_PARTIAL_GRACE
from bridge.settings import Settings

CID = "conv_01jd4y3k8m2q9w7e5r1t6y0z3h"
NOW = 1_750_000_000.0
RETENTION = 30 * DAY


def _file(path: Path, age: float, now: float = NOW) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")
    os.utime(path, (now - age, now - age))
    return path


def test_paths_sit_in_the_recordings_directory_named_by_the_id(tmp_path: Path) -> None:
    assert recordings.finished_path(tmp_path, CID) == tmp_path / "recordings" / f"{CID}.wav"
    assert recordings.partial_path(tmp_path, CID) == tmp_path / "recordings" / f"{CID}.wav.part"
    assert recordings.recording_path(tmp_path, CID) == recordings.partial_path(tmp_path, CID)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "conv_",
        "../../etc/passwd",
        f"conv_../{CID[5:]}",
        f"{CID}/../x",
        f"{CID}\x00",
        CID.upper(),
        "agt_01jd4y3k8m2q9w7e5r1t6y0z3h",
        CID + "0",
        CID[:-1] + "u",  # not in the Crockford alphabet
    ],
)
def test_anything_but_a_conversation_id_is_refused(tmp_path: Path, bad: str) -> None:
    for make in (recordings.finished_path, recordings.partial_path, recordings.recording_path):
        with pytest.raises(ValueError, match="not a conversation id"):
            make(tmp_path, bad)
    with pytest.raises(ValueError):
        recordings.state(tmp_path, bad)


def test_finish_renames_the_partial_file_and_the_state_follows(tmp_path: Path) -> None:
    assert recordings.state(tmp_path, CID) == "absent"
    partial = recordings.recording_path(tmp_path, CID)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"RIFF....WAVE")
    assert recordings.state(tmp_path, CID) == "partial"
    finished = recordings.finish(partial)
    assert finished == recordings.finished_path(tmp_path, CID)
    assert finished.read_bytes() == b"RIFF....WAVE"
    assert not partial.exists()
    assert recordings.state(tmp_path, CID) == "finished"


def test_a_recording_finished_while_its_state_is_read_is_never_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename lands between the two looks: the worst moment for `state`."""
    partial = _file(recordings.partial_path(tmp_path, CID), 0)
    looked = Path.is_file

    def is_file_then_finish(path: Path) -> bool:
        seen = looked(path)
        if partial.exists():
            recordings.finish(partial)
        return seen

    monkeypatch.setattr(Path, "is_file", is_file_then_finish)
    assert recordings.state(tmp_path, CID) != "absent"


def test_finish_refuses_a_file_that_is_not_partial(tmp_path: Path) -> None:
    finished = _file(recordings.finished_path(tmp_path, CID), 0)
    with pytest.raises(ValueError, match="not a partial recording"):
        recordings.finish(finished)
    with pytest.raises(FileNotFoundError):
        recordings.finish(recordings.partial_path(tmp_path, CID))


def test_sweep_deletes_finished_recordings_past_the_retention_only(tmp_path: Path) -> None:
    directory = recordings.recordings_dir(tmp_path)
    cids = [ids.new_id(ids.CONVERSATION) for _ in range(3)]
    old = _file(recordings.finished_path(tmp_path, cids[0]), RETENTION + 1)
    edge = _file(recordings.finished_path(tmp_path, cids[1]), RETENTION)
    young = _file(recordings.finished_path(tmp_path, cids[2]), DAY)
    assert recordings.sweep(directory, RETENTION, NOW) == 1
    assert not old.exists()
    assert edge.exists() and young.exists()
    assert recordings.sweep(directory, RETENTION, NOW) == 0


def test_sweep_deletes_partial_files_only_a_grace_period_later(tmp_path: Path) -> None:
    directory = recordings.recordings_dir(tmp_path)
    a, b = (ids.new_id(ids.CONVERSATION) for _ in range(2))
    # A conversation still being recorded after the retention is not a crash's leftover.
    live = _file(recordings.partial_path(tmp_path, a), RETENTION + STALE_PARTIAL_GRACE - 60)
    crashed = _file(recordings.partial_path(tmp_path, b), RETENTION + STALE_PARTIAL_GRACE + 60)
    assert recordings.sweep(directory, RETENTION, NOW) == 1
    assert live.exists() and not crashed.exists()


def test_sweep_leaves_files_that_are_not_recordings_alone(tmp_path: Path) -> None:
    directory = recordings.recordings_dir(tmp_path)
    ancient = 10 * RETENTION
    others = [
        _file(directory / "notes.wav", ancient),
        _file(directory / "notes.txt", ancient),
        _file(directory / f"{CID}.mp3", ancient),
        _file(directory / f"{CID}.wav.tmp", ancient),
        _file(directory / f"agt_{CID[5:]}.wav", ancient),
    ]
    (directory / f"{ids.new_id(ids.CONVERSATION)}.wav").mkdir()
    target = _file(tmp_path / "elsewhere.wav", ancient)
    link = directory / f"{ids.new_id(ids.CONVERSATION)}.wav"
    link.symlink_to(target)
    os.utime(link, (NOW - ancient, NOW - ancient), follow_symlinks=False)
    assert recordings.sweep(directory, RETENTION, NOW) == 0
    assert all(path.exists() for path in [*others, target, link])


def test_sweep_of_a_missing_directory_deletes_nothing(tmp_path: Path) -> None:
    assert recordings.sweep(tmp_path / "absent", RETENTION, NOW) == 0


def test_sweep_stops_when_asked(tmp_path: Path) -> None:
    directory = recordings.recordings_dir(tmp_path)
    files = [
        _file(recordings.finished_path(tmp_path, ids.new_id(ids.CONVERSATION)), 2 * RETENTION)
        for _ in range(3)
    ]
    stop = threading.Event()
    stop.set()
    assert recordings.sweep(directory, RETENTION, NOW, stop=stop) == 0
    assert all(path.exists() for path in files)


async def test_the_sweeper_sweeps_at_once_and_stops_promptly_when_cancelled(
    tmp_path: Path,
) -> None:
    directory = recordings.recordings_dir(tmp_path)
    now = time.time()
    old = _file(recordings.finished_path(tmp_path, CID), RETENTION + 10, now)
    task = asyncio.create_task(recordings.sweep_forever(directory, RETENTION))
    for _ in range(200):
        if not old.exists():
            break
        await asyncio.sleep(0.01)
    assert not old.exists()
    # The next sweep is an hour away: cancelling must not wait for it.
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.5


async def test_the_sweeper_starts_only_when_recordings_expire(tmp_path: Path) -> None:
    assert recordings.start_sweeper(Settings(data_dir=tmp_path, recording_retention_days=0)) == []
    tasks = recordings.start_sweeper(Settings(data_dir=tmp_path, recording_retention_days=7))
    assert len(tasks) == 1
    tasks[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
