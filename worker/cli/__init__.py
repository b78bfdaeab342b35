"""The ``rdqc`` command: the model commands of rdcore plus the service's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from worker.cli.model import USER_ERROR_EXIT_CODE, reports_user_errors
from worker.cli.model import app as model_app
from worker.errors import ModelLoadError, SinkError
from worker.settings import Settings

app = typer.Typer(
    name="rdqc",
    help="Streaming visual quality control with reverse-distillation anomaly detection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.registered_commands.extend(model_app.registered_commands)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(f"rdqc: invalid settings:\n{exc}", err=True)
        raise typer.Exit(USER_ERROR_EXIT_CODE) from None


@app.command("worker")
def worker_command() -> None:
    """Run the streaming worker with the settings from RDQC_* variables (see README)."""
    from worker.service import run_worker

    settings = load_settings()
    try:
        run_worker(settings)
    except (SinkError, ModelLoadError, ConnectionError) as exc:
        typer.echo(f"rdqc worker: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("publish")
@reports_user_errors
def publish_command(
    model_dir: Annotated[
        Path, typer.Argument(help="an artifact directory (manifest.json + weights)")
    ],
    product_line: Annotated[str, typer.Option(help="the product line it serves")],
    models: Annotated[
        str | None, typer.Option(help="model store URL (default: RDQC_MODELS)")
    ] = None,
) -> None:
    """Upload an artifact to the model store; the pointer is written last."""
    from worker.modelstore.publish import publish_artifact
    from worker.wiring import model_repository

    settings = load_settings()
    if models:
        settings = settings.model_copy(
            update={"models": settings.models.model_copy(update={"url": models})}
        )
    repository = model_repository(settings, for_publishing=True)
    repository.setup()
    pointer = publish_artifact(repository, model_dir, product_line)
    typer.echo(
        json.dumps(
            {"product_line": product_line, "version": pointer.version, "sha256": pointer.sha256}
        )
    )


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
        producer.close()
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


def main() -> None:
    app()
