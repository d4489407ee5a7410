"""Every message of the RFC 4475 and RFC 5118 torture sets, as a datagram and as a stream, gets
the outcome tests/data/sip-torture/DECISIONS.md records, and that record agrees with the row of
index.tsv."""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.sip.framing import FramingError, Ping, StreamFramer
from bridge.sip.message import MalformedMessage, Request, Response, parse
from bridge.sip.validate import DEFAULT_POLICY, KNOWN_METHODS, Drop, Reject, check

DATA = Path(__file__).parents[2] / "data" / "sip-torture"

Outcome = Request | Response | MalformedMessage


@dataclass(frozen=True)
class Row:
    file: str
    expectation: str
    handling: str
    sha256: str


@dataclass(frozen=True)
class Decision:
    expectation: str
    datagram: str
    stream: str
    verdict: str


def _index() -> dict[str, Row]:
    with (DATA / "index.tsv").open(newline="", encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t")
        return {
            row["file"]: Row(
                row["file"], row["parser_expectation"], row["expected_handling"], row["sha256"]
            )
            for row in rows
        }


def _decisions() -> dict[str, Decision]:
    decisions: dict[str, Decision] = {}
    for line in (DATA / "DECISIONS.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| rfc"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            decisions[cells[0]] = Decision(*cells[1:5])
    return decisions


INDEX = _index()
DECISIONS = _decisions()


def test_the_data_is_the_published_set() -> None:
    assert len(INDEX) == 61
    for row in INDEX.values():
        assert hashlib.sha256((DATA / row.file).read_bytes()).hexdigest() == row.sha256, row.file


def test_every_row_has_exactly_one_decision() -> None:
    assert DECISIONS.keys() == INDEX.keys()
    for file, decision in DECISIONS.items():
        assert decision.expectation == INDEX[file].expectation, file


def _parse(data: bytes, *, datagram: bool) -> Outcome:
    try:
        return parse(data, datagram=datagram)
    except MalformedMessage as exc:
        return exc


def _stream(data: bytes) -> tuple[str, Outcome | None]:
    framer = StreamFramer()
    frames: list[bytes] = []
    try:
        for index in range(len(data)):
            frames += [i for i in framer.feed(data[index : index + 1]) if not isinstance(i, Ping)]
    except FramingError:
        return "framing", None
    if not frames:
        return "incomplete", None
    outcome = _parse(frames[0], datagram=False)
    return ("reject" if isinstance(outcome, MalformedMessage) else "parse"), outcome


def _verdict(outcome: Outcome) -> str:
    verdict = check(outcome)
    if verdict is None:
        return "ok"
    if isinstance(verdict, Drop):
        return "drop"
    assert isinstance(verdict, Reject)
    return str(verdict.status)


@pytest.mark.parametrize("file", sorted(INDEX))
def test_torture_message(file: str) -> None:
    decision = DECISIONS[file]
    data = (DATA / file).read_bytes()

    datagram = _parse(data, datagram=True)
    assert ("reject" if isinstance(datagram, MalformedMessage) else "parse") == decision.datagram
    assert _verdict(datagram) == decision.verdict

    stream, outcome = _stream(data)
    assert stream == decision.stream
    if outcome is not None:
        assert _verdict(outcome) == decision.verdict


@pytest.mark.parametrize("file", sorted(INDEX))
def test_decision_agrees_with_the_row(file: str) -> None:
    row, decision = INDEX[file], DECISIONS[file]
    if row.expectation == "parse-ok":
        assert decision.datagram == "parse"
        assert decision.stream == "parse"
    if row.expectation == "reject":
        assert decision.verdict != "ok"
    assert _handling_allows(row, decision.verdict, (DATA / file).read_bytes())


def _handling_allows(row: Row, verdict: str, data: bytes) -> bool:
    """Whether `expected_handling` (free text, paraphrasing the RFCs) allows our verdict."""
    text = row.handling.lower()
    if verdict == "405":
        # A registrar's or proxy's answer does not apply to a UA: it refuses the method.
        method = data.split(b" ", 1)[0].decode()
        return method in KNOWN_METHODS and method not in DEFAULT_POLICY.methods
    if verdict == "drop":
        return "drop" in text or "discard" in text
    if verdict == "ok":
        tolerant = row.expectation in ("reject-or-tolerate", "parse-ok-or-reject")
        return tolerant or "accept" in text or "process normally" in text
    if re.search(rf"\b{verdict}\b", text):
        return True
    return verdict == "400" and "reject" in row.expectation
