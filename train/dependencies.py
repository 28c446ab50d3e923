"""The `train` extra: torch and the export stack. Commands that need it call `require_torch` first, so a runtime-only
install answers in one line with the command that fixes it. Importable without torch."""

from __future__ import annotations

import click

TRAIN_EXTRA = "pip install 'dcgan-pokemon[train]'  (from a checkout: pip install '.[train]')"


def require_torch(command: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError as err:
        raise click.ClickException(f"{command} needs PyTorch, which is not installed here: {TRAIN_EXTRA}") from err
