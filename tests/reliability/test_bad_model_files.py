"""dcgan-sample, dcgan-serve and SpriteGenerator given a model file that is not a usable generator: one line saying
what was expected, exit 1, nothing written and no folder made; the Python API raises ModelError. Bytes flipped
anywhere in an exported file (weights, graph, metadata) break the sha256 it records, so it is refused before
onnxruntime reads it. A file without our metadata works from its shapes, with a notice. A TorchScript file is never
run by the sampler (it is code): it is refused like any non-ONNX file."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from dcgan.serve.cli import main as sample_main
from dcgan.serve.generator import ModelError, SpriteGenerator


def graph_model(path, inputs, outputs, nodes):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def flipped(source, tmp_path, at: int, count: int = 1):
    """A copy of `source` with `count` bytes from offset `at` inverted."""
    blob = bytearray(source.read_bytes())
    for i in range(at, at + count):
        blob[i] ^= 0xFF
    (tmp_path / "flipped.onnx").write_bytes(bytes(blob))
    return tmp_path / "flipped.onnx"


def weights_offset(path) -> int:
    """Where the largest weight tensor's bytes start in the file."""
    largest = max(onnx.load(str(path)).graph.initializer, key=lambda t: len(t.raw_data))
    return path.read_bytes().index(largest.raw_data[:64]) + 100


