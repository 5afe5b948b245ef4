"""Model builders: ``build_model(name, ...)`` returns an uncompiled Keras 3 model.

All builders take float inputs already scaled by ``emotionlib.preprocess`` and end in a
softmax over ``num_classes``. Only ``keras.*`` APIs are used, so they run under the
TensorFlow, torch and JAX backends alike.
"""
from __future__ import annotations

import os

import keras
from keras import layers

MODEL_NAMES = ("vggnet", "vgg19")

IMAGENET_HINT = (
    "ImageNet weights cannot be downloaded here (no internet). Download "
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 on a connected machine and pass "
    "--weights /path/to/that.h5 (or place it in ~/.keras/models/), or use --weights none."
)


def _conv_block(x, filters: int, convs: int, dropout: float, name: str):
    for i in range(convs):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i + 1}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i + 1}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i + 1}")(x)
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return x


def build_vggnet(input_shape=(48, 48, 1), num_classes: int = 7, width: int = 32,
                 convs=(2, 2, 2, 2), dropout: float = 0.25, head_units: int = 256,
                 head_dropout: float = 0.5, output_activation: str | None = "softmax") -> keras.Model:
    """The CPU-trainable default: a VGG-style stack with batch norm and dropout.

    Four blocks of ``convs[i]`` 3x3 convolutions at width ``width * 2**i``, each ending in
    2x2 max pooling; a dense head. VGG19's topology at reduced width and depth, sized so
    that an epoch of FER2013 takes minutes on a 2-core CPU. ``output_activation=None``
    gives logits (distillation); the same weights load into the softmax version.
    """
    inputs = keras.Input(shape=input_shape, name="face")
    x = inputs
    for i, n in enumerate(convs):
        x = _conv_block(x, width * 2 ** i, n, dropout, name=f"block{i + 1}")
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(head_units, use_bias=False, name="fc1")(x)
    x = layers.BatchNormalization(name="fc1_bn")(x)
    x = layers.Activation("relu", name="fc1_relu")(x)
    x = layers.Dropout(head_dropout, name="fc1_drop")(x)
    outputs = layers.Dense(num_classes, activation=output_activation, name="emotion")(x)
    return keras.Model(inputs, outputs, name="vggnet")


def build_vgg19(input_shape=(48, 48, 3), num_classes: int = 7, weights: str | None = None,
                head_units: int = 512, head_dropout: float = 0.5) -> keras.Model:
    """The original recipe: keras.applications.VGG19 base + a new fully connected head.

    ``weights``: None (random init), "imagenet" (fails fast offline unless the file is
    cached), or a path to VGG19 no-top weights. ImageNet weights need 3-channel input.
    """
    if weights not in (None, "none") and input_shape[-1] != 3:
        raise ValueError("ImageNet VGG19 weights need 3-channel input (--channels 3)")
    if weights == "imagenet":
        cached = os.path.join(os.path.expanduser("~"), ".keras", "models",
                              "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
        if not os.path.exists(cached):
            raise RuntimeError(IMAGENET_HINT)
    base_weights = None if weights in (None, "none") else weights
    base = keras.applications.VGG19(include_top=False, weights=base_weights,
                                    input_shape=input_shape)
    inputs = keras.Input(shape=input_shape, name="face")
    x = base(inputs)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(head_units, activation="relu", name="fc1")(x)
    x = layers.Dropout(head_dropout, name="fc1_drop")(x)
    x = layers.Dense(head_units // 2, activation="relu", name="fc2")(x)
    x = layers.Dropout(head_dropout, name="fc2_drop")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name="vgg19_fer")


def build_model(name: str, input_shape=(48, 48, 1), num_classes: int = 7, **kwargs) -> keras.Model:
    """Build one of MODEL_NAMES."""
    if name == "vggnet":
        return build_vggnet(input_shape, num_classes, **kwargs)
    if name == "vgg19":
        return build_vgg19(input_shape, num_classes, **kwargs)
    raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")
