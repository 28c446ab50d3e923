"""Checkpoints: one dict of tensors and plain values, written atomically, read with weights_only=True; and the
generator rebuilt from one, as export and evaluation use it."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from dcgan.serve.contract import package_version
from dcgan.serve.files import write_atomic

from .config import ModelConfig, TrainConfig, retire
from .model import Generator

FORMAT = 1  # bump when the layout of the dict changes; load_checkpoint names the difference
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint; the message says which and why."""


def checkpoint_path(run_or_file: str | Path) -> Path:
    """A run folder means its checkpoint.pt; a file is taken as is."""
    path = Path(run_or_file)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def save_checkpoint(state: dict, path: Path) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename over `path`.

    A crash (even SIGKILL) mid-write leaves the previous checkpoint untouched.
    """

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(state, f)

    write_atomic(Path(path), save, durable=True)


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint written by save_checkpoint, refusing anything else with a one-line reason."""
    path = checkpoint_path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated, or not written by torch.save)")
    try:
        # weights_only: tensors and plain containers only; a pickle that carries code is refused, not run
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path} is refused: it holds more than weights ({_unpickler_reason(err)})") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or another kind of file)") from err
    if not isinstance(state, dict) or "format" not in state or "generator" not in state:
        raise CheckpointError(f"{path} is a torch file but not a dcgan checkpoint")
    if state["format"] != FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {state['format']}, this version reads format {FORMAT} "
            f"(written by dcgan-pokemon {state.get('package_version', '?')}, this is {package_version()})"
        )
    try:
        model, train, state["retired"] = retire(state["model_config"], state["train_config"])
        ModelConfig.from_dict(model)
        TrainConfig.from_dict(train)
        state["model_config"], state["train_config"] = model, train
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{path} has settings this version does not know ({err}); it was written by dcgan-pokemon "
            f"{state.get('package_version', '?')}, this is {package_version()}"
        ) from err
    return state


def retired_settings(state: dict) -> str:
    """The training settings of a loaded checkpoint that this version no longer has, as "name=value, ..."; "" if it
    used none (it trained as this version trains)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(state.get("retired", {}).items()))


def retired_note(state: dict, path: str | Path) -> str | None:
    """One line for export and evaluation of a checkpoint that used settings this version no longer has."""
    if settings := retired_settings(state):
        return f"note: {path} was trained with settings this version no longer has ({settings}); its generator loads"
    return None


def load_generator(state: dict, ema: bool = True) -> Generator:
    """The generator of a checkpoint in eval mode (batch norm on running statistics): its EMA weights if it has
    them and `ema`, else the trained (live) generator's."""
    generator = Generator(ModelConfig.from_dict(state["model_config"]))
    ema = ema and "generator_ema" in state
    load_weights(generator, state["generator_ema" if ema else "generator"], "EMA generator" if ema else "generator")
    return generator.eval()


def load_weights(module: torch.nn.Module, weights: dict, what: str, path: str | Path = "the checkpoint") -> None:
    """module.load_state_dict(weights), or a CheckpointError naming the first parameters that differ."""
    own = module.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    reshaped = [f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                if k in weights and hasattr(weights[k], "shape") and weights[k].shape != v.shape]  # fmt: skip
    if missing or unexpected or reshaped:
        found = (("missing", missing), ("unexpected", unexpected), ("shape", reshaped))
        parts = [f"{label}: {', '.join(names[:3])}{', ...' * (len(names) > 3)}" for label, names in found if names]
        raise CheckpointError(f"the {what} in {path} does not fit its recorded model config ({'; '.join(parts)})")
    module.load_state_dict(weights)


def _unpickler_reason(err: Exception) -> str:
    """The one informative paragraph of torch's weights_only error, e.g. 'unsupported GLOBAL posix.system'."""
    paragraphs = [p.strip() for p in str(err).split("\n\n") if p.strip()]
    for p in paragraphs[1:]:
        if not p.startswith(("Check the documentation", "Please file")):
            return p.replace("WeightsUnpickler error:", "").strip().rstrip(".")
    return "content other than tensors and plain values"
