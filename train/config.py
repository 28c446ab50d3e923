"""Model and training settings as dataclasses, importable without torch (the CLI takes its defaults here).

Every checkpoint carries both as plain dicts, so export and evaluation rebuild the model from the checkpoint
alone, never from command-line defaults.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

BASE_SIZE = 6  # side of the first feature map; every later stage doubles it

# Discriminator normalisation: "batch" is the DCGAN paper's; "none" suits --loss wgan-gp, whose per-sample penalty
# batch norm breaks.
D_NORMS = ("batch", "none")
LOSSES = ("bce", "wgan-gp")
# Generator upsampling: "paper" is the DCGAN paper's stride-2 4x4 transposed convolutions, whose uneven overlap
# draws a checkerboard (Odena et al. 2016); "resize" doubles the side by nearest-neighbour resizing, then a stride-1
# 3x3 convolution, and ends in a stride-1 convolution, so no pixel gets more of a kernel than its neighbours;
# "palette" is the resize trunk drawing each pixel as one of 16 colours the sprite chooses, or transparency: a
# softmax while it trains, hardened by an annealed temperature (palette_anneal), and the choice itself when sampled.
GENERATORS = ("paper", "resize", "palette")
POLICIES = ("color", "translation", "cutout")  # DiffAugment's, as train/augment.py implements them

# What checkpoints written before a setting existed were trained with (their dicts lack the key).
LEGACY_MODEL = {"d_norm": "batch", "generator": "paper"}
LEGACY_TRAIN = {"loss": "bce", "diffaugment": "", "ema_half_life": 0}

# Settings that earlier versions had and this one does not, each with the value at which it changed nothing (None:
# it never changed anything alone). A checkpoint that holds one at that value trained as this version trains; one
# that holds another value did not. docs/experiments.md has what each measured and the commit its code last lived in.
RETIRED_MODEL = {"mbstd_group": 0, "discriminator": "global"}
RETIRED_TRAIN = {
    "lr_d": 0.0, "lecam": 0.0, "label_smoothing": 0.0, "ada_target": 0.0, "replay": 0.0, "instance_noise": 0.0,
    "instance_noise_epochs": None, "d_joint_batch": False, "g_init": "normal", "even_upsampling": False, "r1": 0.0,
    "colour_variety": 0.0,
}  # fmt: skip
# Values that earlier versions allowed for a setting this one keeps, each with the value that stands in for it so the
# config still parses: the generator is the same whatever D's normalisation or the loss was.
RETIRED_MODEL_VALUES = {"d_norm": {"spectral-batch": "none", "spectral": "none"}}
RETIRED_TRAIN_VALUES = {"loss": {"hinge": "bce"}}


def retire(model: dict, train: dict) -> tuple[dict, dict, dict]:
    """A checkpoint's model and train configs without the settings this version no longer has, and those of them
    that were in use ({name: value}). Where that is empty the run trained exactly as this version would."""
    in_use = {}
    model, train = dict(model), dict(train)
    for config, retired in ((model, RETIRED_MODEL), (train, RETIRED_TRAIN)):
        for key, off in retired.items():
            if key in config and (value := config.pop(key)) != off and off is not None:
                in_use[key] = value
    for config, retired_values in ((model, RETIRED_MODEL_VALUES), (train, RETIRED_TRAIN_VALUES)):
        for key, stand_ins in retired_values.items():
            if config.get(key) in stand_ins:
                in_use[key], config[key] = config[key], stand_ins[config[key]]
    return model, train, in_use


def parse_policy(policy: str) -> tuple[str, ...]:
    """A DiffAugment policy string ("color,translation,cutout") -> its parts, in order."""
    parts = tuple(p for p in policy.replace(" ", "").split(",") if p)
    unknown = [p for p in parts if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}; choose from {', '.join(POLICIES)}")
    return parts


def check_combination(model: ModelConfig, train: TrainConfig) -> None:
    """Refuse settings that cannot train together (ValueError), for the CLI and the Python API alike."""
    if train.loss == "wgan-gp" and model.d_norm == "batch":
        raise ValueError(
            "loss wgan-gp penalises each sample's gradient, which batch norm mixes across the batch; "
            "use d_norm (--d-norm) none"
        )


def _from_dict(cls, d: dict, legacy: dict, what: str):
    unknown = set(d) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown {what} config keys: {sorted(unknown)}")
    return cls(**{**legacy, **d})


@dataclass(frozen=True)
class ModelConfig:
    nz: int = 100  # latent size
    ngf: int = 54  # generator width: channels of the last hidden stage (the shipped model's)
    ndf: int = 64  # discriminator width: channels of the first stage
    channels: int = 4  # RGBA
    image_size: int = 96
    d_norm: str = "batch"  # discriminator normalisation: D_NORMS
    generator: str = "paper"  # the generator's upsampling: GENERATORS

    def __post_init__(self) -> None:
        if self.d_norm not in D_NORMS:
            raise ValueError(f"d_norm must be one of {', '.join(D_NORMS)}, got {self.d_norm!r}")
        if self.generator not in GENERATORS:
            raise ValueError(f"generator must be one of {', '.join(GENERATORS)}, got {self.generator!r}")
        for name in ("nz", "ngf", "ndf", "channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.stages < 1 or BASE_SIZE * 2**self.stages != self.image_size:
            raise ValueError(
                f"image_size must be {BASE_SIZE}·2^k with k >= 1 (12, 24, 48, 96, ...), got {self.image_size}"
            )

    @property
    def stages(self) -> int:
        """Number of doubling stages from BASE_SIZE to image_size (4 at 96 px)."""
        ratio = self.image_size / BASE_SIZE
        return round(math.log2(ratio)) if ratio >= 1 else 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return _from_dict(cls, d, LEGACY_MODEL, "model")


@dataclass(frozen=True)
class TrainConfig:
    """The defaults are the recipe of the shipped model (docs/model-card.md), but its seed."""

    epochs: int = 130  # the shipped model is this epoch's EMA generator
    batch_size: int = 32
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    amp: bool = True  # bf16 autocast on CPUs with native bf16, mixed precision on CUDA
    channels_last: bool = True  # 1.1-1.2x on CPU (benchmarks/train_speed.py)
    flip: bool = True  # random horizontal flips of real sprites
    sample_every: int = 1  # epochs between grids + metrics lines
    keep_every: int = 0  # epochs between checkpoints kept as checkpoints/epochNNNN.pt (hard links); 0: none
    preset: str = "default"  # the recipe the settings came from (PRESETS)
    loss: str = "bce"  # LOSSES: the non-saturating BCE of the DCGAN paper, or Wasserstein with gradient penalty
    gp_weight: float = 10.0  # gradient-penalty weight of --loss wgan-gp
    diffaugment: str = "color,translation,cutout"  # DiffAugment policy; "" for none
    ema_half_life: int = 20000  # images over which the EMA generator's weights halve their lag; 0: no EMA
    # images over which the palette generator's softmax temperature falls from 1 to nearly hard (log-linearly)
    palette_anneal: int = 300_000

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        parse_policy(self.diffaugment)
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        for name in ("epochs", "batch_size", "sample_every", "lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("gp_weight", "ema_half_life", "keep_every", "palette_anneal"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (off) or positive, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return _from_dict(cls, d, LEGACY_TRAIN, "train")


# Named recipes: settings that replace TrainConfig's defaults where the command line does not set them.
PRESETS: dict[str, dict] = {
    "default": {},
    # the article this project starts from: plain DCGAN, BCE, no augmentation, batch 32, Adam 2e-4 / 0.5,
    # 100 epochs, the paper's width; its samples collapsed to one creature at a time
    "article": {
        "ngf": 64,
        "batch_size": 32,
        "flip": False,
        "epochs": 100,
        "loss": "bce",
        "d_norm": "batch",
        "diffaugment": "",
        "ema_half_life": 0,
    },  # fmt: skip
}
