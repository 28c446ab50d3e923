"""dcgan-export end to end: files, metadata, the parity matrix, and the publishing rules."""

import json
import subprocess
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import assert_within_a_level, copy_run, invoke
from dcgan.export import formats
from dcgan.export.cli import main as export_main
from dcgan.serve.contract import finish_sprites
from dcgan.serve.latent import latents
from dcgan.serve.runtime import CUDA, CUDA_OPTIONS
from dcgan.train.checkpoint import load_checkpoint, load_generator, save_checkpoint
from dcgan.train.demo import calibrate
from dcgan.train.loop import Trainer

FILES = [
    "generator.onnx",
    "generator-fp16.onnx",
    "generator-rgba8.onnx",
    "generator.torchscript",
    "generator-fp16.torchscript",
]
BATCHES = [1, 7, 64]
PARITY_SEED = 20260  # the reference's seeds: fixed, so a failure can be run again
# the `run` fixture trains nothing, but writes every format of a model and runs each back: seconds, not milliseconds
needs_export = pytest.mark.slow


def widen_outputs(ckpt):
    """Make a two-epoch model's eval-mode outputs span [-1, 1], as a trained model's do (see dcgan.train.demo)."""
    state = load_checkpoint(ckpt)
    exported = "generator_ema" if "generator_ema" in state else "generator"  # what load_generator takes
    state[exported] = calibrate(load_generator(state), state["model_config"]["nz"]).state_dict()
    save_checkpoint(state, ckpt)


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory):
    """The session's two-epoch run, its outputs widened, exported in every format."""
    run = copy_run(tiny_run, tmp_path_factory.mktemp("export") / "run")
    widen_outputs(run / "checkpoint.pt")
    result = invoke(export_main, run, "-q")
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="module")
def reference(run):
    """PyTorch fp32 eager outputs on the CPU for seeds no file was checked on, per batch size."""
    generator = load_generator(load_checkpoint(run))
    rng = np.random.default_rng(PARITY_SEED)
    out = {}
    for batch in BATCHES:
        seeds = rng.integers(0, 2**31 - 1, size=batch).tolist()
        z = latents(seeds, generator.cfg.nz)
        with torch.no_grad():
            out[batch] = (z, generator(torch.from_numpy(z)).numpy())
    return out


def onnx_out(path, z, provider="CPUExecutionProvider"):
    # on CUDA, as the sampler and the exporter run it: float32 without TF32
    session = ort.InferenceSession(str(path), providers=[(provider, CUDA_OPTIONS) if provider == CUDA else provider])
    assert session.get_providers()[0] == provider
    return session.run(None, {"z": z})[0]


def ts_out(path, z, device="cpu"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location=device)
    with torch.no_grad():
        return module(torch.from_numpy(z).to(device)).float().cpu().numpy()


def levels(x):
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.int16)


def assert_same_sprites_within_a_level(got: np.ndarray, expected: np.ndarray, raw: np.ndarray):
    """Finished sprites of two computations of the same raw output `raw`: alpha equal wherever the raw alpha is not
    within 1e-3 of the threshold, RGB within one level where both are opaque, no colour where transparent."""
    decided = np.abs(raw[:, 3]) > 1e-3
    np.testing.assert_array_equal(got[..., 3][decided], expected[..., 3][decided])
    both = (got[..., 3] == 255) & (expected[..., 3] == 255)
    assert np.abs(got[..., :3].astype(np.int16) - expected[..., :3])[both].max() <= 1
    assert (got[..., :3][got[..., 3] == 0] == 0).all()


@needs_export
def test_writes_the_five_files_and_a_manifest(run):
    export = run / "export"
    assert sorted(p.name for p in export.iterdir()) == sorted(FILES + ["export.json"])
    manifest = json.loads((export / "export.json").read_text())
    assert set(manifest["files"]) == set(FILES)
    for name, info in manifest["files"].items():
        assert info["bytes"] == (export / name).stat().st_size and len(info["sha256"]) == 64
    assert manifest["parity"] and all(row["ok"] for row in manifest["parity"])
    assert manifest["source"]["epoch"] == 2


@needs_export
def test_reference_has_alpha_on_both_sides_of_the_threshold(reference):
    _, ref = reference[64]
    assert (ref[:, 3] > 0.5).mean() > 0.05 and (ref[:, 3] < -0.5).mean() > 0.05  # rgba8 checks mean something
    assert ref.min() < -0.95 and ref.max() > 0.95


