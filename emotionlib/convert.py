"""Keras image classifier -> ONNX graph, so serving needs ONNX Runtime and not TensorFlow.

Used where a Keras model file is made servable, and nowhere else (the Bento does not ship
this module): import_model.py (into the model store) and Classifier.from_file (into a cache
folder, for in-process use). Both load the model with ``load_keras`` and convert it with
``checked_onnx``, so a model passes the same checks either way. Generic over the layers the
project's classifiers are built from, whatever their sizes: Conv2D, BatchNormalization,
Activation/ReLU/Softmax, Max/AveragePooling2D, Global{Average,Max}Pooling2D,
Dropout-like layers (identity at inference), Flatten, Dense (also on 3-D/4-D tensors),
Permute, Cropping2D, Average/Add, and nested Functional/Sequential models (as training/export.py's
flip-TTA wrapper calls the trained network twice). Anything else raises
``ConversionError`` naming the layer.

Keras tensors are channels-last; ONNX convolutions are channels-first. Each 4-D tensor is
kept in whichever layout its producer made ("keras" or "cf" = transpose 0,3,1,2 of it) and
transposed only where a consumer needs the other one (Flatten, Dense, Permute need Keras'
order, so Flatten's element order and Dense weights stay as trained).
"""
from __future__ import annotations

import numpy as np

OPSET = 17
IDENTITY_LAYERS = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout",
                   "AlphaDropout", "ActivityRegularization", "InputLayer"}
ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax", "elu": "Elu",
               "linear": None}
TO_CF, TO_KERAS = [0, 3, 1, 2], [0, 2, 3, 1]


# Largest difference allowed between a probability from Keras and from the ONNX graph.
ONNX_TOLERANCE = 1e-4


class ConversionError(ValueError):
    """The model cannot be served: a layer (or layer option) the converter does not handle, a
    file Keras cannot load, inputs or outputs of the wrong shape, or a conversion that does not
    match Keras."""


class _Graph:
    """ONNX nodes and weights being built, with the layout of every 4-D tensor."""

    def __init__(self):
        self.nodes, self.weights, self.layout, self.rank = [], [], {}, {}
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.weights.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs, hint: str, rank: int, layout: str = "keras", **attrs) -> str:
        from onnx import helper

        out = self.name(hint)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        self.rank[out], self.layout[out] = rank, layout
        return out

    def as_layout(self, tensor: str, layout: str) -> str:
        if self.rank[tensor] != 4 or self.layout[tensor] == layout:
            return tensor
        perm = TO_CF if layout == "cf" else TO_KERAS
        return self.op("Transpose", [tensor], "transpose", 4, layout, perm=perm)


def _activation(g: _Graph, x: str, name, hint: str) -> str:
    name = name if isinstance(name, str) else getattr(name, "__name__", str(name))
    if name not in ACTIVATIONS:
        raise ConversionError(f"{hint}: activation {name!r} is not supported ({sorted(ACTIVATIONS)})")
    if ACTIVATIONS[name] is None:
        return x
    if name == "softmax":
        x = g.as_layout(x, "keras")
        return g.op("Softmax", [x], hint, g.rank[x], axis=-1)
    return g.op(ACTIVATIONS[name], [x], hint, g.rank[x], g.layout[x])


def _pads(config) -> dict:
    padding = config.get("padding", "valid")
    if padding not in ("valid", "same"):
        raise ConversionError(f"{config['name']}: padding {padding!r} is not supported")
    return {"auto_pad": "SAME_UPPER" if padding == "same" else "VALID"}


def _channels_last(config):
    if config.get("data_format", "channels_last") != "channels_last":
        raise ConversionError(f"{config['name']}: only channels_last layers are supported")


def _conv2d(g, layer, config, x):
    _channels_last(config)
    if config.get("groups", 1) != 1:
        raise ConversionError(f"{config['name']}: grouped convolutions are not supported")
    weights = layer.get_weights()
    kernel = np.transpose(weights[0], (3, 2, 0, 1)).astype(np.float32)
    inputs = [g.as_layout(x, "cf"), g.const("kernel", kernel)]
    if config.get("use_bias", True):
        inputs.append(g.const("bias", weights[1].astype(np.float32)))
    y = g.op("Conv", inputs, config["name"], 4, "cf", kernel_shape=list(kernel.shape[2:]),
             strides=list(config["strides"]), dilations=list(config["dilation_rate"]), **_pads(config))
    return _activation(g, y, config.get("activation", "linear"), config["name"] + "_act")


