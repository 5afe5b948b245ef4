"""The classifier network: ``build_vggnet`` returns an uncompiled Keras 3 model.

Inputs are float faces already scaled by ``emotionlib.preprocess``; the output is a softmax
over ``num_classes`` (or logits, for training with soft targets). Only ``keras.*`` APIs are
used, so it runs under the TensorFlow, torch and JAX backends alike.
"""
from __future__ import annotations

import keras
from keras import layers


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
    """A VGG-style stack with batch norm and dropout (the published FER2013 VGG nets' shape).

    Four blocks of ``convs[i]`` 3x3 convolutions at width ``width * 2**i``, each ending in
    2x2 max pooling; a dense head. Width 64 on 40 px faces costs 0.65 GFLOP per face, width
    32 0.16. ``output_activation=None`` gives logits; the same weights load into the softmax
    version.
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
