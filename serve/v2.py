"""The Open Inference Protocol (v2, REST), the one Triton and KServe speak, on dcgan-serve.

A client written against these routes runs unchanged against the Triton model repository that
`dcgan-export --triton` writes: the model goes by the same name (contract.SERVED_NAMES) and its tensors are the ONNX
file's own, `z` FP32 [n, nz] in and the file's output out (`sprite` UINT8 [n, 96, 96, 4], or `image` FP32
[n, 4, 96, 96] for a float model). JSON tensors only; the binary-data extension is not offered.
"""

from __future__ import annotations

import json
import math

import numpy as np

from .contract import INPUT, OUTPUT_SPRITE, SERVED_NAMES, package_version

# One sprite of output is 36,864 numbers as JSON text (about 150 kB), against one PNG of about 6 kB: an infer request
# for n sprites costs V2_SPRITE_COST * n of the server's budget (--max-batch), 64 sprites at the default 1,024.
V2_SPRITE_COST = 16


class V2Error(ValueError):
    """A v2 request refused with this status and one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def served_name(info) -> str:
    return SERVED_NAMES["rgba8" if info.output == OUTPUT_SPRITE else "fp32"]


def output_tensor(info) -> dict:
    if info.output == OUTPUT_SPRITE:
        return {"name": info.output, "datatype": "UINT8", "shape": [-1, info.size, info.size, 4]}
    return {"name": info.output, "datatype": "FP32", "shape": [-1, 4, info.size, info.size]}


def metadata(info) -> dict:
    return {
        "name": served_name(info),
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, info.nz]}],
        "outputs": [output_tensor(info)],
    }


def server_metadata() -> dict:
    return {"name": "dcgan-serve", "version": package_version(), "extensions": []}


def max_body(nz: int, max_cost: int) -> int:
    """Bytes an infer request may send: the largest z the budget allows, at 32 bytes a number, and some room."""
    return 32 * nz * max(1, max_cost // V2_SPRITE_COST) + 65536


def parse_infer(body: bytes, info, max_cost: int) -> tuple[np.ndarray, dict]:
    """An infer request's JSON -> (z float32 [n, nz], the request's own fields to echo); V2Error(400) otherwise."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise V2Error(400, f"the body is not JSON: {err}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise V2Error(400, 'the body must be a JSON object with "inputs": a list of tensors')
    inputs = request["inputs"]
    if len(inputs) != 1 or not isinstance(inputs[0], dict) or inputs[0].get("name") != INPUT:
        raise V2Error(400, f"give exactly one input tensor, named {INPUT!r}")
    tensor = inputs[0]
    if tensor.get("datatype") != "FP32":
        raise V2Error(400, f"{INPUT} must have datatype FP32, not {tensor.get('datatype')!r}")
    shape = tensor.get("shape")
    if (not isinstance(shape, list) or len(shape) != 2 or not all(type(d) is int for d in shape)
            or shape[1] != info.nz or shape[0] < 1):  # fmt: skip
        raise V2Error(400, f"{INPUT} must have shape [n, {info.nz}] with n >= 1, not {shape!r}")
    n = shape[0]
    if n * V2_SPRITE_COST > max_cost:
        raise V2Error(400, f"{n} sprites cost {n * V2_SPRITE_COST} ({V2_SPRITE_COST} each); this server's "
                           f"limit is {max_cost} (--max-batch)")  # fmt: skip
    data = tensor.get("data")
    if isinstance(data, list) and data and isinstance(data[0], list):  # the protocol allows nested rows too
        data = [x for row in data for x in (row if isinstance(row, list) else [row])]
    if not isinstance(data, list) or len(data) != n * info.nz:
        given = len(data) if isinstance(data, list) else type(data).__name__
        raise V2Error(400, f"{INPUT} of shape {shape} needs {n * info.nz} numbers in data, not {given}")
    if not all(type(x) in (int, float) for x in data):
        raise V2Error(400, f"{INPUT}'s data must be numbers only")
    try:
        z = np.asarray(data, dtype=np.float64)
    except OverflowError:
        z = np.array([np.inf])
    if not np.isfinite(z).all() or np.abs(z).max() > np.finfo(np.float32).max:
        raise V2Error(400, f"{INPUT} holds values that are not finite float32 numbers")
    echo = {"id": request["id"]} if isinstance(request.get("id"), str) else {}
    return z.astype(np.float32).reshape(n, info.nz), echo


def infer_response(out: np.ndarray, info, echo: dict) -> bytes:
    tensor = output_tensor(info) | {"shape": list(out.shape)}
    values = out.ravel().tolist()
    if info.output == OUTPUT_SPRITE:
        data = "[" + ",".join(map(str, values)) + "]"  # small ints: four times quicker than json.dumps
    else:
        data = json.dumps([v if math.isfinite(v) else None for v in values])  # JSON has no NaN
    head = json.dumps({"model_name": served_name(info), "model_version": "1", **echo})[:-1]
    return (head + ', "outputs": [' + json.dumps(tensor)[:-1] + ', "data": ' + data + "}]}").encode()
