"""The code-grid design, measured: a first stage learnt on real sprites draws the pixels, a GAN learns only a grid.

    python benchmarks/code_grid.py codec --data DIR --steps 3000 runs/codec.pt          # stage 1
    python benchmarks/code_grid.py prior --data DIR --codec runs/codec.pt --steps 3000 runs/prior.pt
    python benchmarks/code_grid.py prior --judge image --vectors mixed --data DIR --codec runs/codec.pt runs/p.pt
    python benchmarks/code_grid.py report --data DIR --holdout DIR --codec runs/codec.pt --prior runs/prior.pt

Stage 1, the codec: every training pixel is mapped to the nearest of PALETTE colours (k-means over the training
sprites' opaque pixels) or to transparent. An encoder maps a sprite to a (96 / factor)^2 grid of vectors, each
replaced by the nearest entry of a learnt codebook (vector quantisation with EMA updates and dead-code restarts,
van den Oord et al. 2017), and a decoder maps the grid back to one palette choice per pixel, trained with
cross-entropy (pixels at colour edges weigh more, so outlines count). Whatever grid it is given, the decoder draws
palette colours: flat areas and few colours per sprite come from the design, not from training the GAN.

Stage 2, the prior: a small DCGAN draws the grid. Its generator picks one code per cell (argmax forward, softmax
gradient: straight-through); its discriminator judges grids of code embeddings, real ones from the codec's encoding
of the training sprites (flipped and shifted). Sprites are the decoder's drawing of the generated grid.
`prior --judge image` judges the decoded sprites instead, with the project's image discriminator and DiffAugment,
gradients passing through the frozen decoder; `--vectors` says what its G draws per cell (VECTORS).

`report` prints the likeness measures (dcgan.train.likeness) of the holdout, of the holdout through the codec (the
best the design can draw), and of the prior's sprites, writes the table to benchmarks/results/code-grid.md and two
sheets to docs/: holdout sprites beside their codec drawings, and 64 of the prior's sprites. An experiment, not a
product: nothing here is exported or served.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F
from report import publish  # benchmarks/ is on sys.path when run as a script
from torch import nn

from dcgan.serve.images import sheet
from dcgan.train import likeness as L
from dcgan.train.augment import diff_augment
from dcgan.train.config import ModelConfig
from dcgan.train.data import load_folder
from dcgan.train.loop import cpu_has_native_bf16
from dcgan.train.model import Discriminator, init_weights

PALETTE = 127  # opaque colours; class 0 is transparent
RESULTS = Path(__file__).parent / "results"
DOCS = Path(__file__).parent.parent / "docs"
NATIVE_BF16 = cpu_has_native_bf16()  # read once: autocast() runs on every training step


def kmeans_palette(sprites: np.ndarray, k: int = PALETTE, iters: int = 30, seed: int = 0) -> np.ndarray:
    """(k, 3) float colours: k-means over the distinct opaque colours of uint8 (N, 4, H, W) sprites, weighted by
    how many pixels use each."""
    rgb = sprites[:, :3].transpose(0, 2, 3, 1)[sprites[:, 3] >= 128]
    colours, counts = np.unique(rgb, axis=0, return_counts=True)
    colours, weight = colours.astype(np.float32), counts / counts.sum()
    rng = np.random.default_rng(seed)
    centres = colours[rng.choice(len(colours), k, replace=False, p=weight)]
    for _ in range(iters):
        nearest = ((colours[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        for j in range(k):
            mine = nearest == j
            centres[j] = (
                (colours[mine] * weight[mine, None]).sum(0) / weight[mine].sum()
                if mine.any()
                else colours[rng.choice(len(colours), p=weight)]  # an empty cluster restarts at a used colour
            )
    return centres


def to_classes(sprites: np.ndarray, palette: np.ndarray) -> torch.Tensor:
    """uint8 (N, 4, H, W) -> int64 (N, H, W): 0 transparent, 1 + j for palette colour j."""
    rgb = torch.from_numpy(sprites[:, :3]).float().permute(0, 2, 3, 1)
    nearest = torch.cdist(rgb.reshape(-1, 3), torch.from_numpy(palette)).argmin(1).reshape(rgb.shape[:3]) + 1
    nearest[torch.from_numpy(sprites[:, 3] < 128)] = 0
    return nearest


def colour_table(palette: np.ndarray) -> np.ndarray:
    """(1 + k, 4) uint8 RGBA for each class."""
    opaque = np.concatenate([np.rint(palette), np.full((len(palette), 1), 255)], 1)
    return np.concatenate([[[0, 0, 0, 0]], opaque]).astype(np.uint8)


def conv3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, 1, 1)


class Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), conv3(c, c), nn.BatchNorm2d(c), nn.ReLU(), conv3(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Codebook(nn.Module):
    """Nearest-entry vector quantisation; entries follow the mean of what they are assigned (EMA), and an entry
    nobody uses is restarted at a random encoder output."""

    def __init__(self, entries: int, dim: int, decay: float = 0.99):
        super().__init__()
        self.decay = decay
        self.register_buffer("embed", torch.randn(entries, dim) * 0.1)
        self.register_buffer("usage", torch.ones(entries))
        self.register_buffer("total", self.embed.clone())

    def codes(self, z: torch.Tensor) -> torch.Tensor:  # (N, dim, h, w) -> (N, h, w)
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).float()
        dist = (flat * flat).sum(1, keepdim=True) - 2 * flat @ self.embed.t() + (self.embed**2).sum(1)[None]
        return dist.argmin(1).reshape(z.shape[0], z.shape[2], z.shape[3])

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:  # (N, h, w) -> (N, dim, h, w)
        return self.embed[codes].permute(0, 3, 1, 2)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (quantised z with a straight-through gradient, codes, commitment loss)."""
        codes = self.codes(z)
        q = self.lookup(codes)
        if self.training:
            self._update(z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1]).float(), codes.reshape(-1))
        return z + (q - z).detach(), codes, F.mse_loss(z.float(), q.detach())

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        onehot = F.one_hot(codes, len(self.embed)).float()
        self.usage.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.total.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        n = self.usage.sum()
        smoothed = (self.usage + 1e-5) / (n + len(self.embed) * 1e-5) * n
        self.embed.copy_(self.total / smoothed[:, None])
        dead = self.usage < 0.03
        if dead.any():
            fresh = flat[torch.randint(len(flat), (int(dead.sum()),))]
            self.embed[dead], self.total[dead], self.usage[dead] = fresh, fresh, 1.0


