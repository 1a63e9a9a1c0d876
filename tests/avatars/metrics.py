"""Read the edge's /metrics as {(name, labels): value}."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.avatars.conftest import Stack


async def edge_metrics(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = await (await stack.edge.get("/metrics")).text()
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


async def metric(stack: Stack, name: str, **labels: str) -> float:
    return (await edge_metrics(stack)).get((name, tuple(sorted(labels.items()))), 0.0)
