"""The decode stage: polled records are decoded and preprocessed on the CPU pool.

What a decoded frame holds (its image and model input) is charged to it in the offset ledger
and reported to the intake, which sizes the next polls from it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from concurrent.futures import Executor, Future

from rdcore.data.preprocess import Preprocess
from worker.frame_decoder import FrameDecoder
from worker.frames import Rejection, SourceRecord
from worker.pipeline.offsets import OffsetLedger
from worker.pipeline.pausing import Intake
from worker.pipeline.work import InFlightFrame, RejectOutput, Ticket
from worker.scoring import Prepared


class DecodeStage:
    """Called by the loop thread; ``_prepare`` runs on the CPU pool."""

    def __init__(
        self,
        decoder: FrameDecoder,
        cpu: Executor,
        preprocess_by_line: Mapping[str, Preprocess],
        ledger: OffsetLedger,
        intake: Intake,
    ) -> None:
        self._decoder = decoder
        self._cpu = cpu
        self._preprocess_by_line = preprocess_by_line
        self._ledger = ledger
        self._intake = intake
        self._decoding: deque[tuple[Ticket, Future[Prepared | Rejection]]] = deque()

    def __len__(self) -> int:
        """Records submitted and not collected yet."""
        return len(self._decoding)

    def submit(self, tickets: list[Ticket]) -> None:
        for ticket in tickets:
            self._decoding.append((ticket, self._cpu.submit(self._prepare, ticket.record)))

    def collect(self) -> list[InFlightFrame | RejectOutput]:
        """What finished, up to the first record still decoding; stale tickets are dropped.

        In poll order, so the frames of one camera keep their order within a product line.
        """
        collected: list[InFlightFrame | RejectOutput] = []
        while self._decoding and self._decoding[0][1].done():
            ticket, future = self._decoding.popleft()
            if self._ledger.is_stale(ticket):
                continue
            result = future.result()
            if isinstance(result, Rejection):
                collected.append(RejectOutput(ticket, result))
            else:
                payload, decoded = len(ticket.record.value), decoded_bytes(result)
                self._ledger.hold(ticket, payload + decoded)
                self._intake.decoded(payload, decoded)
                collected.append(InFlightFrame(ticket, result))
        return collected

    def futures(self) -> list[Future[Prepared | Rejection]]:
        return [future for _, future in self._decoding]

    def _prepare(self, record: SourceRecord) -> Prepared | Rejection:
        """CPU pool: decode and, when the product line's preprocessing is known, preprocess."""
        decoded = self._decoder.decode(record)
        if isinstance(decoded, Rejection):
            return decoded
        preprocess = self._preprocess_by_line.get(decoded.meta.product_line)
        if preprocess is None:
            return Prepared(decoded)
        try:
            return Prepared(decoded, preprocess(decoded.image), preprocess)
        except Exception:
            # Preprocessing here only saves the inference thread time. The scorer preprocesses
            # a frame that has no tensor, and a frame that fails there is isolated and
            # dead-lettered (scoring_failed) instead of stopping the loop.
            return Prepared(decoded)


def decoded_bytes(prepared: Prepared) -> int:
    """What decoding added to a frame: its image and, once preprocessed, its model input."""
    tensor = prepared.tensor
    image = prepared.frame.image.nbytes
    return image if tensor is None else image + tensor.element_size() * tensor.nelement()