def upsample(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Upsample(scale_factor=2, mode="nearest"), conv3(c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU()]


class Codec(nn.Module):
    """uint8 sprites <-> (96 / factor)^2 grids of codes, drawn back in the palette."""

    def __init__(self, palette: np.ndarray, factor: int = 4, entries: int = 512, dim: int = 32):
        super().__init__()
        self.factor = factor
        self.register_buffer("palette", torch.as_tensor(palette, dtype=torch.float32))
        last = nn.Conv2d(128, 128, 4, 2, 1) if factor == 8 else conv3(128, 128)
        self.encoder = nn.Sequential(  # 4 x 96 x 96 -> 64 x 48 -> 128 x 24 (-> 128 x 12 when factor is 8)
            conv3(4, 16), nn.ReLU(),
            nn.Conv2d(16, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.ReLU(),
            last, Residual(128), nn.BatchNorm2d(128), nn.ReLU(), nn.Conv2d(128, dim, 1),
        )  # fmt: skip
        first = upsample(128, 64) if factor == 8 else [conv3(128, 64), nn.BatchNorm2d(64), nn.ReLU()]
        self.decoder = nn.Sequential(  # dim x side -> 64 x 24 -> 48 x 48 -> 32 x 96 -> class logits
            conv3(dim, 128), Residual(128), nn.BatchNorm2d(128), nn.ReLU(),
            *first, *upsample(64, 48), *upsample(48, 32), nn.Conv2d(32, PALETTE + 1, 1),
        )  # fmt: skip
        self.codebook = Codebook(entries, dim)

    def image(self, classes: torch.Tensor) -> torch.Tensor:
        """class indices (N, H, W) -> the encoder's input, RGBA in [-1, 1] (transparent pixels mid-grey)."""
        table = torch.cat([torch.tensor([[127.5, 127.5, 127.5, 0.0]]), F.pad(self.palette, (0, 1), value=255.0)])
        return (table[classes] / 127.5 - 1).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def encode(self, sprites: np.ndarray, batch: int = 128) -> torch.Tensor:
        """uint8 (N, 4, 96, 96) -> codes (N, side, side)."""
        classes = to_classes(sprites, self.palette.numpy())
        out = []
        for part in classes.split(batch):
            with autocast():
                z = self.encoder(self.image(part))
            out.append(self.codebook.codes(z.float()))
        return torch.cat(out)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, batch: int = 128) -> np.ndarray:
        """codes (N, side, side) -> uint8 RGBA (N, 96, 96, 4), every pixel a palette colour or transparent."""
        return self.draw(torch.cat([self.codebook.lookup(part) for part in codes.split(batch)]), batch)

    @torch.no_grad()
    def draw(self, vectors: torch.Tensor, batch: int = 128) -> np.ndarray:
        """Grids of vectors (N, dim, side, side), codebook entries or not -> uint8 RGBA (N, 96, 96, 4) in the
        palette."""
        classes = [self.decoder(part).argmax(1) for part in vectors.split(batch)]
        return colour_table(self.palette.numpy())[torch.cat(classes).numpy()]


def autocast():
    """bf16 autocast where the CPU has native bf16 (~2.4x fp32); elsewhere it is far slower than fp32."""
    return torch.autocast("cpu", torch.bfloat16, enabled=NATIVE_BF16)


def train_codec(sprites: np.ndarray, steps: int, factor: int, entries: int, edge_weight: float, seed: int = 0) -> Codec:
    """Fit the codec on random 48 x 48 crops (fully convolutional, so a crop teaches what a sprite does, at a
    quarter of the cost), flipped at random; Adam with a cosine decay."""
    torch.manual_seed(seed)
    palette = kmeans_palette(sprites, seed=seed)
    classes = to_classes(sprites, palette)
    codec = Codec(palette, factor, entries)
    prior = torch.bincount(classes.reshape(-1), minlength=PALETTE + 1).float() + 1
    with torch.no_grad():  # start from the class frequencies: mostly transparent
        codec.decoder[-1].bias.copy_((prior / prior.sum()).log())
    params = [*codec.encoder.parameters(), *codec.decoder.parameters()]
    opt = torch.optim.Adam(params, 2e-3, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / steps, 1))))
    rng = torch.Generator().manual_seed(seed)
    crop, batch = 48, 48
    progress = click.progressbar(range(steps), label="codec", show_pos=True)
    with progress:
        for _ in progress:
            pick = classes[torch.randint(len(classes), (batch,), generator=rng)]
            flip = torch.rand(batch, generator=rng) < 0.5
            pick = torch.where(flip[:, None, None], pick.flip(2), pick)
            at = torch.randint(0, 96 - crop + 1, (batch, 2), generator=rng)
            target = torch.stack([p[y : y + crop, x : x + crop] for p, (y, x) in zip(pick, at.tolist(), strict=True)])
            with autocast():
                z = codec.encoder(codec.image(target))
            q, _, commitment = codec.codebook(z.float())
            with autocast():
                logits = codec.decoder(q)
            weight = 1 + edge_weight * colour_edges(target).float()
            ce = (F.cross_entropy(logits.float(), target, reduction="none") * weight).sum() / weight.sum()
            opt.zero_grad()
            (ce + 0.25 * commitment).backward()
            opt.step()
            sched.step()
    return codec.eval()


