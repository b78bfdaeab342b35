"""Tools around the service: a camera simulator and the embedded end-to-end demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from worker.cli.common import load_settings, reports_user_errors

app = typer.Typer()

# How long `rdqc send` waits for brokers before it gives up with an error.
_SEND_TIMEOUT_MS = 30_000


@app.command("send")
@reports_user_errors
def send_command(
    source: Annotated[Path, typer.Argument(help="a folder of images or a video file")],
    product_line: Annotated[str, typer.Option(help="the product_line header")],
    camera_id: Annotated[str, typer.Option(help="the record key and camera_id header")] = "cam-01",
    topic: Annotated[str | None, typer.Option(help="default: RDQC_KAFKA__TOPIC")] = None,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="default: RDQC_KAFKA__BOOTSTRAP_SERVERS")
    ] = None,
    rate: Annotated[float, typer.Option(help="frames per second; 0 = as fast as possible")] = 10.0,
    limit: Annotated[int | None, typer.Option(help="stop after this many frames")] = None,
    frame_prefix: Annotated[str, typer.Option(help="prefix of every frame_id")] = "",
) -> None:
    """Publish frames to Kafka with the header contract: a camera simulator."""
    from kafka import KafkaProducer

    from worker.cli.camera_sim import frames_from, send_frames
    from worker.kafka_client import KafkaSecurity, client_kwargs

    settings = load_settings()
    frames = frames_from(source)
    servers = bootstrap_servers or settings.kafka.bootstrap_servers
    producer = KafkaProducer(
        **client_kwargs(servers, KafkaSecurity.from_settings(settings.kafka)),
        acks="all",
        max_request_size=settings.max_payload_bytes + 65536,
        # Bounded, so unreachable brokers end the command with an error instead of a hang.
        max_block_ms=_SEND_TIMEOUT_MS,
        delivery_timeout_ms=_SEND_TIMEOUT_MS,
        request_timeout_ms=_SEND_TIMEOUT_MS // 2,
    )
    try:
        sent = send_frames(
            producer,
            topic or settings.kafka.topic,
            frames,
            product_line=product_line,
            camera_id=camera_id,
            rate=rate,
            limit=limit,
            frame_prefix=frame_prefix,
        )
    finally:
        producer.close(timeout=_SEND_TIMEOUT_MS / 1000)
    typer.echo(json.dumps({"sent": sent, "topic": topic or settings.kafka.topic}))


@app.command("demo")
@reports_user_errors
def demo_command(
    workdir: Annotated[Path, typer.Option(help="where everything is written")] = Path(
        "demo-output"
    ),
    epochs: Annotated[int, typer.Option(help="training epochs")] = 30,
    frames: Annotated[int, typer.Option(help="frames streamed through the worker")] = 24,
    teacher_weights: Annotated[
        str, typer.Option(help="imagenet, random, or a weights file")
    ] = "random",
) -> None:
    """The embedded default end to end: train, publish, stream frames, print the results."""
    from worker.cli.demo import DemoOptions, run_demo

    run_demo(
        DemoOptions(workdir=workdir, epochs=epochs, frames=frames, teacher_weights=teacher_weights)
    )