@needs_export
def test_eager_generator_rebuilt_from_the_checkpoint_is_the_trained_one(run, reference):
    state = load_checkpoint(run)
    trainer = Trainer.from_state(state, torch.device("cpu"))
    trained = trainer.G_ema if trainer.G_ema is not None else trainer.G
    rebuilt = load_generator(state)
    # the same model: the same weights and batch-norm statistics, bit for bit
    own = trained.state_dict()
    assert own.keys() == rebuilt.state_dict().keys()
    for name, tensor in rebuilt.state_dict().items():
        assert torch.equal(tensor, own[name].contiguous()), name
    # and the same sprites. The trainer runs channels-last, the rebuilt module contiguous: different kernels,
    # whose sums round differently in the last bits (on AVX2-only CPUs a level flips on ~1 pixel in 10^5), so
    # floats agree to a tolerance, colours to a level, and alpha wherever the raw value is not at the threshold.
    seeds = [3, 14, 15]
    trained.eval()
    with torch.no_grad():
        z = torch.from_numpy(latents(seeds, 100))
        ours, theirs = trained(z).float().numpy(), rebuilt(z).numpy()
    assert np.abs(ours - theirs).max() <= 1e-4
    grid = trainer.sample(seeds)
    assert np.array_equal(grid, finish_sprites(ours))  # the grids show the trained module's sprites, finished
    assert_same_sprites_within_a_level(grid, finish_sprites(theirs), theirs)


@needs_export
@pytest.mark.parametrize("batch", BATCHES)
def test_fp32_files_match_pytorch(run, reference, batch):
    z, ref = reference[batch]
    for out in (onnx_out(run / "export" / "generator.onnx", z), ts_out(run / "export" / "generator.torchscript", z)):
        assert out.shape == ref.shape and out.dtype == np.float32
        assert np.abs(out - ref).max() <= 1e-4


@needs_export
@pytest.mark.parametrize("batch", BATCHES)
def test_fp16_onnx_on_the_cpu_provider(run, reference, batch):
    # onnxruntime's CPU provider has no fp16 kernels for these ops: it casts to fp32 around them, so on the
    # CPU this checks the fp16 *weights* (and the float32 I/O contract), not fp16 arithmetic; CUDA rows do.
    z, ref = reference[batch]
    out = onnx_out(run / "export" / "generator-fp16.onnx", z)
    assert out.dtype == np.float32 and out.shape == ref.shape
    within_2 = (np.abs(levels(out) - levels(ref)) <= 2).mean()
    assert np.abs(out - ref).max() <= 1e-2 or within_2 >= 0.999
    assert np.abs(out - ref).max() > 0  # the weights really are rounded to fp16


@needs_export
@pytest.mark.parametrize("batch", BATCHES)
def test_rgba8_onnx_is_the_finished_sprite(run, reference, batch):
    z, ref = reference[batch]
    sprite = onnx_out(run / "export" / "generator-rgba8.onnx", z)
    assert sprite.dtype == np.uint8 and sprite.shape == (batch, 96, 96, 4)
    alpha = sprite[..., 3]
    assert set(np.unique(alpha)) <= {0, 255}
    decided = np.abs(ref[:, 3]) > 1e-3
    np.testing.assert_array_equal((alpha == 255)[decided], (ref[:, 3] > 0)[decided])
    assert (sprite[..., :3][alpha == 0] == 0).all()  # no colour under transparent pixels
    opaque = alpha == 255
    expected_rgb = levels(ref[:, :3]).transpose(0, 2, 3, 1)
    assert np.abs(sprite[..., :3].astype(np.int16) - expected_rgb)[opaque].max() <= 1


@needs_export
def test_same_seed_same_sprite_in_every_format(run):
    z = latents([42, 42, 7], 100)
    outs = [onnx_out(run / "export" / "generator.onnx", z), ts_out(run / "export" / "generator.torchscript", z)]
    for out in outs:
        assert np.abs(levels(out[0]) - levels(out[1])).max() <= 1  # two rows of a batch: within a level
        assert np.abs(levels(out[0]) - levels(out[2])).max() > 1
    assert np.abs(outs[0] - outs[1]).max() <= 1e-4


@needs_export
def test_fp16_files_are_at_most_55_percent_of_fp32(run):
    export = run / "export"
    for fp32, fp16 in [
        ("generator.onnx", "generator-fp16.onnx"),
        ("generator.torchscript", "generator-fp16.torchscript"),
    ]:
        assert (export / fp16).stat().st_size <= 0.55 * (export / fp32).stat().st_size


@needs_export
@pytest.mark.parametrize("name, output, dtype", [
    ("generator.onnx", "image", onnx.TensorProto.FLOAT),
    ("generator-fp16.onnx", "image", onnx.TensorProto.FLOAT),
    ("generator-rgba8.onnx", "sprite", onnx.TensorProto.UINT8),
])  # fmt: skip
def test_onnx_files_are_self_contained_checked_and_self_describing(run, name, output, dtype):
    path = run / "export" / name
    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version <= 9 and [(o.domain, o.version) for o in model.opset_import if o.domain == ""] == [("", 18)]
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "z" and inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert inp.type.tensor_type.shape.dim[0].dim_param and inp.type.tensor_type.shape.dim[1].dim_value == 100
    assert (
        out.name == output and out.type.tensor_type.elem_type == dtype and out.type.tensor_type.shape.dim[0].dim_param
    )
    meta = {p.key: p.value for p in model.metadata_props}
    state = load_checkpoint(run)
    assert meta["dcgan.nz"] == "100" and meta["dcgan.image_size"] == "96" and meta["dcgan.channels"] == "4"
    assert "default_rng(seed)" in meta["dcgan.latent_recipe"]
    assert json.loads(meta["dcgan.model_config"]) == state["model_config"]
    assert json.loads(meta["dcgan.train_config"]) == state["train_config"]
    assert meta["dcgan.data_fingerprint"] == state["data"]["fingerprint"]
    manifest = json.loads((run / "export" / "export.json").read_text())
    assert meta["dcgan.checkpoint_sha256"] == manifest["source"]["sha256"]
    for key in ("layout", "output_range", "output_dtype", "package_version", "exported", "variant"):
        assert meta[f"dcgan.{key}"]


