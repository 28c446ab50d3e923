"""The prepared CUDA check: every GPU path in one command, a short table last.

    python benchmarks/gpu_check.py [--out DIR] [--checkpoint RUN_OR_CKPT]      # or GPU_CHECK_OUT=DIR

1. Versions: card, driver, CUDA, cuDNN, torch, onnxruntime and its providers, the date.
2. Export: the checkpoint given (default: a calibrated random width-64 generator, `dcgan.train.demo`) to
   all five files, with the exporter's own CPU parity check.
3. Parity on fresh seeds, batch 1, 7 and 256: onnxruntime CUDA fp32 and fp16, TorchScript CUDA fp32 and fp16,
   each against PyTorch fp32 on the CPU (max / mean |difference|, uint8 levels that differ).
4. Throughput, sprites/s (median of timed runs after warm-up, device synchronised): PyTorch eager,
   TorchScript fp16, onnxruntime CUDA fp32 and fp16 with IOBinding, at batch 256 and 1024; and
   `dcgan-sample -n 20000` end to end with PNGs written, so the share lost to encoding and disk shows.
5. Training under torch.distributed with NCCL (train/distributed.py): one rank per GPU, at most two, meeting
   through a file store. Each rank trains the shipped recipe (bf16) from its own seed for a few steps; the check
   holds that every rank ends with rank 0's weights, bit for bit (two GPUs), and that NCCL's broadcast and
   all-reduce run (any number), and reports images/s per rank count. With one GPU only the one-rank row exists.

A provider other than CUDA at the head of `session.get_providers()` is a fallback: the row says so and the
check fails. Without a GPU the CUDA rows say "unavailable" and the script exits 1 after the CPU part.
Its full log goes to OUT/gpu_check.log, the table to OUT/gpu_check.md.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import click
import numpy as np
import torch

from dcgan.export import formats
from dcgan.export.exporter import ExportError, export_checkpoint
from dcgan.export.parity import compare, table
from dcgan.serve.latent import latents
from dcgan.serve.runtime import ProviderError, open_session
from dcgan.train.checkpoint import load_checkpoint, load_generator
from dcgan.train.demo import demo_checkpoint

PARITY_BATCHES = (1, 7, 256)
SPEED_BATCHES = (256, 1024)


class Log:
    def __init__(self, path: Path):
        self.file = open(path, "w")

    def __call__(self, msg: str = "") -> None:
        click.echo(msg)
        self.file.write(msg + "\n")
        self.file.flush()


def versions() -> list[str]:
    import onnxruntime as ort

    lines = [
        f"date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"python: {platform.python_version()}",
    ]
    lines.append(f"torch: {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    if torch.cuda.is_available():
        lines.append(f"card: {torch.cuda.get_device_name(0)}")
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        lines.append(f"nvidia-smi: {smi.stdout.strip() or smi.stderr.strip()}")
    except (OSError, subprocess.TimeoutExpired) as err:
        lines.append(f"nvidia-smi: unavailable ({err})")
    lines.append(
        f"onnxruntime: {ort.__version__} from {Path(ort.__file__).parent}, providers {ort.get_available_providers()}"
    )
    return lines


def cuda_session(path: Path):
    """(session, note): the sampler's own session on CUDA (float32 without TF32), or None and why not."""
    try:
        return open_session(path, "cuda").session, ""
    except ProviderError as err:
        return None, str(err)


def gpu_parity(export_dir: Path, generator, log) -> tuple[list, list[str]]:
    rows, problems = [], []
    rng = np.random.default_rng()
    for batch in PARITY_BATCHES:
        seeds = rng.integers(0, 2**31 - 1, size=batch).tolist()
        z = latents(seeds, generator.cfg.nz)
        with torch.no_grad():
            ref = generator(torch.from_numpy(z)).numpy()
        for variant in ("fp32", "fp16"):
            path = export_dir / formats.FORMATS[variant].filename
            session, why = cuda_session(path)
            if session is None:
                problems.append(f"{path.name}: {why}")
                continue
            rows.append(compare(variant, formats.run_onnx(session, z), ref, path.name, "onnxruntime CUDA"))
        for variant in ("torchscript", "torchscript-fp16"):
            path = export_dir / formats.FORMATS[variant].filename
            if not torch.cuda.is_available():
                problems.append(f"{path.name}: torch sees no CUDA device")
                continue
            out = formats.run_torchscript(formats.load_torchscript(path, "cuda"), z, "cuda")
            rows.append(compare(variant, out, ref, path.name, "torch.jit CUDA"))
    return rows, sorted(set(problems))


