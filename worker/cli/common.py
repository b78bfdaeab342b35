"""What the command modules share: error reporting, exit codes, option types, settings.

Errors the user can fix (rdcore's and the worker's own exceptions: a missing folder, an
unreadable image, a broken artifact, an unreachable model store) are printed as one line on
stderr with exit code 2, like a usage error; any other exception is a bug and keeps its
traceback.

Typer evaluates the option types below when it builds the commands, which ``rdqc --help``
does too; so they, like everything imported here at module level, must not load torch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer

from rdcore.config import BACKBONES
from rdcore.errors import RdcoreError
from worker.errors import WorkerError

if TYPE_CHECKING:
    from worker.settings import Settings

USER_ERROR_EXIT_CODE = 2
SERVICE_FAILURE_EXIT_CODE = 1

P = ParamSpec("P")
R = TypeVar("R")


def reports_user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn an RdcoreError or WorkerError into one line on stderr and exit code 2."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (RdcoreError, WorkerError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(USER_ERROR_EXIT_CODE) from None

    return run


def load_settings() -> Settings:
    """The RDQC_* settings; invalid ones are a usage error that names each bad setting."""
    from pydantic import ValidationError

    from worker.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(f"rdqc: invalid settings:\n{exc}", err=True)
        raise typer.Exit(USER_ERROR_EXIT_CODE) from None


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


BatchSize = Annotated[int, typer.Option(min=1, help="Images scored at once.")]
Device = Annotated[str, typer.Option(help="'auto' (CUDA when available), 'cpu', 'cuda:0', ...")]
Backbone = Annotated[
    str, typer.Option(callback=_one_of(BACKBONES), help=f"Teacher: {', '.join(BACKBONES)}.")
]
TeacherWeights = Annotated[
    str, typer.Option(help="'imagenet' (torchvision), 'random', or a weights file path.")
]
Quantile = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Threshold = this quantile of good scores.")
]