def make_case(case, tiny_export, tmp_path):
    fp32 = tiny_export / "generator.onnx"
    rgba8 = tiny_export / "generator-rgba8.onnx"
    if case == "missing":
        return tmp_path / "nope.onnx", "does not exist"
    if case == "empty":
        (tmp_path / "empty.onnx").write_bytes(b"")
        return tmp_path / "empty.onnx", "is empty"
    if case == "text":
        (tmp_path / "notes.onnx").write_text("a model should be here\n")
        return tmp_path / "notes.onnx", "not a loadable ONNX model"
    if case == "directory":
        (tmp_path / "folder.onnx").mkdir()
        return tmp_path / "folder.onnx", "has no generator-rgba8.onnx or generator.onnx"
    if case == "flipped weights":  # 20 bytes inside a weight tensor
        return flipped(rgba8, tmp_path, weights_offset(rgba8), 20), "is damaged"
    if case == "flipped graph":  # one byte of an operator's name
        return flipped(rgba8, tmp_path, rgba8.read_bytes().index(b"ConvTranspose") + 4), "is damaged"
    if case == "flipped metadata":  # one byte of the latent recipe
        return flipped(rgba8, tmp_path, rgba8.read_bytes().rindex(b"default_rng") + 2), "is damaged"
    if case == "flipped digest":
        return flipped(rgba8, tmp_path, rgba8.read_bytes().index(b"dcgan.sha256") + 20), "is damaged"
    if case == "truncated":
        blob = fp32.read_bytes()
        (tmp_path / "half.onnx").write_bytes(blob[: len(blob) // 2])
        return tmp_path / "half.onnx", "not a loadable ONNX model"
    if case == "not onnx":
        (tmp_path / "sprite.onnx").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
        return tmp_path / "sprite.onnx", "not a loadable ONNX model"
    if case == "torchscript":
        (tmp_path / "generator.torchscript").write_bytes(b"PK\x03\x04" + bytes(200))  # a zip, as TorchScript is
        return tmp_path / "generator.torchscript", "not a loadable ONNX model"
    f = TensorProto.FLOAT
    if case == "wrong input":
        x = helper.make_tensor_value_info("x", f, ["b", 3, 32, 32])
        y = helper.make_tensor_value_info("y", f, ["b", 3, 32, 32])
        path = graph_model(tmp_path / "image.onnx", [x], [y], [helper.make_node("Identity", ["x"], ["y"])])
        return path, "expected one input z float32 [batch, nz]"
    if case == "wrong output":  # the right input, but 3 channels out
        z = helper.make_tensor_value_info("z", f, ["b", 100])
        y = helper.make_tensor_value_info("y", f, ["b", 3, 96, 96])
        shape = helper.make_tensor("shape", TensorProto.INT64, [4], [-1, 3, 96, 96])
        nodes = [
            helper.make_node("Tile", ["z", "reps"], ["t"]),
            helper.make_node("Slice", ["t", "starts", "ends", "axes"], ["s"]),
            helper.make_node("Reshape", ["s", "shape"], ["y"]),
        ]
        inits = [
            helper.make_tensor("reps", TensorProto.INT64, [2], [1, 277]),
            helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
            helper.make_tensor("ends", TensorProto.INT64, [1], [3 * 96 * 96]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
            shape,
        ]
        graph = helper.make_graph(nodes, "g", [z], [y], initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        model.ir_version = 9
        onnx.save(model, tmp_path / "rgb.onnx")
        return tmp_path / "rgb.onnx", "[batch, 4, H, W]"
    raise AssertionError(case)


CASES = ["missing", "empty", "truncated", "text", "directory", "not onnx", "torchscript", "wrong input",
         "wrong output", "flipped weights", "flipped graph", "flipped metadata", "flipped digest"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_unusable_model_file_is_one_line_and_writes_nothing(tiny_export, tmp_path, case):
    path, says = make_case(case, tiny_export, tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(sample_main, [str(out), "-n", "4", "--model", str(path), "-q"])
    assert result.exit_code == 1, result.output
    assert says in result.output and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0  # one line
    assert not out.exists()  # not even an empty folder
    with pytest.raises(ModelError, match=says.replace("[", r"\[")):
        SpriteGenerator(path, provider="cpu")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["empty", "flipped weights", "flipped metadata"])
def test_the_server_refuses_a_broken_model_in_one_line(tiny_export, tmp_path, case):
    path, says = make_case(case, tiny_export, tmp_path)
    cmd = [sys.executable, "-m", "dcgan.serve.server", "--model", str(path), "--port", "0"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and says in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_an_exported_file_records_a_digest_that_its_bytes_match(tiny_export):
    from dcgan.serve.contract import file_digest

    for name in ("generator.onnx", "generator-fp16.onnx", "generator-rgba8.onnx"):
        recorded, actual = file_digest((tiny_export / name).read_bytes())
        assert recorded == actual and len(actual) == 64, name


def without_digest(tiny_export, tmp_path):
    """The rgba8 file as files exported before the digest were: the same metadata less dcgan.sha256."""
    model = onnx.load(str(tiny_export / "generator-rgba8.onnx"))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != "dcgan.sha256"]
    del model.metadata_props[:]
    for key, value in kept:
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, tmp_path / "legacy.onnx")
    return tmp_path / "legacy.onnx"


def test_a_file_from_before_the_digest_is_accepted_silently(tiny_export, tmp_path):
    legacy = without_digest(tiny_export, tmp_path)
    gen = SpriteGenerator(legacy, provider="cpu")
    assert gen.notice is None and "dcgan.sha256" not in gen.info.metadata
    np.testing.assert_array_equal(gen(range(4)), SpriteGenerator(tiny_export, provider="cpu")(range(4)))


def test_a_file_from_before_the_digest_with_broken_metadata_text_is_one_line(tiny_export, tmp_path):
    legacy = without_digest(tiny_export, tmp_path)
    damaged = flipped(legacy, tmp_path, legacy.read_bytes().rindex(b"default_rng") + 2)  # no longer UTF-8
    result = CliRunner().invoke(sample_main, [str(tmp_path / "out"), "-n", "2", "--model", str(damaged)])
    assert result.exit_code == 1 and "is damaged: its metadata is not valid text" in result.output, result.output
    assert result.output.strip().count("\n") == 0 and not (tmp_path / "out").exists()


def test_onnx_without_our_metadata_works_from_its_shapes_with_a_notice(tiny_export, tmp_path):
    model = onnx.load(str(tiny_export / "generator.onnx"))
    del model.metadata_props[:]
    onnx.save(model, tmp_path / "bare.onnx")
    result = CliRunner().invoke(sample_main, [str(tmp_path / "out"), "-n", "4", "--model", str(tmp_path / "bare.onnx")])
    assert result.exit_code == 0, result.output
    assert "carries no dcgan metadata; going by its shapes (nz 100, 96 px)" in result.output
    gen = SpriteGenerator(tmp_path / "bare.onnx", provider="cpu")
    reference = SpriteGenerator(tiny_export / "generator.onnx", provider="cpu")
    np.testing.assert_array_equal(gen(range(4)), reference(range(4)))  # the standard latent recipe
