"""The ``rdqc`` command: the model, service, tool, workers and operator commands, merged at the top
level, and the ``rdqc models`` group of registry commands (``rdqc topics`` comes with ops).

Each module imports torch, OpenCV and the service's clients inside its commands, so
``rdqc --help`` loads none of them (tests/unit/test_import_guard.py keeps it so).
"""

from __future__ import annotations

import typer

from worker.cli import dashboard, model, models, ops, service, tools, workers

app = typer.Typer(
    name="rdqc",
    help="Streaming visual quality control with reverse-distillation anomaly detection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Without a name, add_typer merges a group's commands into this one (Typer >= 0.15); --help
# lists them in the order added.
app.add_typer(model.app)
app.add_typer(service.app)
app.add_typer(tools.app)
app.add_typer(workers.app)
app.add_typer(ops.app)
app.add_typer(dashboard.app)
app.add_typer(models.app, name="models")


def main() -> None:
    app()