def timed(fn, sync, repeats: int = 7, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def throughput(export_dir: Path, generator) -> list[tuple[str, int, float]]:
    import onnxruntime as ort

    rows = []
    sync = torch.cuda.synchronize
    eager = generator.to("cuda")
    ts16 = formats.load_torchscript(export_dir / formats.FORMATS["torchscript-fp16"].filename, "cuda")
    sessions = {v: cuda_session(export_dir / formats.FORMATS[v].filename)[0] for v in ("fp32", "fp16")}
    for batch in SPEED_BATCHES:
        z = torch.from_numpy(latents(range(batch), generator.cfg.nz)).to("cuda")
        with torch.no_grad(), formats.full_fp32():
            rows.append(("PyTorch eager fp32", batch, batch / timed(partial(eager, z), sync)))
            rows.append(("TorchScript fp16", batch, batch / timed(partial(ts16, z), sync)))
        for variant, session in sessions.items():
            if session is None:
                continue
            binding = session.io_binding()
            z_dev = ort.OrtValue.ortvalue_from_numpy(z.cpu().numpy(), "cuda", 0)
            binding.bind_ortvalue_input("z", z_dev)
            binding.bind_output("image", "cuda")
            rows.append(
                (
                    f"ORT CUDA {variant} (IOBinding)",
                    batch,
                    batch / timed(partial(session.run_with_iobinding, binding), binding.synchronize_outputs),
                )
            )
    return rows


DISTRIBUTED_STEPS, DISTRIBUTED_WARMUP = 30, 5


def _distributed_rank(rank: int, world: int, backend: str, tmp: str) -> None:
    """One rank of the distributed check: join, check the collectives, train, save weights and timing."""
    import torch.distributed as dist

    from dcgan.train.config import ModelConfig, TrainConfig
    from dcgan.train.distributed import Group
    from dcgan.train.loop import Trainer

    os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    device = torch.device(f"cuda:{rank}" if backend == "nccl" else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:  # the CPU's cores shared out among the ranks
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group(backend, init_method=f"file://{tmp}/store", rank=rank, world_size=world)
    try:
        probe = torch.full((4,), float(rank + 1), device=device)
        dist.all_reduce(probe)
        assert probe.tolist() == [world * (world + 1) / 2] * 4, probe
        dist.broadcast(probe.fill_(rank), src=0)
        assert probe.abs().sum().item() == 0, probe
        # each rank initialises from its own seed: only the broadcast and the averaging make them one model
        cfg = TrainConfig(seed=rank)  # the shipped recipe: bf16 on GPUs and on CPUs with native bf16
        trainer = Trainer(ModelConfig(), cfg, device, {}, group=Group(rank, world))
        gen = torch.Generator().manual_seed(rank)
        batch = torch.randint(0, 256, (cfg.batch_size, 4, 96, 96), dtype=torch.uint8, generator=gen).to(device)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        for step in range(DISTRIBUTED_STEPS + DISTRIBUTED_WARMUP):
            if step == DISTRIBUTED_WARMUP:
                sync()
                dist.barrier()
                started = time.perf_counter()
            trainer.train_step(batch)
        sync()
        seconds = time.perf_counter() - started
        params = [*trainer.G.parameters(), *trainer.D.parameters()]
        weights = torch.cat([p.detach().float().flatten().cpu() for p in params])
        torch.save({"weights": weights, "seconds": seconds, "batch": cfg.batch_size}, f"{tmp}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def distributed_check(out: Path, backend: str = "nccl") -> tuple[list[tuple[str, int, float]], list[str]]:
    """(speed rows, problems) of training on 1 and, where there are two GPUs, 2 ranks (see the module's point 5).
    backend "gloo" runs the same ranks on the CPU, so the check can be tried without a GPU."""
    import shutil

    import torch.multiprocessing as mp

    gpus = torch.cuda.device_count() if backend == "nccl" else 2
    if gpus == 0:
        return [], [f"{backend}: torch sees no CUDA device"]
    rows, problems = [], []
    for world in sorted({1, min(2, gpus)}):
        tmp = out / f"distributed-{world}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            mp.spawn(_distributed_rank, args=(world, backend, str(tmp)), nprocs=world)
        except Exception as err:  # noqa: BLE001 - the check reports which rank count failed, the rest goes on
            problems.append(f"{backend} with {world} rank(s) failed: {str(err).strip().splitlines()[-1][:200]}")
            continue
        ranks = [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(world)]
        if any(not torch.equal(r["weights"], ranks[0]["weights"]) for r in ranks[1:]):
            problems.append(f"{backend} with {world} ranks: the ranks' weights differ after {DISTRIBUTED_STEPS} steps")
        seconds = max(r["seconds"] for r in ranks)
        images = DISTRIBUTED_STEPS * ranks[0]["batch"] * world
        name = f"training, {backend}, {world} rank(s), batch {ranks[0]['batch']} each (images/s)"
        rows.append((name, ranks[0]["batch"] * world, images / seconds))
    return rows, problems


def sample_end_to_end(export_dir: Path, out: Path, n: int = 20000) -> tuple[str, int, float] | None:
    """`dcgan-sample -n N` on CUDA with PNGs written: its own sprites/s line, or None if it failed."""
    exe = Path(sys.executable).parent / "dcgan-sample"
    cmd = [str(exe), "-n", str(n), "--model", str(export_dir), "--provider", "cuda", "--batch-size", "1024",
           "--overwrite", "-q", str(out)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    match = re.search(r"\(([\d.]+) sprites/s\)", result.stdout)
    if result.returncode != 0 or not match:
        return None
    return (f"dcgan-sample -n {n} (rgba8, PNGs written)", 1024, float(match.group(1)))


@click.command(context_settings={"show_default": True})
@click.option("--out", type=click.Path(path_type=Path), default=lambda: os.environ.get("GPU_CHECK_OUT", "gpu-check"))
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="Default: a calibrated random model.")
@click.option("--distributed-only", type=click.Choice(["nccl", "gloo"]), default=None,
              help="Only point 5, with this backend (gloo: on the CPU, to try the check without a GPU).")  # fmt: skip
def main(out: Path, checkpoint: Path | None, distributed_only: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if distributed_only:
        rows, problems = distributed_check(out, distributed_only)
        for name, _, rate in rows:
            click.echo(f"{name}: {rate:,.1f}")
        for problem in problems:
            click.echo(f"problem: {problem}")
        sys.exit(1 if problems or not rows else 0)
    log = Log(out / "gpu_check.log")
    header = versions()
    for line in header:
        log(line)
    try:
        import onnxruntime as ort

        if hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA/cuDNN from the torch wheels, before any session is made
    except Exception as err:  # noqa: BLE001 - a failed preload is reported, the sessions then say what runs
        log(f"onnxruntime.preload_dlls failed: {err}")

    started = time.perf_counter()
    ckpt = checkpoint or demo_checkpoint(out / "demo" / "checkpoint.pt")
    log(f"\nexporting {ckpt}")
    export_dir = out / "export"
    try:
        result = export_checkpoint(ckpt, export_dir, list(formats.FORMATS.values()), overwrite=True, log=log)
    except ExportError as err:  # the exporter's own parity (CPU and, here, CUDA rows) failed: show which
        log(f"{table(err.rows)}\nexport failed: {err}")
        sys.exit(1)
    log(table(result.parity))
    generator = load_generator(load_checkpoint(ckpt))

    log("\nCUDA parity against PyTorch fp32 on the CPU")
    rows, problems = gpu_parity(export_dir, generator, log)
    speed = throughput(export_dir, generator) if torch.cuda.is_available() else []
    if torch.cuda.is_available():
        e2e = sample_end_to_end(export_dir, out / "sprites")
        if e2e:
            speed.append(e2e)
        else:
            problems.append("dcgan-sample -n 20000 --provider cuda failed")
        log("\ntraining under torch.distributed (NCCL)")
        trained, trouble = distributed_check(out)
        speed += trained
        problems += trouble

    lines = [*header, "", "## parity (CUDA rows against PyTorch fp32 on the CPU)", "```", table(rows), "```"]
    lines += [f"- unavailable: {p}" for p in problems]
    lines += ["", "## throughput, sprites/s (training rows: images/s)", ""]
    lines += ["| path | batch | rate |", "|---|---:|---:|"]
    lines += [f"| {name} | {batch} | {rate:,.0f} |" for name, batch, rate in speed]
    lines += ["", f"check took {time.perf_counter() - started:.0f} s"]
    text = "\n".join(lines)
    (out / "gpu_check.md").write_text(text + "\n")
    log("\n" + text)
    ok = rows and not problems and all(r.ok for r in rows)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