def _batch_norm(g, layer, config, x):
    rank = g.rank[x]
    axis = config["axis"][0] if isinstance(config["axis"], (list, tuple)) else config["axis"]
    if axis % rank != rank - 1:
        raise ConversionError(f"{config['name']}: BatchNormalization over axis {axis} is not supported")
    weights = {w.path.split("/")[-1]: w.numpy() for w in layer.weights}
    mean, var = weights["moving_mean"], weights["moving_variance"]
    gamma = weights.get("gamma", np.ones_like(mean))
    beta = weights.get("beta", np.zeros_like(mean))
    if rank == 4:
        x = g.as_layout(x, "cf")
    elif rank != 2:
        raise ConversionError(f"{config['name']}: BatchNormalization on a {rank}-D tensor is not supported")
    consts = [g.const(n, v.astype(np.float32)) for n, v in (("gamma", gamma), ("beta", beta), ("mean", mean),
                                                            ("var", var))]
    return g.op("BatchNormalization", [x, *consts], config["name"], rank, g.layout[x],
                epsilon=float(config["epsilon"]))


def _pool(g, layer, config, x, op_type):
    _channels_last(config)
    pool = list(config["pool_size"])
    strides = list(config.get("strides") or pool)
    return g.op(op_type, [g.as_layout(x, "cf")], config["name"], 4, "cf", kernel_shape=pool, strides=strides,
                **_pads(config))


def _global_pool(g, layer, config, x, op_type):
    _channels_last(config)
    y = g.op(op_type, [g.as_layout(x, "cf")], config["name"], 4, "cf")
    if config.get("keepdims"):
        return y
    return g.op("Flatten", [y], config["name"] + "_flat", 2, axis=1)


def _dense(g, layer, config, x):
    weights = layer.get_weights()
    x = g.as_layout(x, "keras")
    y = g.op("MatMul", [x, g.const("kernel", weights[0].astype(np.float32))], config["name"], g.rank[x])
    if config.get("use_bias", True):
        y = g.op("Add", [y, g.const("bias", weights[1].astype(np.float32))], config["name"] + "_bias", g.rank[x])
    return _activation(g, y, config.get("activation", "linear"), config["name"] + "_act")


def _flatten(g, layer, config, x):
    x = g.as_layout(x, "keras")
    return g.op("Flatten", [x], config["name"], 2, axis=1)


def _permute(g, layer, config, x):
    x = g.as_layout(x, "keras")
    return g.op("Transpose", [x], config["name"], g.rank[x], perm=[0, *config["dims"]])


def _cropping2d(g, layer, config, x):
    _channels_last(config)
    (top, bottom), (left, right) = config["cropping"]
    h_axis, w_axis = (2, 3) if g.layout[x] == "cf" else (1, 2)
    big = np.iinfo(np.int64).max
    starts = g.const("starts", np.array([top, left], np.int64))
    ends = g.const("ends", np.array([-bottom if bottom else big, -right if right else big], np.int64))
    axes = g.const("axes", np.array([h_axis, w_axis], np.int64))
    return g.op("Slice", [x, starts, ends, axes], config["name"], 4, g.layout[x])


def _merge(g, config, inputs, average: bool):
    layouts = {g.layout[t] for t in inputs}
    layout = layouts.pop() if len(layouts) == 1 else "keras"
    inputs = [g.as_layout(t, layout) for t in inputs]
    rank = g.rank[inputs[0]]
    y = g.op("Sum", inputs, config["name"], rank, layout)
    if not average:
        return y
    return g.op("Mul", [y, g.const("inv_n", np.float32(1.0 / len(inputs)))], config["name"] + "_mean", rank, layout)


