"""Prometheus metrics of one service: requests by route and status, latency, batch sizes, reloads.
A registry per app (not the global one), so two apps in one process do not collide."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.06,
    0.08,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class ServeMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    batch_size: Histogram
    reloads: Counter

    @classmethod
    def create(cls) -> ServeMetrics:
        registry = CollectorRegistry()
        return cls(
            registry,
            Counter(
                "seqrec_requests",
                "HTTP requests by route and status code",
                ["route", "method", "status"],
                registry=registry,
            ),
            Histogram(
                "seqrec_request_latency_seconds",
                "request latency (server side)",
                ["route"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            Histogram(
                "seqrec_batch_size", "histories per forward pass", buckets=BATCH_BUCKETS, registry=registry
            ),
            Counter("seqrec_reloads", "model reload attempts by result", ["result"], registry=registry),
        )

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
