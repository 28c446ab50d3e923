"""Model and training settings as dataclasses, importable without torch (the CLI takes its defaults here).

Every checkpoint carries both as plain dicts, so export and evaluation rebuild the model from the checkpoint
alone, never from command-line defaults.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

BASE_SIZE = 6  # side of the first feature map; every later stage doubles it

# Discriminator normalisation: "batch" is the DCGAN paper's; "spectral" (Miyato et al. 2018) puts spectral norm
# on every convolution instead; "spectral-batch" does both (spectral norm on the weights, batch norm after the
# hidden convolutions, whose batch statistics let D see a batch of look-alikes); "none" suits --loss wgan-gp,
# whose per-sample penalty batch norm breaks.
D_NORMS = ("batch", "spectral", "spectral-batch", "none")
LOSSES = ("bce", "hinge", "wgan-gp")
# Generator init: "normal" is the DCGAN paper's N(0, 0.02) for every kernel; "icnr" draws the stride-2 kernels
# as nearest-neighbour upsampling followed by an N(0, 0.02) 3x3 convolution, so they start without a checkerboard.
G_INITS = ("normal", "icnr")

# What checkpoints written before a setting existed were trained with (their dicts lack the key).
LEGACY_MODEL = {"d_norm": "batch", "mbstd_group": 0}
LEGACY_TRAIN = {"loss": "bce", "diffaugment": "", "ema_half_life": 0}


@dataclass(frozen=True)
class ModelConfig:
    nz: int = 100  # latent size
    ngf: int = 64  # generator width: channels of the last hidden stage
    ndf: int = 64  # discriminator width: channels of the first stage
    channels: int = 4  # RGBA
    image_size: int = 96
    d_norm: str = "batch"  # discriminator normalisation: D_NORMS
    # minibatch standard deviation (Karras et al. 2018): D's last stage also sees how much the samples of a
    # group of this many differ, so a batch of look-alikes (one colour for every creature) gives itself away;
    # 0: off
    mbstd_group: int = 0

    def __post_init__(self) -> None:
        if self.d_norm not in D_NORMS:
            raise ValueError(f"d_norm must be one of {', '.join(D_NORMS)}, got {self.d_norm!r}")
        if self.mbstd_group < 0:
            raise ValueError(f"mbstd_group must be 0 (off) or a group size, got {self.mbstd_group}")
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
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**{**LEGACY_MODEL, **d})


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    batch_size: int = 32
    lr: float = 2e-4
    lr_d: float = 0.0  # the discriminator's learning rate when it differs (two time-scale updates); 0: lr
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    amp: bool = True  # bf16 autocast on CPUs with native bf16, mixed precision on CUDA
    channels_last: bool = True  # 1.1-1.2x on CPU (benchmarks/train_speed.py)
    flip: bool = True  # random horizontal flips of real sprites
    sample_every: int = 1  # epochs between grids + metrics lines
    keep_every: int = 0  # epochs between checkpoints kept as checkpoints/epochNNNN.pt (hard links); 0: none
    preset: str = "default"  # the recipe the settings came from (PRESETS)
    loss: str = "bce"  # LOSSES: the non-saturating BCE of the DCGAN paper, hinge, or Wasserstein with penalty
    gp_weight: float = 10.0  # gradient-penalty weight of --loss wgan-gp
    diffaugment: str = "color,translation,cutout"  # DiffAugment policy; "" for none
    ema_half_life: int = 5000  # images over which the EMA generator's weights halve their lag; 0: no EMA
    # R1 (Mescheder et al. 2018): (r1 / 2) * |grad D|^2 at the real sprites D sees, added to D's loss, keeps D's
    # score flat around the data, which lets GAN training converge where it would circle; 0: off
    r1: float = 0.0
    # LeCam (Tseng et al. 2021): lecam * (relu(D(x) - fake anchor)^2 + relu(real anchor - D(G(z)))^2), the anchors
    # being moving averages of D's mean scores; keeps a discriminator on little data from drifting to ever more
    # confident scores; 0: off
    lecam: float = 0.0
    # one-sided label smoothing (Salimans et al. 2016), --loss bce only: D's target for real sprites is
    # 1 - label_smoothing instead of 1, which caps how confident D gets about them; 0: off
    label_smoothing: float = 0.0
    # adaptive augmentation (Karras et al. 2020): geometric transforms with a probability that rises while
    # r = E[sign D(x)] over the real sprites is above this target, and falls while it is below; the paper's 0.6
    # means 80% of them scored above 0; 0: off
    ada_target: float = 0.0
    # experience replay for D (Shrivastava et al. 2017, who use half): this share of the generated sprites D sees in
    # each step comes from a buffer of sprites G drew in earlier steps (loop.REPLAY_SIZE of them), so D keeps
    # rejecting what G drew before and G gains nothing by hopping back to it; 0: off
    replay: float = 0.0
    # instance noise (Sønderby et al. 2016; Arjovsky and Bottou 2017): Gaussian noise of this standard deviation, in
    # the sprites' [-1, 1] units, added to every sprite D sees, real and generated, in both steps; it falls linearly
    # to 0 over instance_noise_epochs, so that early on the two distributions overlap and D's gradients stay
    # informative, and later D sees the sprites as they are; 0: off
    instance_noise: float = 0.0
    instance_noise_epochs: int = 100
    # score real and generated sprites in one forward pass of D, so its batch norm normalises them together: D's
    # score of a sprite no longer depends on a whole batch being real or generated, which swings its level from
    # batch to batch; the DCGAN paper's (and the usual) arrangement is two passes, one batch of each, which is also
    # what shows D a batch of look-alikes: with one batch, every creature took one colour (docs/experiments.md)
    d_joint_batch: bool = False
    g_init: str = "normal"  # G_INITS
    # after every G step, project G's upsampling kernels onto those with even phases (model.even_upsampling_phases):
    # checkerboard-free for the whole run, where "icnr" only starts that way
    even_upsampling: bool = False

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.g_init not in G_INITS:
            raise ValueError(f"g_init must be one of {', '.join(G_INITS)}, got {self.g_init!r}")
        if self.r1 < 0:
            raise ValueError(f"r1 must be 0 (off) or a positive weight, got {self.r1}")
        if self.lecam < 0:
            raise ValueError(f"lecam must be 0 (off) or a positive weight, got {self.lecam}")
        if not 0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be 0 (off) or below 0.5, got {self.label_smoothing}")
        if self.label_smoothing and self.loss != "bce":
            raise ValueError(f"label_smoothing needs loss 'bce', got {self.loss!r}")
        if not 0 <= self.ada_target < 1:
            raise ValueError(f"ada_target must be 0 (off) or a target below 1, got {self.ada_target}")
        if not 0 <= self.replay < 1:
            raise ValueError(f"replay must be 0 (off) or a share below 1, got {self.replay}")
        if self.instance_noise < 0:
            raise ValueError(f"instance_noise must be 0 (off) or a standard deviation, got {self.instance_noise}")
        if self.instance_noise_epochs < 1:
            raise ValueError(f"instance_noise_epochs must be at least 1, got {self.instance_noise_epochs}")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return cls(**{k: v for k, v in {**LEGACY_TRAIN, **d}.items() if k in cls.__dataclass_fields__})


# Named recipes: settings that replace TrainConfig's defaults where the command line does not set them.
PRESETS: dict[str, dict] = {
    "default": {},
    # the article this project starts from: plain DCGAN, BCE, no augmentation, batch 32, Adam 2e-4 / 0.5,
    # 100 epochs; its samples collapsed to one creature at a time
    "article": {
        "batch_size": 32,
        "flip": False,
        "epochs": 100,
        "loss": "bce",
        "d_norm": "batch",
        "diffaugment": "",
        "ema_half_life": 0,
    },  # fmt: skip
}