def colour_edges(classes: torch.Tensor) -> torch.Tensor:
    """Pixels whose class differs from a 4-neighbour's: outlines and the borders between colour areas."""
    edge = torch.zeros_like(classes, dtype=torch.bool)
    for axis in (1, 2):
        n = classes.shape[axis]
        differ = classes.narrow(axis, 1, n - 1) != classes.narrow(axis, 0, n - 1)
        edge.narrow(axis, 1, n - 1).logical_or_(differ)
        edge.narrow(axis, 0, n - 1).logical_or_(differ)
    return edge


def prior_networks(entries: int, dim: int, side: int, width: int, nz: int = 128) -> tuple[nn.Module, nn.Module]:
    """A DCGAN for grids: G z -> code logits (entries x side x side), D code embeddings -> one logit."""

    def up(c_in: int, c_out: int) -> list[nn.Module]:
        return [
            nn.Upsample(scale_factor=2),
            nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        ]

    extra_up = up(width, width) if side == 24 else []
    g = nn.Sequential(  # nz x 1 -> 2w x 3 -> 2w x 6 -> w x 12 (-> w x 24) -> entries x side
        nn.ConvTranspose2d(nz, 2 * width, 3, 1, 0, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
        *up(2 * width, 2 * width), *up(2 * width, width), *extra_up,
        nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, entries, 1),
    )  # fmt: skip
    extra_down = [nn.Conv2d(width, width, 4, 2, 1), nn.LeakyReLU(0.2)] if side == 24 else []
    d = nn.Sequential(  # dim x side (-> w x 12) -> 2w x 6 -> 4w x 3 -> 1
        nn.Conv2d(dim, width, 3, 1, 1), nn.LeakyReLU(0.2), *extra_down,
        nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 2 * width, 3, 1, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(4 * width, 1, 3, 1, 0), nn.Flatten(),
    )  # fmt: skip
    return g, d