SIMPLE = {
    "Conv2D": _conv2d,
    "BatchNormalization": _batch_norm,
    "Dense": _dense,
    "Flatten": _flatten,
    "Permute": _permute,
    "Cropping2D": _cropping2d,
    "MaxPooling2D": lambda g, l, c, x: _pool(g, l, c, x, "MaxPool"),
    "AveragePooling2D": lambda g, l, c, x: _pool(g, l, c, x, "AveragePool"),
    "GlobalAveragePooling2D": lambda g, l, c, x: _global_pool(g, l, c, x, "GlobalAveragePool"),
    "GlobalMaxPooling2D": lambda g, l, c, x: _global_pool(g, l, c, x, "GlobalMaxPool"),
    "Activation": lambda g, l, c, x: _activation(g, x, c["activation"], c["name"]),
    "ReLU": lambda g, l, c, x: _relu_layer(g, c, x),
    "Softmax": lambda g, l, c, x: _activation(g, x, "softmax", c["name"]),
}


def _relu_layer(g, config, x):
    if config.get("max_value") is not None or config.get("negative_slope", 0) or config.get("threshold", 0):
        raise ConversionError(f"{config['name']}: only a plain ReLU is supported")
    return _activation(g, x, "relu", config["name"])


def _call_layer(g: _Graph, layer, inputs: list[str]) -> str:
    """Add one layer called on ``inputs``; return its output tensor's name."""
    kind = type(layer).__name__
    config = layer.get_config()
    config.setdefault("name", layer.name)
    if kind in ("Functional", "Model", "Sequential"):
        return _inline(g, layer, inputs)
    if kind in ("Average", "Add"):
        return _merge(g, config, inputs, average=kind == "Average")
    if len(inputs) != 1:
        raise ConversionError(f"{layer.name}: a {kind} layer with {len(inputs)} inputs is not supported")
    if kind in IDENTITY_LAYERS:
        return inputs[0]
    if kind not in SIMPLE:
        supported = sorted(set(SIMPLE) | IDENTITY_LAYERS | {"Average", "Add", "Functional", "Sequential"})
        raise ConversionError(f"layer {layer.name!r} of type {kind} is not supported (supported: {supported})")
    return SIMPLE[kind](g, layer, config, inputs[0])


def _history(arg) -> list[tuple]:
    """keras_history entries of a node argument (a tensor or a list of tensors)."""
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        return [tuple(arg["config"]["keras_history"])]
    if isinstance(arg, (list, tuple)):
        return [h for item in arg for h in _history(item)]
    return []


def _as_list(refs):
    return [refs] if refs and isinstance(refs[0], str) else list(refs)


def _inline(g: _Graph, model, inputs: list[str]) -> str:
    """A Functional or Sequential model called on ``inputs``: its layers added to g."""
    from keras.src.models.functional import Functional

    if type(model).__name__ == "Sequential":
        if len(inputs) != 1:
            raise ConversionError(f"{model.name}: a Sequential model takes one input")
        x = inputs[0]
        for layer in model.layers:
            x = _call_layer(g, layer, [x])
        return x
    config = model.get_config()
    input_refs, output_refs = _as_list(config["input_layers"]), _as_list(config["output_layers"])
    if len(input_refs) != len(inputs) or len(output_refs) != 1:
        raise ConversionError(f"{model.name}: only single-input, single-output models are supported")
    tensors = {(name, node, index): x for (name, node, index), x in zip(map(tuple, input_refs), inputs)}
    pending = list(config["layers"])
    while pending:  # the config lists layers in a topological order; loop covers any order
        waiting = []
        for layer_config in pending:
            calls = [_history(node["args"]) if isinstance(node, dict) else [tuple(t[:3]) for t in node]
                     for node in layer_config["inbound_nodes"]]
            if not all(tuple(s) in tensors for sources in calls for s in sources):
                waiting.append(layer_config)
                continue
            layer = model.get_layer(layer_config["name"])
            inputs_per_call = [[tensors[tuple(s)] for s in sources] for sources in calls]
            if _stackable(layer, calls):
                outputs = _stacked_calls(g, layer, [call[0] for call in inputs_per_call])
            else:
                outputs = [_call_layer(g, layer, call) for call in inputs_per_call]
            for n, out in enumerate(outputs):
                tensors[(layer_config["name"], n, 0)] = out
        if len(waiting) == len(pending):
            raise ConversionError(f"{model.name}: cannot order the layers {[c['name'] for c in waiting]}")
        pending = waiting
    name, node, index = output_refs[0]
    if isinstance(model.get_layer(name), Functional):
        # Keras numbers a nested Functional model's calls from 1 in input/output_layers (its
        # node 0 links its own inputs to outputs) but from 0 in the layers' inbound nodes.
        node -= 1
    return tensors[(name, node, index)]


