"""onnxruntime sessions on an explicitly chosen provider, checked after creation, with reasons for a fallback.

Like rembg's sessions: the provider is asked for by name, `session.get_providers()` says what really runs,
and a fallback to the CPU is announced with its cause, never silent.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _state

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# onnxruntime's CUDA provider lets cuDNN compute float32 convolutions in TF32 (10-bit mantissa) unless told not
# to: about 1e-3 off, which breaks the fp32 files' parity (1e-4) and moves sprites by a level or flips an alpha
# pixel. fp32 on CUDA means fp32 here; the fp16 file is the fast one. (use_tf32: onnxruntime >= 1.18.)
CUDA_OPTIONS = {"use_tf32": "0"}
PROVIDERS = ("auto", "cuda", "cpu")


# onnxruntime's own exceptions (InvalidProtobuf, InvalidArgument, Fail, ...), which derive from Exception alone
ORT_ERRORS = tuple(e for e in vars(_state).values() if isinstance(e, type) and issubclass(e, Exception))


class ProviderError(RuntimeError):
    """The provider asked for cannot run here; the message names the cause."""


@dataclass
class Session:
    session: ort.InferenceSession
    provider: str  # what runs it, from session.get_providers()
    notice: str | None = None  # why it is not what was asked for, when it is not

    @property
    def on_cuda(self) -> bool:
        return self.provider == CUDA


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


def _loads(*names: str) -> str | None:
    """The first of `names` that the dynamic loader finds, or None."""
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return name
    return None


def _cuda_major() -> str:
    try:
        from onnxruntime.capi import build_and_package_info

        return str(build_and_package_info.cuda_version).split(".")[0]
    except (ImportError, AttributeError):
        return ""


def preload_cuda_libraries() -> None:
    """Load CUDA and cuDNN from the nvidia-* pip packages, if present, before a session is made."""
    if hasattr(ort, "preload_dlls"):
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its own advice; ours is cuda_problem()
            try:
                ort.preload_dlls(msvc=False)
            except Exception:  # noqa: BLE001 - a failed preload shows up as a missing library below
                pass


def nvidia_driver() -> str | None:
    """The NVIDIA driver library the dynamic loader finds, or None on a machine without one."""
    if sys.platform.startswith("linux"):
        return _loads("libcuda.so.1")
    if sys.platform == "win32":
        return _loads("nvcuda.dll")
    return None


def cuda_problem() -> str | None:
    """Why onnxruntime's CUDA provider cannot run here, or None when nothing is known to stop it."""
    if _installed("onnxruntime") and _installed("onnxruntime-gpu"):
        return (
            "both onnxruntime and onnxruntime-gpu are installed and the CPU one shadows the other; fix with "
            "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
        )
    if CUDA not in ort.get_available_providers():
        return f"this onnxruntime {ort.__version__} is a CPU-only build (pip install onnxruntime-gpu for CUDA)"
    if sys.platform.startswith("linux") or sys.platform == "win32":
        if not nvidia_driver():
            driver = "libcuda.so.1" if sys.platform.startswith("linux") else "nvcuda.dll"
            return f"no NVIDIA driver found ({driver} does not load): no usable GPU here"
        preload_cuda_libraries()
        major = _cuda_major()
        if sys.platform.startswith("linux"):
            missing = [
                lib
                for lib in (
                    f"libcudart.so.{major}" if major else "libcudart.so",
                    f"libcublas.so.{major}" if major else "libcublas.so",
                    "libcudnn.so.9",
                )
                if not _loads(lib)
            ]
            if missing:
                return (
                    f"CUDA/cuDNN libraries not found ({', '.join(missing)}); onnxruntime-gpu {ort.__version__} needs "
                    f"CUDA {major or '?'} and cuDNN 9 (pip install 'nvidia-cudnn-cu{major or 12}' or a system install)"
                )
    return None


def session_options(threads: int | None, arena: bool = True) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default, one per physical core
    # no busy-waiting between runs, so the cores go to the PNG encoder: end to end 230 against 217 sprites/s
    # (1024 sprites, width 64, 2 cores), though a bare session runs ~10% faster with it
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # the CPU arena's blocks grow to the largest batch the process ran and are kept: right for a batch job; a server
    # keeps it for small batches and shrinks it after large ones (shrink_arena(), benchmarks/serve_speed.py)
    options.enable_cpu_mem_arena = arena
    options.log_severity_level = 3  # errors only: a provider that cannot load is reported by its caller
    return options


def shrink_arena() -> ort.RunOptions:
    """Run options that give the CPU arena's unused memory back to the system when the run ends. Without the arena
    at all, every run allocates afresh: 6.5 against 4.4 ms a sprite at one client, 192 against 275 sprites/s at eight
    (side by side; the arena kept up to batch 16 and shrunk above it came back to 120 MB after a burst of sheets)."""
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def make_session(model: Path | bytes, provider: str, threads: int | None = None,
                 arena: bool = True) -> ort.InferenceSession | None:  # fmt: skip
    """The one place an onnxruntime session is made: `model` (a file or its bytes) on exactly `provider` ("cpu" or
    "cuda", float32 without TF32 there), or None where that provider does not come up. `arena`: onnxruntime's CPU
    memory arena, which keeps the largest run's memory for the session's life."""
    wanted = {"cpu": CPU, "cuda": CUDA}[provider]
    if wanted not in ort.get_available_providers():
        return None
    source = model if isinstance(model, bytes) else str(model)
    providers = [(CUDA, CUDA_OPTIONS)] if provider == "cuda" else [CPU]
    if provider == "cuda":
        ort.set_default_logger_severity(4)  # a provider that fails to load is reported by the None, once
    try:
        session = ort.InferenceSession(source, session_options(threads, arena), providers=providers)
    finally:
        ort.set_default_logger_severity(2)
    return session if session.get_providers()[0] == wanted else None


def open_session(model: Path | bytes, provider: str = "auto", threads: int | None = None,
                 arena: bool = True) -> Session:  # fmt: skip
    """A session for `model` (a file or its bytes) on `provider` ("auto", "cuda" or "cpu"). Raises ProviderError for
    "cuda" where CUDA cannot run; "auto" falls back to the CPU with a notice saying why, where there was a GPU to miss.
    onnxruntime's own errors (a file it cannot parse, say) pass through."""
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {PROVIDERS}, got {provider!r}")
    notice = None
    # "auto" on an onnxruntime without CUDA support, or on a machine with no NVIDIA driver at all, is simply the
    # CPU: nothing fell back. A driver with CUDA that still cannot run is what a user needs told.
    if provider == "cuda" or (provider == "auto" and CUDA in ort.get_available_providers() and nvidia_driver()):
        problem = cuda_problem()
        if problem is None:
            session = make_session(model, "cuda", threads, arena)
            if session is not None:
                return Session(session, CUDA)
            problem = "onnxruntime's CUDA provider did not load (driver, CUDA and cuDNN must match its build)"
        if provider == "cuda":
            raise ProviderError(f"--provider cuda: {problem}")
        notice = f"running on the CPU: {problem}"
    session = make_session(model, "cpu", threads, arena)
    return Session(session, session.get_providers()[0], notice)