@torch.no_grad()
def follow(ema: nn.Module, model: nn.Module, rate: float) -> None:
    """Move the EMA generator's weights `rate` of the way to the model's; copy its batch-norm buffers."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, rate)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


def shift_cells(grids: torch.Tensor, blank: torch.Tensor, most: int, rng: torch.Generator) -> torch.Tensor:
    """Move each embedding grid by up to `most` cells each way, filling with the blank (transparent) code."""
    out = torch.empty_like(grids)
    for i, (dy, dx) in enumerate(torch.randint(-most, most + 1, (len(grids), 2), generator=rng).tolist()):
        out[i] = blank[:, None, None]
        h, w = grids.shape[2:]
        out[i, :, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = grids[
            i, :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
        ]
    return out


def real_grids(codec: Codec, sprites: np.ndarray) -> torch.Tensor:
    """The codec's grids of the sprites, mirrored and shifted by a fraction of a cell (each shift encodes anew)."""
    step = codec.factor // 2
    mirrored = np.concatenate([sprites, sprites[..., ::-1]])
    shifts = [(dy, dx) for dy in (-step, 0, step) for dx in (-step, 0, step)]
    return torch.cat([codec.encode(np.roll(mirrored, s, (2, 3))) for s in shifts])


def train_prior(codec: Codec, sprites: np.ndarray, steps: int, width: int, r1: float, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    grids = real_grids(codec, sprites)
    embed = codec.codebook.embed.clone()
    entries, dim = embed.shape
    side = grids.shape[1]
    g, d = prior_networks(entries, dim, side, width)
    g_ema = copy.deepcopy(g).eval()
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.99))
    blank = embed[int(torch.mode(grids[:, 0, 0]).values)]
    rng = torch.Generator().manual_seed(seed + 1)
    most = 2 * side // 12
    batch, r1_every = 64, 4

    def embedded(onehot: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nkhw,kd->ndhw", onehot, embed)

    progress = click.progressbar(range(1, steps + 1), label="prior", show_pos=True)
    with progress:
        for step in progress:
            picked = grids[torch.randint(len(grids), (batch,), generator=rng)]
            real = embedded(F.one_hot(picked, entries).permute(0, 3, 1, 2).float()).requires_grad_(step % r1_every == 0)
            soft = g(torch.randn(batch, 128, 1, 1, generator=rng)).softmax(1)
            hard = F.one_hot(soft.argmax(1), entries).permute(0, 3, 1, 2).float()
            fake = embedded(hard + soft - soft.detach())  # straight-through: one code per cell, softmax gradient
            real_logit = d(shift_cells(real, blank, most, rng))
            loss_d = F.softplus(-real_logit).mean() + F.softplus(d(shift_cells(fake.detach(), blank, most, rng))).mean()
            if step % r1_every == 0:
                (grad,) = torch.autograd.grad(real_logit.sum(), real, create_graph=True)
                loss_d = loss_d + 0.5 * r1 * r1_every * grad.pow(2).sum((1, 2, 3)).mean()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = F.softplus(-d(shift_cells(fake, blank, most, rng))).mean()
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            follow(g_ema, g, 1e-3)
    return {"generator_ema": g_ema.state_dict(), "width": width, "side": side, "steps": steps, "r1": r1}


def train_prior_image(
    codec: Codec, sprites: np.ndarray, steps: int, width: int, vectors: str, out: Path, batch: int = 32, seed: int = 0
) -> dict:
    """The prior judged where the sprite shows: G draws a grid (read as `vectors` says: VECTORS); the frozen
    decoder draws it in the palette (argmax forward, softmax gradient), so every pixel is a palette colour
    whatever the grid; the project's image discriminator, with its DiffAugment policy, compares that with the
    codec's drawings of the training sprites, mirrored. A snapshot is written beside `out` every 250 steps."""
    torch.manual_seed(seed)
    for param in codec.parameters():
        param.requires_grad_(False)
    embed = codec.codebook.embed
    entries, dim = embed.shape
    mirrored = np.concatenate([sprites, sprites[..., ::-1]])
    real_all = codec.decode(codec.encode(mirrored))  # uint8 (N, 96, 96, 4): what the decoder can draw
    table = torch.from_numpy(colour_table(codec.palette.numpy())).float() / 127.5 - 1
    table[0] = -1.0
    real_all = torch.from_numpy(real_all).permute(0, 3, 1, 2).contiguous()
    side = 96 // codec.factor
    g, _ = prior_networks(entries if VECTORS[vectors] == "entries" else dim, dim, side, width)
    d = Discriminator(ModelConfig())
    g.apply(init_weights)
    d.apply(init_weights)
    g_ema = copy.deepcopy(g).eval()
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.99))
    rng = torch.Generator().manual_seed(seed + 1)
    policy = ("color", "translation", "cutout")
    codec.decoder.to(memory_format=torch.channels_last)  # ~10% faster on oneDNN
    d.to(memory_format=torch.channels_last)
    colours = table.t()[:, :, None, None]  # a 1x1 convolution: class weights -> RGBA

    def draw(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grid, commitment = decoder_input(g(z), codec.codebook, vectors)
        with autocast():
            logits = codec.decoder(grid.contiguous(memory_format=torch.channels_last))
            probs = logits.softmax(1)
            soft = F.conv2d(probs, colours.to(probs.dtype)).float()
        hard = table[logits.argmax(1)].permute(0, 3, 1, 2)
        return hard + soft - soft.detach(), commitment

    def state(done: int) -> dict:
        return {
            "generator_ema": g_ema.state_dict(), "generator": g.state_dict(),
            "width": width, "side": side, "steps": done, "judge": "image", "vectors": vectors,
        }  # fmt: skip

    progress = click.progressbar(range(1, steps + 1), label="prior", show_pos=True)
    with progress:
        for step in progress:
            real = real_all[torch.randint(len(real_all), (batch,), generator=rng)].float() / 127.5 - 1
            fake, commitment = draw(torch.randn(batch, 128, 1, 1, generator=rng))
            with autocast():
                d_real = d(diff_augment(real, policy, rng)).float()
                d_fake = d(diff_augment(fake.detach(), policy, rng)).float()
            loss_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            with autocast():
                loss_g = F.softplus(-d(diff_augment(fake, policy, rng)).float()).mean()
            opt_g.zero_grad()
            (loss_g + 0.25 * commitment).backward()
            opt_g.step()
            follow(g_ema, g, 2e-3)
            if step % 250 == 0:  # a look part-way: `report --prior` reads it
                save(state(step), out.with_name(f"{out.stem}-{step:05d}{out.suffix}"))
    return state(steps)


VECTORS = {  # how the image-judged prior's G output becomes the decoder's input; G's output channels
    "snapped": "dim",  # G draws vectors, each replaced by its nearest codebook entry (straight-through)
    "free": "dim",  # G draws vectors, decoded as they are
    "mixed": "entries",  # G draws code logits; each cell is the softmax-weighted mean of the entries
}


def decoder_input(out: torch.Tensor, codebook: Codebook, vectors: str) -> tuple[torch.Tensor, torch.Tensor]:
    """G's output (N, dim or entries, h, w) -> (the decoder's input (N, dim, h, w), a commitment loss)."""
    out = out.float()
    if vectors == "mixed":
        return torch.einsum("nkhw,kd->ndhw", out.softmax(1), codebook.embed), out.new_zeros(())
    if vectors == "free":
        return out, out.new_zeros(())
    snapped = codebook.lookup(codebook.codes(out))
    return out + (snapped - out).detach(), F.mse_loss(out, snapped)


@torch.no_grad()
def prior_sprites(codec: Codec, prior: dict, n: int, seed: int = 10**6, weights: str = "generator_ema") -> np.ndarray:
    """n sprites from the prior's EMA generator (or the one `weights` names), its batch-norm statistics
    re-estimated on fresh latents."""
    entries, dim = codec.codebook.embed.shape
    vectors = prior.get("vectors")  # None: judged on the grid, G draws code logits
    g, _ = prior_networks(entries if VECTORS.get(vectors) != "dim" else dim, dim, prior["side"], prior["width"])
    g.load_state_dict(prior[weights])
    rng = torch.Generator().manual_seed(seed)
    g.train()
    for _ in range(4):
        g(torch.randn(128, 128, 1, 1, generator=rng))
    g.eval()
    out = torch.cat([g(torch.randn(128, 128, 1, 1, generator=rng)) for _ in range(math.ceil(n / 128))])[:n]
    return codec.draw(decoder_input(out, codec.codebook, vectors)[0]) if vectors else codec.decode(out.argmax(1))


def save(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def load_codec(path: Path) -> Codec:
    state = load(path)
    codec = Codec(state["palette"].numpy(), state["factor"], state["entries"])
    codec.load_state_dict(state["weights"])
    return codec.eval()


def sprites_of(folder: Path) -> np.ndarray:
    return load_folder(folder, 96, warn=lambda *_: None).images


@click.group()
def main():
    """Measure the code-grid design (see the module docstring)."""


@main.command(context_settings={"show_default": True})
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--steps", type=click.IntRange(min=1), default=3000)
@click.option("--factor", type=click.Choice(["4", "8"]), default="4", help="pixels per grid cell, each way")
@click.option("--entries", type=click.IntRange(min=2), default=512, help="codebook size")
@click.option("--edge-weight", type=click.FloatRange(min=0), default=3.0, help="extra loss weight at colour edges")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def codec(data, steps, factor, entries, edge_weight, out):
    """Fit the codec on the sprites in DATA."""
    start = time.time()
    model = train_codec(sprites_of(data), steps, int(factor), entries, edge_weight)
    state = {"weights": model.state_dict(), "palette": model.palette, "factor": int(factor), "entries": entries}
    save(state, out)
    click.echo(f"codec written to {out} in {time.time() - start:.0f} s")


@main.command(context_settings={"show_default": True})
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--codec", "codec_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--steps", type=click.IntRange(min=1), default=3000)
@click.option("--width", type=click.IntRange(min=8), default=48)
@click.option("--r1", type=click.FloatRange(min=0), default=2.0, help="R1 penalty weight on real grids")
@click.option(
    "--judge", type=click.Choice(["grid", "image"]), default="grid",
    help="what the discriminator sees: code embeddings, or the decoded sprites",
)  # fmt: skip
@click.option(
    "--vectors", type=click.Choice(list(VECTORS)), default="mixed",
    help="--judge image: what G draws per cell (snapped to the codebook, free vectors, or a mixture of entries)",
)  # fmt: skip
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def prior(data, codec_path, steps, width, r1, judge, vectors, out):
    """Train the GAN over the codec's grids of the sprites in DATA."""
    start = time.time()
    codec, sprites = load_codec(codec_path), sprites_of(data)
    trained = (
        train_prior_image(codec, sprites, steps, width, vectors, out) if judge == "image"
        else train_prior(codec, sprites, steps, width, r1)
    )  # fmt: skip
    save(trained, out)
    click.echo(f"prior written to {out} in {time.time() - start:.0f} s")


@main.command(context_settings={"show_default": True})
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--holdout", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--codec", "codec_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--prior", "prior_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-n", "count", type=click.IntRange(min=64), default=1000, help="prior sprites measured")
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS / "code-grid.md")
@click.option("--sheets", type=click.Path(file_okay=False, path_type=Path), default=DOCS, help="folder for the sheets")
def report(data, holdout, codec_path, prior_path, count, out, sheets):
    """Likeness of the holdout, of the holdout through the codec, and of the prior's sprites, with sheets."""
    model = load_codec(codec_path)
    train, real = sprites_of(data), sprites_of(holdout)
    spectrum = L.log_radial_spectrum(train.transpose(0, 2, 3, 1))
    columns = {"holdout": real.transpose(0, 2, 3, 1), "holdout through the codec": model.decode(model.encode(real))}
    if prior_path:
        columns["prior"] = prior_sprites(model, load(prior_path), count)
    measures = {name: L.likeness(s, spectrum) for name, s in columns.items()}
    if prior_path:
        measures["prior"]["classifier_accuracy"] = L.two_sample_accuracy(
            train.transpose(0, 2, 3, 1), columns["prior"], columns["holdout"]
        )
    rows = [
        ("flat-colour share", "flat_colour_share", "{:.3f}"),
        ("colours per sprite", "colours_per_sprite", "{:.1f}"),
        ("specks", "speck_share", "{:.2%}"),
        ("parts per sprite", "parts_per_sprite", "{:.2f}"),
        ("dark-outline share", "dark_outline_share", "{:.3f}"),
        ("spectral gap", "spectral_gap", "{:.3f}"),
        ("classifier accuracy", "classifier_accuracy", "{:.3f}"),
    ]
    lines = [
        f"# The code-grid design: codec {codec_path.name}" + (f", prior {prior_path.name}" if prior_path else ""),
        "",
        "| measure | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for label, key, fmt in rows:
        lines.append(
            f"| {label} | " + " | ".join(fmt.format(m[key]) if key in m else "—" for m in measures.values()) + " |"
        )
    publish(lines, out)
    pair = np.stack([columns["holdout"][:32], columns["holdout through the codec"][:32]], 1).reshape(64, 96, 96, 4)
    sheets.mkdir(parents=True, exist_ok=True)
    sheet(pair, columns=8).save(sheets / "code-grid-codec.png")
    if prior_path:
        sheet(columns["prior"][:64], columns=8).save(sheets / "code-grid-prior.png")


if __name__ == "__main__":
    main()
