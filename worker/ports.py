"""The narrow interfaces the pipeline knows. Backends live in sources/, sinks/ and modelstore/.

Every sink follows one contract: ``setup`` connects and fails early (and may be called again
after it failed, while a service is down at start-up), ``add`` buffers, ``flush``
returns only once everything added is durable. A flush that raises keeps its buffer, so the
pipeline's retry writes the same items again; ``add`` and ``flush`` may raise SinkError or
SinkBackpressure. The pipeline flushes every sink before it commits any offset, so a committed
offset never covers a frame that could still be lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from worker.frames import FrameMeta, FrameResult, Rejection, SourceRecord, TopicPartition

if TYPE_CHECKING:
    from rdcore.artifacts.artifact import LoadedModel
    from worker.sinks.shadow_entry import ShadowEntry

RebalanceCallback = Callable[[set[TopicPartition]], None]


class FrameSource(Protocol):
    def setup(
        self,
        on_assigned: RebalanceCallback,
        on_revoked: RebalanceCallback,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        """Connect and subscribe; the callbacks run inside ``poll`` (and ``close``).

        ``on_revoked`` may still commit for the partitions it is given; ``on_lost`` gets
        partitions the group already gave to another consumer, so nothing can be committed for
        them (None: ``on_revoked`` gets those too). A partition assigned back to the same
        consumer may keep its fetch position, past records polled before the revoke: the
        ``on_assigned`` callback may ``seek`` it back.
        """

    def poll(self, timeout_s: float, max_records: int) -> list[SourceRecord]: ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit, per partition, the offset of the next record to read.

        Raises CommitFailed when the commit is refused (e.g. the group rebalanced meanwhile).
        """

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """The next records ``poll`` returns from the assigned ``tp`` start at ``offset``.

        Allowed inside the rebalance callbacks; records fetched before it are not returned.
        """

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    def lag(self) -> dict[TopicPartition, int]:
        """Records behind the end of each assigned partition (may be empty if unknown)."""

    def close(self) -> None: ...


class DeadLetterSink(Protocol):
    def setup(self) -> None: ...

    def add(self, rejection: Rejection) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class ScoreSink(Protocol):
    def setup(self) -> None: ...

    def add(self, result: FrameResult) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class HeatmapSink(Protocol):
    def setup(self) -> None: ...

    def uri_for(self, meta: FrameMeta) -> str:
        """The deterministic location of a frame's heatmap: a redelivery overwrites it."""

    def add(self, meta: FrameMeta, png: bytes) -> str:
        """Buffer or write one PNG; returns its URI."""

    def flush(self) -> None: ...

    def close(self) -> None: ...


class ShadowSink(Protocol):
    """Shadow-test results (docs/contracts.md §2), outside the commit path: best effort.

    ``write`` makes the entries durable or raises SinkError; either way the sink keeps nothing,
    so a failed write is lost, never retried. ``setup`` may be called again after it failed.
    """

    def setup(self) -> None: ...

    def write(self, entries: Sequence[ShadowEntry]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ModelPointer:
    """``{product_line}/current.json`` (the live version) or ``shadow.json`` (a candidate).

    ``digest`` is the version's ``Manifest.digest()``, its identity; it is None only in a pointer
    written before contract v2 (docs/contracts.md §4), which workers compare by version and
    weights sha256 instead.
    """

    version: str
    sha256: str
    digest: str | None


@dataclass(frozen=True)
class ModelSwap:
    product_line: str
    old_version: str | None
    new_version: str


class ModelRepository(Protocol):
    """Immutable artifacts at ``{product_line}/{version}/``, named by pointers (contracts §4):
    ``current.json`` for the live version, ``shadow.json`` for a candidate tested beside it.

    A worker reads the pointers, downloads the version one names and checks that the
    artifact's manifest digest equals the pointer's (modelstore/cache.py) before serving it.
    """

    def setup(self) -> None: ...

    def pointer(self, product_line: str) -> ModelPointer | None:
        """``current.json``: the version to serve; None when no model is published."""

    def shadow(self, product_line: str) -> ModelPointer | None:
        """``shadow.json``: a candidate to score alongside the current version; None if none."""

    def download(self, product_line: str, version: str, destination: str) -> None:
        """Copy the artifact's files into the local directory ``destination``."""


class ModelStore(Protocol):
    def get(self, product_line: str) -> LoadedModel:
        """The live model of a product line, loading it on first use.

        Raises UnknownProductLine when none is published, ModelLoadError when it cannot load.
        """

    def refresh(self) -> list[ModelSwap]:
        """Poll pointers of resident product lines; load, warm up and swap in new versions."""

    def versions(self) -> dict[str, str]:
        """Live model version per resident product line."""

    def shadow(self, product_line: str) -> ModelPointer | None:
        """The product line's shadow candidate, read from the repository on every call."""

    def load(self, product_line: str, pointer: ModelPointer) -> LoadedModel:
        """Fetch, verify, load and warm up the pointer's version, outside the live models.

        For shadow candidates; raises ModelLoadError when it cannot load.
        """
