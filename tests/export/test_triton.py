"""The Triton model repository: each config.pbtxt parses as Triton's own ModelConfig protobuf and says what the ONNX
graph beside it holds; nothing in the repository is replaced by surprise. (Triton itself is not run: its ONNX
backend is not pip-installable.)"""

import re
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from google.protobuf import text_format
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import np_to_triton_dtype

from dcgan.export import triton
from dcgan.export.cli import main as export_main
from dcgan.serve.generator import SHIPPED
from dcgan.train.config import ModelConfig
from dcgan.train.demo import demo_checkpoint

SCALE_DOC = Path(__file__).resolve().parents[2] / "docs" / "scale.md"
FILES = {"dcgan-rgba8": "generator-rgba8.onnx", "dcgan-fp32": "generator.onnx"}


def export(*args):
    return CliRunner().invoke(export_main, [*map(str, args)])


def parse(model_dir) -> mc.ModelConfig:
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())


def graph_io(path):
    """[(name, Triton data type, dims)] of the graph's inputs and outputs, read with onnx and Triton's own dtype
    table, batch dimension checked open and dropped (max_batch_size > 0 puts it outside dims)."""
    graph = onnx.load(str(path)).graph

    def one(value):
        t = value.type.tensor_type
        assert t.shape.dim[0].dim_param, f"{value.name} has no open batch dimension"
        dtype = "TYPE_" + np_to_triton_dtype(helper.tensor_dtype_to_np_dtype(t.elem_type))
        return value.name, mc.DataType.Value(dtype), [d.dim_value for d in t.shape.dim[1:]]

    return [one(v) for v in graph.input], [one(v) for v in graph.output]


def config_io(config: mc.ModelConfig):
    return ([(t.name, t.data_type, list(t.dims)) for t in config.input],
            [(t.name, t.data_type, list(t.dims)) for t in config.output])  # fmt: skip


def assert_matches_graph(model_dir, source, kind=mc.ModelInstanceGroup.KIND_CPU, max_batch_size=64):
    config = parse(model_dir)
    assert config.name == model_dir.name and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == max_batch_size
    assert config.WhichOneof("scheduling_choice") == "dynamic_batching"
    assert [(g.kind, g.count) for g in config.instance_group] == [(kind, 1)]
    assert config_io(config) == graph_io(source)
    assert (model_dir / "1" / "model.onnx").read_bytes() == source.read_bytes()
    assert sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")) == [
        "1", "1/model.onnx", "config.pbtxt",
    ]  # fmt: skip


@pytest.mark.parametrize("folder", ["tiny_export", "shipped"])
def test_configs_parse_as_triton_model_config_and_match_the_onnx_graph(folder, request, tmp_path):
    source = SHIPPED if folder == "shipped" else request.getfixturevalue(folder)
    models = triton.repository_models(source, ["rgba8", "fp32"])
    written = triton.write_repository(tmp_path / "repo", models)
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["dcgan-fp32", "dcgan-rgba8"]
    assert [p.name for p in written] == ["dcgan-rgba8", "dcgan-fp32"]
    for name, file in FILES.items():
        assert_matches_graph(tmp_path / "repo" / name, source / file)
    # the sprite model as dcgan-sample's users know it: z [100] in, uint8 [96, 96, 4] out
    if folder == "shipped":
        rgba8 = parse(tmp_path / "repo" / "dcgan-rgba8")
        assert list(rgba8.input[0].dims) == [100] and rgba8.output[0].data_type == mc.TYPE_UINT8


def test_the_config_docs_scale_shows_is_the_one_written_for_the_shipped_generator(tmp_path):
    shown = re.search(r"written for the shipped generator:\n\n```\n(.*?)```", SCALE_DOC.read_text(), re.S)
    assert shown, "docs/scale.md no longer shows the shipped generator's config.pbtxt"
    triton.write_repository(tmp_path / "repo", triton.repository_models(SHIPPED, ["rgba8"]))
    assert shown.group(1) == (tmp_path / "repo" / "dcgan-rgba8" / "config.pbtxt").read_text()


def test_gpu_instances_and_another_batch_limit(tiny_export, tmp_path):
    triton.write_repository(tmp_path / "repo", triton.repository_models(tiny_export, ["rgba8"]), "gpu", 8)
    assert_matches_graph(tmp_path / "repo" / "dcgan-rgba8", tiny_export / FILES["dcgan-rgba8"],
                         mc.ModelInstanceGroup.KIND_GPU, 8)  # fmt: skip


