"""Config and safetensors loading for the Jittor networks."""

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from . import import_jittor

jt = import_jittor()


def read_config(folder):
    """The ``config.json`` of a diffusers/transformers model folder, as a dict."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no config.json in {folder}")
    return json.loads(path.read_text())


def load_weights(model, path, rename=None, ignore=()):
    """Load a safetensors file into ``model``, whose parameter names equal the file's keys.

    ``rename`` maps file keys to parameter names (old checkpoint layouts); keys in
    ``ignore`` are non-weight buffers some files carry. Missing or unexpected keys and
    shape mismatches raise ``ValueError``. Weights are converted to float32.
    """
    state = load_file(str(path))
    if rename is not None:
        state = {rename(key): value for key, value in state.items()}
    for key in ignore:
        state.pop(key, None)
    params = model.state_dict()
    missing = sorted(set(params) - set(state))
    unexpected = sorted(set(state) - set(params))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match {type(model).__name__}: "
            f"{len(missing)} missing keys {missing[:10]}, {len(unexpected)} unexpected keys {unexpected[:10]}"
        )
    wrong_shape = [
        f"{key}: file {tuple(state[key].shape)} vs model {tuple(param.shape)}"
        for key, param in params.items()
        if tuple(state[key].shape) != tuple(param.shape)
    ]
    if wrong_shape:
        raise ValueError(f"{path} does not match {type(model).__name__}: shape mismatch {wrong_shape[:10]}")
    for key, param in params.items():
        param.assign(jt.array(np.ascontiguousarray(state[key], dtype=np.float32)))
    return model
