"""Where conversation recordings live on disk, and how long they stay.

A recording is `{data_dir}/recordings/{conversation_id}.wav`. While the session writes it, it is
`….wav.part`: the WAV header is only completed on close, so the name tells a file that is safe to
serve from one that is not, without opening it. `finish` renames the closed file into place.

The retention sweep deletes finished recordings by modification time (when the last audio was
written, which is when the conversation ended) and partial files left behind by a crash once they
are a day older still: a live recording rewrites its partial file every few seconds, so one that
old has no writer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import Literal

from bridge import ids
from bridge.settings import Settings

log = logging.getLogger(__name__)

DIRECTORY = "recordings"
FINISHED_SUFFIX = ".wav"
PARTIAL_SUFFIX = ".part"
DAY = 86_400.0
STALE_PARTIAL_GRACE = DAY
"""Seconds beyond the retention after which an abandoned partial file is deleted."""
SWEEP_INTERVAL = 3_600.0
"""Seconds between two retention sweeps."""

RecordingState = Literal["finished", "partial", "absent"]


def recordings_dir(data_dir: Path) -> Path:
    return data_dir / DIRECTORY


def _checked(conversation_id: str) -> str:
    # The id becomes a file name: only the exact id shape may, so no `..`, `/` or NUL gets in.
    if not ids.is_id(conversation_id, ids.CONVERSATION):
        raise ValueError(f"not a conversation id: {conversation_id!r}")
    return conversation_id


def finished_path(data_dir: Path, conversation_id: str) -> Path:
    """The finished recording, as the API serves it."""
    return recordings_dir(data_dir) / f"{_checked(conversation_id)}{FINISHED_SUFFIX}"


def partial_path(data_dir: Path, conversation_id: str) -> Path:
    """The recording while it is being written."""
    return (
        recordings_dir(data_dir) / f"{_checked(conversation_id)}{FINISHED_SUFFIX}{PARTIAL_SUFFIX}"
    )


def recording_path(data_dir: Path, conversation_id: str) -> Path:
    """Where the session's `Recorder` writes; pass the closed file to `finish`."""
    return partial_path(data_dir, conversation_id)


def finish(partial: Path) -> Path:
    """Move a closed partial recording to its finished name and return that name.

    Blocking (it syncs to disk): call it from a thread. The data is synced before the rename and
    the rename before returning, so after a power cut the finished name never holds a truncated
    file."""
    if not partial.name.endswith(FINISHED_SUFFIX + PARTIAL_SUFFIX):
        raise ValueError(f"not a partial recording: {partial}")
    finished = partial.with_name(partial.name.removesuffix(PARTIAL_SUFFIX))
    with partial.open("rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, finished)
    parent = os.open(partial.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(parent)
    finally:
        os.close(parent)
    return finished


def state(data_dir: Path, conversation_id: str) -> RecordingState:
    """Which file of the conversation's recording exists. Blocking (file system).

    The partial name is looked at first: `finish` renames it to the finished one atomically, so
    a recording being finished meanwhile is seen under one name or the other. In the other
    order it could be missed under both, and a recording just written answered 404."""
    if partial_path(data_dir, conversation_id).is_file():
        return "partial"
    if finished_path(data_dir, conversation_id).is_file():
        return "finished"
    return "absent"


def _age_limit(name: str, older_than_seconds: float) -> float | None:
    """How old the file `name` may get, or None when it is not a recording at all."""
    if name.endswith(FINISHED_SUFFIX + PARTIAL_SUFFIX):
        stem, limit = name.removesuffix(FINISHED_SUFFIX + PARTIAL_SUFFIX), STALE_PARTIAL_GRACE
    elif name.endswith(FINISHED_SUFFIX):
        stem, limit = name.removesuffix(FINISHED_SUFFIX), 0.0
    else:
        return None
    return older_than_seconds + limit if ids.is_id(stem, ids.CONVERSATION) else None


def sweep(
    directory: Path,
    older_than_seconds: float,
    now: float,
    *,
    stop: threading.Event | None = None,
) -> int:
    """Delete the recordings in `directory` last written more than `older_than_seconds` before
    `now` (Unix seconds), and partial ones `STALE_PARTIAL_GRACE` older still; return how many
    went. Files not named like a recording are never touched. Blocking: run it in a thread;
    setting `stop` ends it at the next file."""
    deleted = 0
    try:
        entries = os.scandir(directory)
    except FileNotFoundError:
        return 0
    with entries:
        for entry in entries:
            if stop is not None and stop.is_set():
                break
            limit = _age_limit(entry.name, older_than_seconds)
            if limit is None:
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                if now - entry.stat(follow_symlinks=False).st_mtime <= limit:
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:
                # Renamed by `finish` or deleted by another process's sweep since the listing.
                continue
            except OSError as exc:
                log.warning("recording sweep: cannot delete %s: %s", entry.path, exc)
                continue
            deleted += 1
    return deleted


async def sweep_forever(
    directory: Path, older_than_seconds: float, interval: float = SWEEP_INTERVAL
) -> None:
    """Sweep now, then every `interval` seconds, until cancelled."""
    stop = threading.Event()
    try:
        while True:
            try:
                deleted = await asyncio.to_thread(
                    sweep, directory, older_than_seconds, time.time(), stop=stop
                )
            except OSError as exc:
                log.warning("recording sweep of %s failed: %s", directory, exc)
            else:
                if deleted:
                    log.info("recording sweep: deleted %d expired recordings", deleted)
            await asyncio.sleep(interval)
    finally:
        # Cancelling the task does not stop its thread; this does, at the next file.
        stop.set()


def start_sweeper(settings: Settings) -> list[asyncio.Task[None]]:
    """The retention sweep's task, or none when recordings are kept forever."""
    if not settings.recording_retention_days:
        return []
    sweeper = sweep_forever(
        recordings_dir(settings.data_dir), settings.recording_retention_days * DAY
    )
    return [asyncio.create_task(sweeper, name=f"recording-sweeper-{settings.node_id}")]
