"""Parity: run an exported file on seeds and compare it with the PyTorch fp32 generator on the CPU.

Tolerances (per variant):
- float32 files: max |difference| <= 1e-4;
- fp16 files: max |difference| <= 1e-2, or >= 99.9% of uint8 levels within +-2;
- the rgba8 file: alpha equal to the thresholded fp32 alpha wherever that alpha is not within 1e-3 of the
  threshold, and RGB within +-1 level of the quantised fp32 output where both are opaque.

A palette generator's pixels are chosen, not computed (an argmax over the sprite's colours): where two scores
nearly tie, rounding may choose the other colour, so its files are held to the share of pixels whose colour is the
one PyTorch chose (within the variant's tolerance above): at least 99.9% (fp32, rgba8) or 99% (fp16).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dcgan.serve.contract import finish_sprites

FP32_MAX_ABS = 1e-4
FP16_MAX_ABS = 1e-2
FP16_WITHIN_2 = 0.999
ALPHA_MARGIN = 1e-3  # raw alpha this close to the threshold may flip either way
CHOSEN_SHARE = {"fp32": 0.999, "fp16": 0.99}  # palette generators: pixels of PyTorch's colour, at least


@dataclass
class ParityRow:
    file: str
    runtime: str  # what ran it, e.g. "onnxruntime CPU"
    batch: int
    max_abs: float  # in [-1, 1] units; in uint8 levels for the rgba8 file
    mean_abs: float
    differ: float  # share of uint8 values that differ from the reference's
    within_2: float  # share of uint8 values within +-2 levels
    ok: bool
    tolerance: str

    def to_dict(self) -> dict:
        return asdict(self)


def levels(image: np.ndarray) -> np.ndarray:
    """[-1, 1] -> the uint8 levels a sprite would get, as int16 for differences."""
    return np.clip(np.round((image.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.int16)


def compare(variant: str, out: np.ndarray, ref: np.ndarray, file: str, runtime: str, chosen: bool = False) -> ParityRow:
    """`out` of the file against `ref`, the fp32 PyTorch image (B, 4, H, W) for the same seeds; `chosen`: a palette
    generator's, whose pixels are choices (held to the share of pixels that chose PyTorch's colour)."""
    if chosen:
        return _compare_choices(variant, out, ref, file, runtime)
    if variant == "rgba8":
        return _compare_sprites(out, ref, file, runtime)
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    level_diff = np.abs(levels(out) - levels(ref))
    row = ParityRow(
        file, runtime, len(ref), float(diff.max()), float(diff.mean()),
        float((level_diff != 0).mean()), float((level_diff <= 2).mean()), False, "",
    )  # fmt: skip
    if variant in ("fp16", "torchscript-fp16"):
        row.tolerance = f"max <= {FP16_MAX_ABS:g} or {FP16_WITHIN_2:.1%} within +-2"
        row.ok = row.max_abs <= FP16_MAX_ABS or row.within_2 >= FP16_WITHIN_2
    else:
        row.tolerance = f"max <= {FP32_MAX_ABS:g}"
        row.ok = row.max_abs <= FP32_MAX_ABS
    return row


def _compare_sprites(out: np.ndarray, ref: np.ndarray, file: str, runtime: str) -> ParityRow:
    expected = finish_sprites(ref).astype(np.int16)  # (B, H, W, 4)
    got = out.astype(np.int16)
    decided = np.abs(ref[:, 3]) > ALPHA_MARGIN  # (B, H, W)
    alpha_ok = (got[..., 3] == expected[..., 3])[decided].all()
    both_opaque = (got[..., 3] == 255) & (expected[..., 3] == 255)
    rgb_diff = np.abs(got[..., :3] - expected[..., :3])[both_opaque]
    rgb_ok = rgb_diff.size == 0 or rgb_diff.max() <= 1
    diff = np.abs(got - expected)
    return ParityRow(
        file, runtime, len(ref), float(diff.max()), float(diff.mean()),
        float((diff != 0).mean()), float((diff <= 2).mean()), bool(alpha_ok and rgb_ok),
        "alpha = thresholded fp32, RGB +-1 level",
    )  # fmt: skip


def _compare_choices(variant: str, out: np.ndarray, ref: np.ndarray, file: str, runtime: str) -> ParityRow:
    half = variant in ("fp16", "torchscript-fp16")
    if variant == "rgba8":
        got, expected = out.astype(np.int16), finish_sprites(ref).astype(np.int16)  # (B, H, W, 4)
        diff = np.abs(got - expected)
        same = (diff <= 1).all(axis=-1)
        max_abs, mean_abs = float(diff.max()), float(diff.mean())
    else:
        diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
        same = (diff <= (FP16_MAX_ABS if half else FP32_MAX_ABS)).all(axis=1)
        max_abs, mean_abs = float(diff.max()), float(diff.mean())
    level_diff = np.abs(levels(out) - levels(ref)) if variant != "rgba8" else diff
    floor = CHOSEN_SHARE["fp16" if half else "fp32"]
    share = float(same.mean())
    return ParityRow(
        file, runtime, len(ref), max_abs, mean_abs, float((level_diff != 0).mean()), float((level_diff <= 2).mean()),
        share >= floor, f">= {floor:.1%} of pixels PyTorch's colour (here {share:.3%})",
    )  # fmt: skip


def table(rows: list[ParityRow]) -> str:
    """The rows as a fixed-width text table, for the terminal and the notes."""
    head = f"{'file':<28} {'runtime':<22} {'batch':>5} {'max abs':>9} {'mean abs':>9} {'uint8 differ':>12}  ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.file:<28} {r.runtime:<22} {r.batch:>5} {r.max_abs:>9.2e} {r.mean_abs:>9.2e} "
            f"{r.differ:>12.4%}  {'yes' if r.ok else 'NO  (' + r.tolerance + ')'}"
        )
    return "\n".join(lines)
