"""config/kamailio/kamailio.cfg as Debian's Kamailio reads it, with the environment
`serve --nodes N` gives it, for the shapes of deployment the README describes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.cluster.plan import plan
from bridge.cluster.supervisor import ClusterError, check_kamailio_config
from bridge.settings import Settings
from tests.e2e.cluster import KAMAILIO

pytestmark = pytest.mark.skipif(KAMAILIO is None, reason="kamailio is not installed")


@pytest.mark.parametrize(
    "values",
    [
        {"sip_host": "127.0.0.1"},
        {"sip_host": "0.0.0.0", "sip_advertised_host": "127.0.0.1"},
        {"sip_rate_limit": 0, "sip_allowed_networks": "10.0.0.0/8,192.168.0.0/16"},
    ],
)
async def test_kamailio_takes_the_configuration_of_each_shape(
    tmp_path: Path, values: dict[str, object]
) -> None:
    assert KAMAILIO is not None
    made = plan(Settings(node_id="box", **values), 2, tmp_path, "redis://r", cpus=2)  # type: ignore[arg-type]
    made.nodes_file.write_text(made.dispatcher_list())
    await check_kamailio_config(KAMAILIO, dict(os.environ) | made.balancer_environment)


async def test_a_configuration_kamailio_refuses_fails_with_its_reason(tmp_path: Path) -> None:
    assert KAMAILIO is not None
    made = plan(Settings(node_id="box"), 2, tmp_path, "redis://r", cpus=2)
    env = dict(os.environ) | made.balancer_environment | {"VOICEBRIDGE_BALANCER_LISTEN": "udp:"}
    with pytest.raises(ClusterError, match="Kamailio refuses its configuration"):
        await check_kamailio_config(KAMAILIO, env)
