"""Device choice: each job claims a GPU nobody else holds (Snakemake does not assign devices)."""

from __future__ import annotations

import torch

from jstyleid import devices


def test_jobs_claim_distinct_gpus(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("JSTYLEID_LOCK_DIR", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(devices, "_held_locks", [])
    # Each claim opens its own lock file description, as a separate job would.
    assert devices.claim_cuda_device() == "cuda:0"
    assert devices.claim_cuda_device() == "cuda:1"
    assert devices.claim_cuda_device() == "cuda:0"  # all taken: share the first, with a warning
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jstyleid-gpu-0.lock", "jstyleid-gpu-1.lock"]
    for handle in devices._held_locks:
        handle.close()


def test_scheduler_assigned_devices_are_honoured(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("JSTYLEID_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    monkeypatch.setattr(devices, "_held_locks", [])
    assert devices.claim_cuda_device() == "cuda:0"
    assert devices.claim_cuda_device() == "cuda:1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jstyleid-gpu-5.lock", "jstyleid-gpu-7.lock"]
    for handle in devices._held_locks:
        handle.close()


def test_defaults():
    assert devices.resolve_dtype("auto", "cpu") == "float32"
    assert devices.resolve_dtype("auto", "cuda:0") == "float16"
    assert devices.resolve_dtype("bfloat16", "cuda:0") == "bfloat16"
    assert devices.resolve_device("cpu") == "cpu"