@needs_export
def test_torchscript_files_carry_the_same_metadata(run):
    onnx_meta = {p.key: p.value for p in onnx.load(str(run / "export" / "generator.onnx")).metadata_props}
    extra = {"dcgan.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(str(run / "export" / "generator.torchscript"), _extra_files=extra)
    meta = json.loads(extra["dcgan.json"])
    assert meta["dcgan.variant"] == "torchscript"
    assert {k: v for k, v in meta.items() if k != "dcgan.variant"} == {  # the ONNX files also record their own digest
        k: v for k, v in onnx_meta.items() if k not in ("dcgan.variant", "dcgan.sha256")
    }


@needs_export
def test_files_load_without_this_package(run):
    """Plain onnxruntime and torch.jit.load, in a process where `import dcgan` fails."""
    code = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, *a):
        if name == "dcgan" or name.startswith("dcgan."):
            raise ImportError("blocked")
sys.meta_path.insert(0, Block())
import numpy as np, onnxruntime as ort, torch
z = np.random.default_rng(1).standard_normal((3, 100), dtype=np.float32)
for name in ["generator.onnx", "generator-fp16.onnx", "generator-rgba8.onnx"]:
    session = ort.InferenceSession(r"{run / "export"}/" + name, providers=["CPUExecutionProvider"])
    print(name, session.run(None, {{"z": z}})[0].shape)
for name in ["generator.torchscript", "generator-fp16.torchscript"]:
    print(name, tuple(torch.jit.load(r"{run / "export"}/" + name)(torch.from_numpy(z)).shape))
assert "dcgan" not in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(3, 4, 96, 96)") == 4 and "(3, 96, 96, 4)" in result.stdout


cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.py runs these there)"
)


@needs_export
@cuda
@pytest.mark.parametrize("batch", BATCHES)
def test_cuda_rows(run, reference, batch):
    z, ref = reference[batch]
    for name in ("generator.onnx", "generator-fp16.onnx"):
        out = onnx_out(run / "export" / name, z, provider="CUDAExecutionProvider")
        tol_ok = np.abs(out - ref).max() <= (1e-4 if name == "generator.onnx" else 1e-2)
        assert tol_ok or (np.abs(levels(out) - levels(ref)) <= 2).mean() >= 0.999
    out = ts_out(run / "export" / "generator-fp16.torchscript", z, device="cuda")
    assert np.abs(out - ref).max() <= 1e-2 or (np.abs(levels(out) - levels(ref)) <= 2).mean() >= 0.999


def test_full_fp32_turns_tf32_off_inside_and_restores_it():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with formats.full_fp32():
            assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@needs_export
def test_parity_sessions_on_cuda_ask_for_fp32_without_tf32(run, monkeypatch, session_requests):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, "CPUExecutionProvider"])
    assert formats.onnx_session(run / "export" / "generator.onnx", "cuda") is not None
    assert session_requests == [[(CUDA, {"use_tf32": "0"})]]


@needs_export
@pytest.mark.parametrize("generator", ["resize", "palette"])  # "paper": the `run` fixture's
def test_every_generator_exports_with_the_same_parity_and_samples_under_the_same_contract(tmp_path, generator):
    """Each generator besides the paper's through every format, checked against PyTorch by the exporter's own parity
    table (nothing is published if a row fails), recorded in the metadata, and sampled seed for seed as dcgan-sample
    samples any model."""
    from dcgan.export.exporter import export_checkpoint
    from dcgan.serve.generator import SpriteGenerator
    from dcgan.train.config import ModelConfig
    from dcgan.train.demo import demo_checkpoint

    ckpt = demo_checkpoint(tmp_path / "run" / "checkpoint.pt", ModelConfig(ngf=4, ndf=4, generator=generator))
    result = export_checkpoint(ckpt, None, formats.select(onnx=True, torchscript=True, fp16=True), log=lambda _m: None)
    assert sorted(result.files) == sorted(FILES)
    assert result.parity and all(row.ok for row in result.parity)
    export = tmp_path / "run" / "export"
    meta = onnx.load(str(export / "generator-rgba8.onnx")).metadata_props
    assert json.loads({p.key: p.value for p in meta}["dcgan.model_config"])["generator"] == generator
    sprites = SpriteGenerator(export, provider="cpu", batch_size=3)(range(8))
    assert sprites.shape == (8, 96, 96, 4) and set(np.unique(sprites[..., 3])) <= {0, 255}
    assert_within_a_level(SpriteGenerator(export, provider="cpu")([5, 2]), sprites[[5, 2]])
