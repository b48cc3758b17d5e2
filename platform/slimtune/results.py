"""Typed results between stages and of the Python API: where the output went, and the dict the
stage wrote (metrics.json, pareto.json, a bundle's manifest.json or a job's summary.json)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Result:
    """A finished stage: `path` (its output folder or bundle) and `metrics` (what it wrote)."""

    path: str
    metrics: dict = field(default_factory=dict)


@dataclass
class SearchResult(Result):
    """A search: `metrics` is pareto.json's dict; `front` and `teacher` carry its keys."""

    @property
    def front(self) -> list[dict]:
        """Non-dominated finished trials that meet the constraints, each with `model_path`."""
        return self.metrics["front"]

    @property
    def teacher(self) -> dict:
        """The teacher measured as every trial is (validation accuracy, latency_ms, size_mb, ...)."""
        return self.metrics["teacher"]
