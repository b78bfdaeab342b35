"""Hostile payloads: each is rejected with its documented reason, and the decoder never raises.

Bombs (a few bytes declaring a huge image) must be refused from their header alone: the full
decoder is replaced by a recorder, and the test asserts it was never called.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from hostile_inputs import (
    MIB,
    Decoder,
    bmp_with,
    encode,
    exif_rotated_jpeg,
    jpeg_declaring,
    jpeg_without_sof,
    png_declaring,
    record,
    record_full_decodes,
    tiff_declaring,
    webp_declaring,
)

from rdcore.data.images import RGBImage
from worker import frame_decoder
from worker.frames import DecodedFrame, Rejection, RejectReason


@pytest.fixture
def frames(monkeypatch: pytest.MonkeyPatch) -> Decoder:
    return record_full_decodes(monkeypatch)


# (record, reason, whether the full decoder may run, a text the message must hold)
PAYLOADS = [
    pytest.param(encode(".jpg")[:300], "undecodable", True, "", id="truncated-jpeg"),
    pytest.param(encode(".jpg")[:20], "undecodable", False, "no image size", id="jpeg-cut-early"),
    pytest.param(jpeg_without_sof(), "undecodable", False, "no image size", id="jpeg-no-sof"),
    pytest.param(
        jpeg_declaring(65_535, 65_535), "bad_dimensions", False, "65535x65535", id="j-big"
    ),
    pytest.param(jpeg_declaring(0, 0), "undecodable", False, "", id="jpeg-dnl-height"),
    pytest.param(png_declaring(100_000, 100_000), "bad_dimensions", False, "", id="png-bomb"),
    pytest.param(png_declaring(8000, 8000), "bad_dimensions", False, "64000000 px", id="png-area"),
    pytest.param(encode(".png")[:12], "undecodable", False, "no image size", id="png-cut-early"),
    pytest.param(b"\x89PNG garbage", "undecodable", False, "no image size", id="png-bad-signature"),
    pytest.param(bmp_with(-32, 24), "bad_dimensions", False, "-32x24", id="bmp-negative-width"),
    pytest.param(bmp_with(32, -(2**31)), "bad_dimensions", False, "", id="bmp-min-int-height"),
    pytest.param(bmp_with(2**31 - 1, 24), "bad_dimensions", False, "", id="bmp-huge-width"),
    pytest.param(bmp_with(32, 24, info_size=20), "undecodable", False, "", id="bmp-odd-header"),
    pytest.param(encode(".tiff"), "unsupported_format", False, "49 49 2a 00", id="tiff"),
    pytest.param(tiff_declaring(100_000, 100_000), "unsupported_format", False, "", id="tiff-bomb"),
    pytest.param(encode(".webp"), "unsupported_format", False, "", id="webp"),
    pytest.param(webp_declaring(16_384, 16_384), "unsupported_format", False, "", id="webp-bomb"),
    pytest.param(encode(".ppm"), "unsupported_format", False, "", id="pnm"),
    pytest.param(b"P6\n100000 100000\n255\n\x00", "unsupported_format", False, "", id="pnm-bomb"),
    pytest.param(
        b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(32), "unsupported_format", False, "", id="jp2"
    ),
    pytest.param(b"\xff\x4f\xff\x51" + bytes(32), "unsupported_format", False, "", id="j2k"),
    pytest.param(b"GIF89a" + bytes(32), "unsupported_format", False, "", id="gif"),
    pytest.param(b"", "empty_payload", False, "", id="zero-bytes"),
    pytest.param(b"\xff\xd8\xff" + bytes(20 * MIB), "payload_too_large", False, "", id="over-cap"),
]


@pytest.mark.parametrize(("payload", "reason", "may_decode", "says"), PAYLOADS)
def test_hostile_payloads(
    frames: Decoder, payload: bytes, reason: RejectReason, may_decode: bool, says: str
) -> None:
    rejection = frames.decode(record(payload))
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.record.value) == (reason, payload)  # untouched for DLQ
    assert says.replace(" px", " pixels") in rejection.message
    if not may_decode:
        assert frames.calls == [], "the full decoder ran on a payload its header should refuse"


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xd8" + b"\xff\xfe\x00\x02" * (19 * MIB // 4),  # millions of empty comments
        b"\xff\xd8" + b"\xff" * (19 * MIB),  # fill bytes, and never a marker
    ],
    ids=["tiny-segments", "fill-bytes"],
)
def test_walking_a_hostile_jpeg_header_is_cheap(frames: Decoder, payload: bytes) -> None:
    started = time.perf_counter()
    rejection = frames.decode(record(payload))
    assert time.perf_counter() - started < 1.0  # a walk over every segment would take seconds
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "undecodable"
    assert frames.calls == []


def test_an_exif_rotated_jpeg_is_not_a_size_mismatch(frames: Decoder) -> None:
    result = frames.decode(record(exif_rotated_jpeg(40, 20)))
    assert isinstance(result, DecodedFrame), result
    assert result.image.shape == (40, 20, 3)


def decoder_returning(image: RGBImage) -> Callable[[bytes, str], RGBImage]:
    return lambda data, source: image


def decoder_raising(exc: BaseException) -> Callable[[bytes, str], RGBImage]:
    def decode(data: bytes, source: str) -> RGBImage:
        raise exc

    return decode


@pytest.mark.parametrize(
    ("decode", "error_class"),
    [
        (decoder_returning(np.zeros((48, 64, 3), dtype=np.uint8)), "FrameContractError"),
        (decoder_raising(MemoryError()), "MemoryError"),
        (decoder_raising(RuntimeError("codec bug")), "RuntimeError"),
        (decoder_raising(cv2.error("OpenCV(5.1.0) bad huffman")), "error"),
    ],
    ids=["size-mismatch", "memory", "runtime", "cv2"],
)
def test_whatever_the_decoder_does_becomes_a_rejection(
    monkeypatch: pytest.MonkeyPatch, decode: Callable[[bytes, str], RGBImage], error_class: str
) -> None:
    monkeypatch.setattr(frame_decoder, "decode_image", decode)
    rejection = Decoder().decode(record(encode(".png", 32, 24)))
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.error_class) == ("undecodable", error_class)
    assert rejection.message


def mutations(payload: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Copies with a few bytes of the first 64 (where the headers are) overwritten at random."""
    mutated = []
    for _ in range(count):
        data = bytearray(payload)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(min(64, len(data)))] = rng.randrange(256)
        mutated.append(bytes(data))
    return mutated


def test_mutated_headers_never_raise_and_never_pass_unchecked(frames: Decoder) -> None:
    rng = random.Random(20261202)
    # The contract's reasons a record itself can cause (docs/contracts.md §1).
    reasons = {"bad_header", "empty_payload", "payload_too_large", "undecodable"}
    reasons |= {"bad_dimensions", "unsupported_format"}
    for ext in (".jpg", ".png", ".bmp"):
        for payload in mutations(encode(ext, 48, 32), rng, 150):
            result = frames.decode(record(payload))
            if isinstance(result, Rejection):
                assert result.reason in reasons
                # Known failures only: the catch-all for unexpected exceptions is a last resort.
                assert result.error_class in {"FrameContractError", "ImageReadError", "error"}
            else:
                height, width = result.image.shape[:2]
                assert min(width, height) >= 16 and max(width, height) <= 8192
                assert width * height <= 40_000_000
