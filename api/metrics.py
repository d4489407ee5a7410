"""Prometheus metrics of one API process, on a registry of its own (so apps in one test process
don't collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bridge.sip.rtp import SEND_LATENESS


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Process-wide (the RTP layer sees no app), so every app's /metrics shows it.
        self.registry.register(SEND_LATENESS)
        self.requests = Counter(
            "voicebridge_http_requests",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "voicebridge_http_request_duration_seconds",
            "HTTP request latency by method and route.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.deliveries = Counter(
            "voicebridge_webhook_deliveries",
            "Webhook delivery attempts by outcome (succeeded, failed, dead, disabled, cancelled).",
            ["outcome"],
            registry=self.registry,
        )
        self.delivery_lag = Histogram(
            "voicebridge_webhook_delivery_lag_seconds",
            "From an event being written to its first successful delivery.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 3600),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "voicebridge_webhook_queue_depth",
            "Deliveries waiting (due or scheduled for retry).",
            registry=self.registry,
        )
        self.events_pending = Gauge(
            "voicebridge_events_pending",
            "Events read from the stream but not yet fanned out to deliveries.",
            registry=self.registry,
        )
        # Labelled with the node, so the series of several nodes stay apart once scraped.
        self.node_calls = Gauge(
            "voicebridge_node_calls",
            "Live SIP calls on this node.",
            ["node"],
            registry=self.registry,
        )
        self.node_max_calls = Gauge(
            "voicebridge_node_max_calls",
            "Calls this node takes (VOICEBRIDGE_SIP_MAX_CALLS).",
            ["node"],
            registry=self.registry,
        )