def _stackable(layer, calls) -> bool:
    """A nested model called more than once, on one tensor each time (as flip TTA does)."""
    return (type(layer).__name__ in ("Functional", "Model", "Sequential") and len(calls) > 1
            and all(len(sources) == 1 for sources in calls))


def _stacked_calls(g: _Graph, model, inputs: list[str]) -> list[str]:
    """k calls of a nested model as one pass over the k batches stacked (fewer, larger ops:
    the same arithmetic, less per-operator overhead), then split back into k outputs."""
    k = len(inputs)
    inputs = [g.as_layout(t, "keras") for t in inputs]
    stacked = g.op("Concat", inputs, f"{model.name}_stack", g.rank[inputs[0]], axis=0)
    out = g.as_layout(_inline(g, model, [stacked]), "keras")
    rest = [int(d) for d in model.output_shape[1:]]
    shape = g.const("split_shape", np.array([k, -1, *rest], np.int64))
    split = g.op("Reshape", [out, shape], f"{model.name}_split", len(rest) + 2)
    return [g.op("Gather", [split, g.const("call", np.array(i, np.int64))], f"{model.name}_call{i}", len(rest) + 1,
                 axis=0) for i in range(k)]


def keras_to_onnx(model):
    """An onnx.ModelProto computing the same function as the Keras ``model``.

    Input "input": float32 (N, *model.input_shape[1:]); output "probabilities".
    """
    import onnx
    from onnx import TensorProto, helper

    shape = ["N", *[int(d) for d in model.input_shape[1:]]]
    g = _Graph()
    g.rank["input"], g.layout["input"] = len(shape), "keras"
    out = g.as_layout(_inline(g, model, ["input"]), "keras")
    g.nodes.append(helper.make_node("Identity", [out], ["probabilities"], name="probabilities"))
    graph = helper.make_graph(
        g.nodes, model.name or "model",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", None])],
        initializer=g.weights)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="emotionlib")
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto


def load_keras(path, labels) -> tuple[dict, object]:
    """Load a Keras model file and run one forward pass: its input spec (input_size, channels,
    parameters) and the model, or ConversionError saying what is wrong. ``labels``: the
    model's outputs, in order."""
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise ConversionError(f"cannot load {path} as a Keras model: {exc}") from exc
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if shape is None or len(shape) != 4 or shape[1] != shape[2] or shape[3] not in (1, 3) or not shape[1]:
        raise ConversionError("the model's input must be (batch, size, size, 1 or 3) images; "
                              f"it is {model.input_shape}")
    size, channels = int(shape[1]), int(shape[3])
    probs = np.asarray(model(np.full((2, size, size, channels), 0.5, np.float32), training=False))
    if probs.ndim != 2 or probs.shape[1] != len(labels):
        raise ConversionError(
            f"the model outputs {probs.shape[1:] if probs.ndim > 1 else probs.shape} values per face but "
            f"{len(labels)} labels were given ({','.join(labels)}); pass the labels in the model's output order "
            "(import_model.py --labels)")
    if not (np.all(probs >= -1e-4) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)):
        raise ConversionError("the model's outputs are not probabilities (they must be a softmax over the labels)")
    return {"input_size": size, "channels": channels, "parameters": int(model.count_params())}, model


def checked_onnx(model, size: int, channels: int) -> bytes:
    """The model as a serialized ONNX graph, checked against Keras on random faces (every
    probability within ONNX_TOLERANCE), or ConversionError."""
    import onnxruntime as ort

    data = keras_to_onnx(model).SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    faces = np.random.default_rng(0).random((8, size, size, channels), dtype=np.float32)
    faces[0] = 0.0
    expected = np.asarray(model(faces, training=False))
    got = session.run(None, {session.get_inputs()[0].name: faces})[0]
    difference = float(np.abs(expected - got).max())
    if not difference <= ONNX_TOLERANCE:
        raise ConversionError(f"the converted model differs from the Keras model by {difference:.2g} "
                              f"(allowed {ONNX_TOLERANCE:g})")
    return data