def test_an_existing_model_folder_is_kept_unless_overwrite(tiny_export, tmp_path):
    repo, models = tmp_path / "repo", triton.repository_models(tiny_export, ["rgba8"])
    triton.write_repository(repo, models)
    stray = repo / "dcgan-rgba8" / "2" / "model.onnx"  # a version the user added by hand
    stray.parent.mkdir()
    stray.write_bytes(b"theirs")
    with pytest.raises(triton.RepositoryError, match="already has dcgan-rgba8; pass --overwrite"):
        triton.write_repository(repo, models)
    assert stray.read_bytes() == b"theirs"
    triton.write_repository(repo, models, overwrite=True)
    assert not stray.exists()  # replaced whole
    assert_matches_graph(repo / "dcgan-rgba8", tiny_export / FILES["dcgan-rgba8"])
    assert sorted(p.name for p in repo.iterdir()) == ["dcgan-rgba8"]  # no staging left behind


def test_a_graph_without_an_open_batch_dimension_is_refused(tmp_path):
    fixed = helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 100])
    graph = helper.make_graph([helper.make_node("Identity", ["z"], ["y"])], "g", [fixed],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 100])])  # fmt: skip
    onnx.save(helper.make_model(graph), str(tmp_path / "fixed.onnx"))
    with pytest.raises(triton.RepositoryError, match="tensor z has no open batch dimension"):
        triton.write_repository(tmp_path / "repo", {"m": tmp_path / "fixed.onnx"})
    assert not (tmp_path / "repo").exists()


def test_a_folder_without_the_file_is_named(tiny_export, tmp_path):
    with pytest.raises(triton.RepositoryError, match="has no generator-rgba8.onnx"):
        triton.repository_models(tmp_path, ["rgba8"])
    (tmp_path / "only-rgba8").mkdir()
    (tmp_path / "only-rgba8" / FILES["dcgan-rgba8"]).write_bytes((tiny_export / FILES["dcgan-rgba8"]).read_bytes())
    result = export(tmp_path / "only-rgba8", "--triton", tmp_path / "repo", "--triton-float")
    assert result.exit_code == 1 and result.output.strip().splitlines() == [
        f"Error: {tmp_path / 'only-rgba8'} has no generator.onnx; export it with dcgan-export RUN --onnx"
    ]
    assert not (tmp_path / "repo").exists()


# -- dcgan-export --triton ------------------------------------------------------------------------------


def test_an_export_folder_goes_in_as_it_is(tiny_export, tmp_path):
    result = export(tiny_export, "--triton", tmp_path / "repo", "--triton-float")
    assert result.exit_code == 0, result.output
    assert f"dcgan-rgba8 ({tiny_export / FILES['dcgan-rgba8']})" in result.output
    for name, file in FILES.items():
        assert_matches_graph(tmp_path / "repo" / name, tiny_export / file)


def test_the_shipped_generator_on_gpu(tmp_path):
    result = export("--shipped", "--triton", tmp_path / "repo", "--triton-device", "gpu")
    assert result.exit_code == 0, result.output
    assert "KIND_GPU: dcgan-rgba8" in result.output
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["dcgan-rgba8"]
    assert_matches_graph(tmp_path / "repo" / "dcgan-rgba8", SHIPPED / FILES["dcgan-rgba8"],
                         mc.ModelInstanceGroup.KIND_GPU)  # fmt: skip


@pytest.mark.slow  # a real export with its parity check: about 10 s
def test_a_run_is_exported_then_packaged(tmp_path):
    demo_checkpoint(tmp_path / "run" / "checkpoint.pt", ModelConfig(ngf=4, ndf=4))
    result = export(tmp_path / "run", "--triton", tmp_path / "repo", "--no-fp16", "-q")
    assert result.exit_code == 0, result.output
    exported = tmp_path / "run" / "export"
    assert sorted(p.name for p in exported.iterdir()) == ["export.json", "generator-rgba8.onnx", "generator.onnx"]
    assert_matches_graph(tmp_path / "repo" / "dcgan-rgba8", exported / FILES["dcgan-rgba8"])


def test_a_taken_model_folder_is_refused_before_any_export(tmp_path):
    demo_checkpoint(tmp_path / "run" / "checkpoint.pt", ModelConfig(ngf=4, ndf=4))
    (tmp_path / "repo" / "dcgan-rgba8").mkdir(parents=True)
    result = export(tmp_path / "run", "--triton", tmp_path / "repo")
    assert result.exit_code == 1 and "already has dcgan-rgba8; pass --overwrite" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "run" / "export").exists()
    assert list((tmp_path / "repo" / "dcgan-rgba8").iterdir()) == []


def test_shipped_needs_triton_and_no_source(tiny_export, tmp_path):
    result = export("--shipped")
    assert result.exit_code == 2 and "--shipped goes with --triton REPO" in result.output
    result = export(tiny_export, "--shipped", "--triton", tmp_path / "repo")
    assert result.exit_code == 2 and "give it no SOURCE" in result.output
    assert not (tmp_path / "repo").exists()
