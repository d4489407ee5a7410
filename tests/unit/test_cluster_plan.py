"""The plan of one box's nodes behind Kamailio: ports, RTP ranges, settings, and Kamailio's
environment, from the settings alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cluster.plan import PlanError, plan
from bridge.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(node_id="box", **values)  # type: ignore[arg-type]


def test_nodes_get_loopback_sip_their_own_ports_and_a_share_of_rtp(tmp_path: Path) -> None:
    made = plan(settings(rtp_port_min=20000, rtp_port_max=29999), 3, tmp_path, "redis://r", cpus=2)
    assert [n.node_id for n in made.nodes] == ["box-1", "box-2", "box-3"]
    assert [n.sip_port for n in made.nodes] == [5101, 5102, 5103]
    assert [n.http_port for n in made.nodes] == [8081, 8082, 8083]
    assert [(n.rtp_port_min, n.rtp_port_max) for n in made.nodes] == [
        (20000, 23332),
        (23333, 26665),
        (26666, 29998),
    ]
    env = made.nodes[1].environment
    assert env["VOICEBRIDGE_SIP_HOST"] == "127.0.0.1"
    assert env["VOICEBRIDGE_RTP_HOST"] == "0.0.0.0"
    assert env["VOICEBRIDGE_REDIS_URL"] == "redis://r"
    assert env["VOICEBRIDGE_HTTP_REUSE_PORT"] == "true"
    assert env["VOICEBRIDGE_SIP_RATE_LIMIT"] == "0"
    assert made.dispatcher_list().splitlines()[1:] == [
        "1 sip:127.0.0.1:5101 0 0 node=box-1",
        "1 sip:127.0.0.1:5102 0 0 node=box-2",
        "1 sip:127.0.0.1:5103 0 0 node=box-3",
    ]


def test_callers_are_told_the_boxs_address_for_media_and_record_route(tmp_path: Path) -> None:
    made = plan(settings(sip_advertised_host="203.0.113.5"), 2, tmp_path, "redis://r", cpus=2)
    env = made.balancer_environment
    assert env["VOICEBRIDGE_BALANCER_LISTEN"] == "udp:0.0.0.0:5060 advertise 203.0.113.5:5060"
    assert env["VOICEBRIDGE_BALANCER_LISTEN_TCP"] == "tcp:0.0.0.0:5060 advertise 203.0.113.5:5060"
    node = made.nodes[0].environment
    assert node["VOICEBRIDGE_RTP_ADVERTISED_HOST"] == "203.0.113.5"
    # Kamailio may send to the nodes from the box's address: they take it.
    assert "203.0.113.5" in node["VOICEBRIDGE_SIP_ALLOWED_NETWORKS"].split(",")


def test_kamailio_applies_the_source_rules_and_rate_the_nodes_no_longer_see(
    tmp_path: Path,
) -> None:
    made = plan(
        settings(
            sip_allowed_networks="10.0.0.0/8",
            sip_trusted_networks="192.168.1.0/24",
            sip_rate_limit=50,
            cluster_probe_interval=3,
            cluster_failover_timeout=0.5,
        ),
        2,
        tmp_path,
        "redis://r",
        cpus=2,
    )
    env = made.balancer_environment
    assert env["VOICEBRIDGE_BALANCER_ALLOWED"] == "10.0.0.0/8,192.168.1.0/24"
    assert env["VOICEBRIDGE_BALANCER_TRUSTED"] == "192.168.1.0/24"
    assert env["VOICEBRIDGE_BALANCER_RATE"] == "50"
    assert env["VOICEBRIDGE_BALANCER_PROBE_S"] == "3"
    assert env["VOICEBRIDGE_BALANCER_FAILOVER_MS"] == "500"
    assert env["VOICEBRIDGE_BALANCER_NODES"] == str(tmp_path / "dispatcher.list")
    unlimited = plan(settings(sip_rate_limit=0), 2, tmp_path, "redis://r", cpus=2)
    assert unlimited.balancer_environment["VOICEBRIDGE_BALANCER_RATE"] == "0"


@pytest.mark.parametrize(
    ("values", "count", "names"),
    [
        ({"rtp_port_min": 20000, "rtp_port_max": 20007}, 3, "VOICEBRIDGE_RTP_PORT_MIN"),
        ({"sip_port": 5102}, 3, "VOICEBRIDGE_SIP_PORT (5102) falls among the nodes' ports"),
        ({"http_port": 65534}, 2, "VOICEBRIDGE_HTTP_PORT (65534)"),
        ({}, 0, "--nodes must be at least 1"),
    ],
)
def test_impossible_plans_name_the_setting(
    tmp_path: Path, values: dict[str, object], count: int, names: str
) -> None:
    with pytest.raises(PlanError, match=names.replace("(", r"\(").replace(")", r"\)")):
        plan(settings(**values), count, tmp_path, "redis://r", cpus=2)


def test_the_nodes_share_the_cores_for_model_inference(tmp_path: Path) -> None:
    def workers(count: int, cpus: int, **values: object) -> list[str]:
        made = plan(settings(**values), count, tmp_path, "redis://r", cpus=cpus)
        return [n.environment["VOICEBRIDGE_INFERENCE_WORKERS"] for n in made.nodes]

    assert workers(2, 2) == ["1", "1"]
    assert workers(1, 2) == ["2"]
    assert workers(2, 8) == ["4", "4"]
    assert workers(3, 2) == ["1", "1", "1"]
    assert workers(2, 2, inference_workers=6) == ["3", "3"]
