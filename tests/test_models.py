"""Finding models: folders, builtin presets, and hub ids from the local cache only (never a download)."""

from __future__ import annotations

import shutil

import pytest

from jstyleid.errors import InputError
from jstyleid.engines.models import resolve_model


def test_hub_id_resolves_from_local_cache_only(tiny_model, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--someone--sd-tiny"
    shutil.copytree(tiny_model, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    assert resolve_model("someone/sd-tiny") == repo / "snapshots" / commit
    with pytest.raises(InputError, match="not in the local Hugging Face cache and jstyleid never downloads"):
        resolve_model("someone/not-cached")


def test_folder_checks(tiny_model, tmp_path):
    assert resolve_model(str(tiny_model)) == tiny_model
    with pytest.raises(InputError, match="no model_index.json"):
        resolve_model(str(tmp_path))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(InputError, match="lacks vae/"):
        resolve_model(str(broken))
    with pytest.raises(InputError, match="unknown builtin model"):
        resolve_model("builtin:huge")
    with pytest.raises(InputError, match="model not found"):
        resolve_model("./no/such/folder")
