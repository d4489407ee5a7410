"""How one box runs N bridge nodes behind Kamailio: which ports and settings each node gets,
and the environment Kamailio's configuration (config/kamailio/kamailio.cfg) reads. Pure: the
supervisor turns a plan into processes.

- Kamailio takes the box's SIP address (sip_host:sip_port); node i takes SIP on 127.0.0.1,
  port cluster_port_base + i, which only Kamailio (and the box itself) reaches.
- RTP goes straight between callers and nodes, so nodes bind it on the box's address
  (rtp_host, else sip_host) and put the box's advertised address in their SDP; the RTP range
  is split between them.
- The REST API: every node listens on http_port with SO_REUSEPORT (the kernel spreads
  connections; any node answers for all, through the shared Redis) and on a port of its own,
  http_port + i, where its own /metrics and /readyz are.
- Rate limiting and the source rules move to Kamailio, which sees the callers; nodes see only
  Kamailio.
- The cores are shared too: each node runs its share of the speech model threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bridge.settings import Settings

WILDCARDS = ("0.0.0.0", "::", "")
LOOPBACK = "127.0.0.1"
MIN_RTP_PORTS_PER_NODE = 4


class PlanError(ValueError):
    """The settings cannot make N nodes; the message says which setting to change."""


@dataclass(frozen=True)
class NodePlan:
    index: int
    node_id: str
    sip_port: int
    http_port: int
    rtp_port_min: int
    rtp_port_max: int
    environment: dict[str, str]
    """VOICEBRIDGE_* variables that make `voicebridge serve` this node."""

    @property
    def sip_uri(self) -> str:
        return f"sip:{LOOPBACK}:{self.sip_port}"


@dataclass(frozen=True)
class ClusterPlan:
    nodes: tuple[NodePlan, ...]
    balancer_environment: dict[str, str]
    nodes_file: Path

    def dispatcher_list(self) -> str:
        """Kamailio's dispatcher list: set 1 is every node."""
        lines = ["# voicebridge nodes, written by `voicebridge serve --nodes N`; set 1 = nodes"]
        lines += [f"1 {node.sip_uri} 0 0 node={node.node_id}" for node in self.nodes]
        return "\n".join(lines) + "\n"


def _box_address(settings: Settings) -> str:
    """What callers reach this box at: the advertised SIP address, else a concrete sip_host."""
    if settings.sip_advertised_host:
        return settings.sip_advertised_host
    return LOOPBACK if settings.sip_host in WILDCARDS else settings.sip_host


def probe_host(settings: Settings) -> str:
    """Where this box reaches its own Kamailio."""
    return LOOPBACK if settings.sip_host in WILDCARDS else settings.sip_host


def _listen(proto: str, settings: Settings) -> str:
    listen = f"{proto}:{settings.sip_host or '0.0.0.0'}:{settings.sip_port}"
    if settings.sip_host in WILDCARDS:
        # Record-Route must name an address callers and nodes can send to, never 0.0.0.0.
        listen += f" advertise {_box_address(settings)}:{settings.sip_port}"
    elif settings.sip_advertised_host:
        listen += f" advertise {settings.sip_advertised_host}:{settings.sip_port}"
    return listen


