"""Rebuild an ONNX model from an ONNX Runtime `.ort` (flatbuffer) file.

Why: the Moonshine `.ort` files keep their int8 weights behind Cast/Mul/Add nodes that a
`.ort` session runs on every call — for the decoder that is the whole 32768×416 embedding,
about 80 % of each token's time. Loaded as ONNX, the same graph gets onnxruntime's constant
folding, which dequantizes once at load. Same weights, same arithmetic, ~5× faster per token.
The flatbuffer readers are the ones onnxruntime itself ships (onnxruntime.tools).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper
from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs
from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs.TensorTypeAndShape import (
    TensorTypeAndShape,
)
from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs.TypeInfoValue import (
    TypeInfoValue,
)

_DIM_VALUE, _DIM_PARAM = 1, 2


class OrtFormatError(ValueError):
    pass


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return value or ""


def _tensor(source: Any) -> TensorProto:
    if source.ExternalDataOffset() >= 0:
        raise OrtFormatError(f"tensor {_text(source.Name())} keeps its data outside the file")
    proto = TensorProto()
    proto.name = _text(source.Name())
    proto.data_type = source.DataType()
    if source.DimsLength():
        proto.dims.extend(int(d) for d in source.DimsAsNumpy())
    if proto.data_type == TensorProto.STRING:
        proto.string_data.extend(source.StringData(i) for i in range(source.StringDataLength()))
    elif source.RawDataLength():
        proto.raw_data = np.asarray(source.RawDataAsNumpy()).tobytes()
    return proto


def _value_info(source: Any) -> onnx.ValueInfoProto:
    name = _text(source.Name())
    type_info = source.Type()
    if type_info is None or type_info.ValueType() != TypeInfoValue.tensor_type:
        return helper.make_empty_tensor_value_info(name)
    table = type_info.Value()
    tensor_type = TensorTypeAndShape()
    tensor_type.Init(table.Bytes, table.Pos)
    shape = tensor_type.Shape()
    dims: list[int | str | None] | None = None
    if shape is not None:
        dims = []
        for i in range(shape.DimLength()):
            value = shape.Dim(i).Value()
            if value is not None and value.DimType() == _DIM_VALUE:
                dims.append(int(value.DimValue()))
            elif value is not None and value.DimType() == _DIM_PARAM:
                dims.append(_text(value.DimParam()))
            else:
                dims.append(None)
    return helper.make_tensor_value_info(name, tensor_type.ElemType(), dims)


def _attribute(source: Any) -> AttributeProto:
    name = _text(source.Name())
    kind = source.Type()
    if kind == AttributeProto.FLOAT:
        return helper.make_attribute(name, source.F())
    if kind == AttributeProto.INT:
        return helper.make_attribute(name, source.I())
    if kind == AttributeProto.STRING:
        return helper.make_attribute(name, source.S())
    if kind == AttributeProto.TENSOR:
        return helper.make_attribute(name, _tensor(source.T()))
    if kind == AttributeProto.GRAPH:
        return helper.make_attribute(name, _graph(source.G(), name))
    if kind == AttributeProto.FLOATS:
        floats = [float(x) for x in source.FloatsAsNumpy()] if source.FloatsLength() else []
        return helper.make_attribute(name, floats, attr_type=AttributeProto.FLOATS)
    if kind == AttributeProto.INTS:
        ints = [int(x) for x in source.IntsAsNumpy()] if source.IntsLength() else []
        return helper.make_attribute(name, ints, attr_type=AttributeProto.INTS)
    if kind == AttributeProto.STRINGS:
        strings = [source.Strings(i) for i in range(source.StringsLength())]
        return helper.make_attribute(name, strings, attr_type=AttributeProto.STRINGS)
    if kind == AttributeProto.TENSORS:
        tensors = [_tensor(source.Tensors(i)) for i in range(source.TensorsLength())]
        return helper.make_attribute(name, tensors, attr_type=AttributeProto.TENSORS)
    if kind == AttributeProto.GRAPHS:
        graphs = [_graph(source.Graphs(i), name) for i in range(source.GraphsLength())]
        return helper.make_attribute(name, graphs, attr_type=AttributeProto.GRAPHS)
    raise OrtFormatError(f"attribute {name} has unsupported type {kind}")


def _graph(source: Any, name: str) -> onnx.GraphProto:
    initializers = [_tensor(source.Initializers(i)) for i in range(source.InitializersLength())]
    constant = {t.name for t in initializers}
    args = {
        _text(source.NodeArgs(i).Name()): source.NodeArgs(i) for i in range(source.NodeArgsLength())
    }
    nodes = []
    for i in range(source.NodesLength()):
        node = source.Nodes(i)
        made = helper.make_node(
            _text(node.OpType()),
            [_text(node.Inputs(j)) for j in range(node.InputsLength())],
            [_text(node.Outputs(j)) for j in range(node.OutputsLength())],
            name=_text(node.Name()),
            domain=_text(node.Domain()) or None,
        )
        made.attribute.extend(
            _attribute(node.Attributes(j)) for j in range(node.AttributesLength())
        )
        nodes.append(made)
    inputs = [_text(source.Inputs(i)) for i in range(source.InputsLength())]
    outputs = [_text(source.Outputs(i)) for i in range(source.OutputsLength())]
    return helper.make_graph(
        nodes,
        name,
        [_value_info(args[n]) for n in inputs if n not in constant],
        [_value_info(args[n]) for n in outputs],
        initializer=initializers,
    )


def ort_to_onnx(path: Path) -> onnx.ModelProto:
    data = path.read_bytes()
    if not fbs.InferenceSession.InferenceSession.InferenceSessionBufferHasIdentifier(data, 0):
        raise OrtFormatError(f"{path} is not an ONNX Runtime format model")
    session = fbs.InferenceSession.InferenceSession.GetRootAsInferenceSession(data, 0)
    model = session.Model()
    if model is None:
        raise OrtFormatError(f"{path} holds no model")
    opsets = [
        helper.make_opsetid(_text(model.OpsetImport(i).Domain()), model.OpsetImport(i).Version())
        for i in range(model.OpsetImportLength())
    ]
    return helper.make_model(
        _graph(model.Graph(), "main"), opset_imports=opsets, ir_version=model.IrVersion()
    )
