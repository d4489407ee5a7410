"""The sample deployment files in config/: the systemd unit agrees with the bridge's settings and
shutdown, and the PBX samples (examples no test can run here: neither Asterisk nor FreeSWITCH is
packaged for this machine) at least parse and send the README's number to the bridge."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from api.server import SHUTDOWN_GRACE
from bridge.settings import load_settings

CONFIG = Path(__file__).resolve().parents[2] / "config"
UNIT = CONFIG / "systemd" / "voicebridge.service"
NUMBER = "+15550100"
# EmbeddedRedis.stop's default: how long the embedded Redis may take to flush and exit.
REDIS_STOP_S = 10.0


def unit_values(name: str) -> list[str]:
    return [
        line.split("=", 1)[1]
        for line in UNIT.read_text().splitlines()
        if line.startswith(f"{name}=")
    ]


def unit_environment() -> dict[str, str]:
    return dict(value.split("=", 1) for value in unit_values("Environment"))


def test_the_unit_sets_only_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = unit_environment()
    assert env, "the unit sets the data directory and the drain"
    for name, value in env.items():
        assert name.startswith("VOICEBRIDGE_")
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert str(settings.data_dir) == env["VOICEBRIDGE_DATA_DIR"]


def test_the_unit_waits_out_the_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    drain = float(unit_environment()["VOICEBRIDGE_SIP_DRAIN_TIMEOUT"])
    (stop_timeout,) = unit_values("TimeoutStopSec")
    # The drain, then calls still ringing, in-flight HTTP requests and the background loops
    # (api.server.serve bounds each by SHUTDOWN_GRACE), then Redis.
    assert float(stop_timeout) > drain + 3 * SHUTDOWN_GRACE + REDIS_STOP_S
    # Only the bridge gets SIGTERM: the embedded Redis must outlive the drain.
    assert unit_values("KillMode") == ["mixed"]
    assert unit_values("KillSignal") == ["SIGTERM"]
    (start,) = unit_values("ExecStart")
    assert start.endswith("/voicebridge serve")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    # The unit names where an installation would be; only that path may be missing here.
    done = subprocess.run(
        ["systemd-analyze", "verify", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    complaints = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "/opt/voicebridge/.venv/bin/voicebridge" not in line
    ]
    assert complaints == []


def test_the_freeswitch_samples_parse_and_route_the_number() -> None:
    gateway = ET.parse(CONFIG / "freeswitch" / "sip_profiles" / "voicebridge.xml").getroot()
    params = {p.get("name"): p.get("value") for p in gateway.iter("param")}
    assert params["register"] == "false"
    assert str(params["proxy"]).endswith(":5060")
    dialplan = ET.parse(CONFIG / "freeswitch" / "dialplan" / "voicebridge.xml").getroot()
    (condition,) = dialplan.iter("condition")
    pattern = re.compile(condition.get("expression", ""))
    assert pattern.match(NUMBER) and pattern.match(NUMBER.lstrip("+"))
    bridges = [
        a.get("data", "") for a in condition.iter("action") if a.get("application") == "bridge"
    ]
    assert bridges == ["sofia/gateway/voicebridge/+$1"]


def test_the_asterisk_samples_send_the_number_to_the_endpoint() -> None:
    pjsip = (CONFIG / "asterisk" / "pjsip.conf").read_text()
    sections = re.findall(r"^\[(\S+)\]\s*\ntype=(\w+)", pjsip, re.MULTILINE)
    assert ("voicebridge", "endpoint") in sections
    assert ("voicebridge", "aor") in sections
    endpoint = pjsip.split("[voicebridge]\ntype=endpoint", 1)[1].split("\n[", 1)[0]
    context = re.search(r"^context=(\S+)", endpoint, re.MULTILINE)
    assert context is not None
    dialplan = (CONFIG / "asterisk" / "extensions.conf").read_text()
    assert f"exten => {NUMBER},1," in dialplan
    assert "Dial(PJSIP/${EXTEN}@voicebridge" in dialplan
    assert f"[{context.group(1)}]" in dialplan, "handoffs come back into the endpoint's context"