def plan(
    settings: Settings, count: int, run_dir: Path, redis_url: str, *, cpus: int
) -> ClusterPlan:
    """`cpus`: the box's CPU count, which VOICEBRIDGE_INFERENCE_WORKERS defaults to."""
    if count < 1:
        raise PlanError("--nodes must be at least 1")
    ports = settings.rtp_port_max - settings.rtp_port_min + 1
    share = ports // count
    if share < MIN_RTP_PORTS_PER_NODE:
        raise PlanError(
            f"VOICEBRIDGE_RTP_PORT_MIN..VOICEBRIDGE_RTP_PORT_MAX ({ports} ports) is too small "
            f"for {count} nodes: each needs at least {MIN_RTP_PORTS_PER_NODE}"
        )
    last_sip = settings.cluster_port_base + count
    if settings.cluster_port_base < settings.sip_port <= last_sip:
        raise PlanError(
            f"VOICEBRIDGE_SIP_PORT ({settings.sip_port}) falls among the nodes' ports "
            f"(VOICEBRIDGE_CLUSTER_PORT_BASE {settings.cluster_port_base} + 1..{count})"
        )
    if settings.http_port + count > 65535:
        raise PlanError(f"VOICEBRIDGE_HTTP_PORT ({settings.http_port}) + {count} is past 65535")
    media_host = settings.rtp_host or settings.sip_host
    # Kamailio sends from the box's address when it listens on one, from loopback otherwise.
    box = _box_address(settings)
    balancer_sources = ",".join(["127.0.0.0/8", "::1/128", *([box] if box != LOOPBACK else [])])
    media_advertised = settings.rtp_advertised_host or _box_address(settings)
    # The nodes share the box's cores: each running a pool the size of all of them would put
    # twice as many model threads as cores in a two-node box, and every turn would wait on it.
    workers = max(1, (settings.inference_workers or cpus) // count)
    nodes = []
    for index in range(1, count + 1):
        low = settings.rtp_port_min + (index - 1) * share
        high = low + share - 1
        node_id = f"{settings.node_id}-{index}"
        environment = {
            "VOICEBRIDGE_NODE_ID": node_id,
            "VOICEBRIDGE_REDIS_URL": redis_url,
            "VOICEBRIDGE_SIP_HOST": LOOPBACK,
            "VOICEBRIDGE_SIP_PORT": str(settings.cluster_port_base + index),
            "VOICEBRIDGE_SIP_ADVERTISED_HOST": LOOPBACK,
            "VOICEBRIDGE_RTP_HOST": media_host,
            "VOICEBRIDGE_RTP_ADVERTISED_HOST": media_advertised,
            "VOICEBRIDGE_RTP_PORT_MIN": str(low),
            "VOICEBRIDGE_RTP_PORT_MAX": str(high),
            "VOICEBRIDGE_HTTP_REUSE_PORT": "true",
            "VOICEBRIDGE_HTTP_NODE_PORT": str(settings.http_port + index),
            "VOICEBRIDGE_INFERENCE_WORKERS": str(workers),
            # Kamailio sees the callers and applies these; nodes see only Kamailio.
            "VOICEBRIDGE_SIP_RATE_LIMIT": "0",
            "VOICEBRIDGE_SIP_ALLOWED_NETWORKS": balancer_sources,
            "VOICEBRIDGE_SIP_TRUSTED_NETWORKS": balancer_sources,
        }
        nodes.append(
            NodePlan(
                index=index,
                node_id=node_id,
                sip_port=settings.cluster_port_base + index,
                http_port=settings.http_port + index,
                rtp_port_min=low,
                rtp_port_max=high,
                environment=environment,
            )
        )
    nodes_file = run_dir / "dispatcher.list"
    allowed = (*settings.sip_allowed_networks, *settings.sip_trusted_networks)
    rate = round(settings.sip_rate_limit)
    balancer = {
        "VOICEBRIDGE_BALANCER_LISTEN": _listen("udp", settings),
        "VOICEBRIDGE_BALANCER_LISTEN_TCP": _listen("tcp", settings),
        "VOICEBRIDGE_BALANCER_NODES": str(nodes_file),
        "VOICEBRIDGE_BALANCER_PROBE_S": str(settings.cluster_probe_interval),
        "VOICEBRIDGE_BALANCER_FAILOVER_MS": str(round(settings.cluster_failover_timeout * 1000)),
        "VOICEBRIDGE_BALANCER_ALLOWED": ",".join(allowed),
        "VOICEBRIDGE_BALANCER_TRUSTED": ",".join(settings.sip_trusted_networks),
        "VOICEBRIDGE_BALANCER_RATE": str(max(rate, 1) if settings.sip_rate_limit > 0 else 0),
    }
    return ClusterPlan(tuple(nodes), balancer, nodes_file)
