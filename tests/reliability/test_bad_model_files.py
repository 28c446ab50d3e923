"""dcgan-sample --model and SpriteGenerator given a model file that is not a usable generator: one line saying
what was expected, exit 1, no sprite written. A file without our metadata works from its shapes, with a notice.
A TorchScript file is never run by the sampler (it is code): it is refused like any non-ONNX file."""

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


def make_case(case, tiny_export, tmp_path):
    fp32 = tiny_export / "generator.onnx"
    if case == "missing":
        return tmp_path / "nope.onnx", "does not exist"
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


CASES = ["missing", "truncated", "not onnx", "torchscript", "wrong input", "wrong output"]


@pytest.mark.parametrize("case", CASES)
def test_unusable_model_file_is_one_line_and_writes_nothing(tiny_export, tmp_path, case):
    path, says = make_case(case, tiny_export, tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(sample_main, [str(out), "-n", "4", "--model", str(path), "-q"])
    assert result.exit_code == 1, result.output
    assert says in result.output and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0  # one line
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(ModelError, match="does not exist|not a loadable|not a sprite generator"):
        SpriteGenerator(path, provider="cpu")


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
