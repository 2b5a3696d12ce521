"""Device choice: each job claims a GPU no other job holds, and waits while all are held.

The jobs are real processes (a lock is per process, as in a workflow); the GPUs are faked by
replacing `devices.visible_gpus`, so the tests run without CUDA.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch

from jstyleid.engines import devices
# A job: claims a GPU among `gpus`, prints the device and how long it waited, holds it for `hold_s`.
JOB = """
import sys, time
from jstyleid.engines import devices
devices.visible_gpus = lambda: sys.argv[1].split(",")
start = time.monotonic()
device = devices.claim_cuda_device(poll_s=0.05)
print(device, time.monotonic() - start, flush=True)
assert devices.claim_cuda_device() == device  # a process keeps the GPU it claimed
time.sleep(float(sys.argv[2]))
"""


def start_job(gpus: str, hold_s: float, lock_dir):
    return subprocess.Popen([sys.executable, "-c", JOB, gpus, str(hold_s)], stdout=subprocess.PIPE, text=True,
                            env={"JSTYLEID_LOCK_DIR": str(lock_dir), "PATH": "/usr/bin:/bin"})


def claimed(job):
    device, waited = job.stdout.readline().split()
    return device, float(waited)


def test_jobs_claim_distinct_gpus(tmp_path):
    first = start_job("GPU-aa,GPU-bb", 5, tmp_path)
    assert claimed(first) == ("cuda:0", pytest.approx(0, abs=0.5))
    second = start_job("GPU-aa,GPU-bb", 0, tmp_path)
    assert claimed(second)[0] == "cuda:1"
    second.wait()
    first.kill()
    first.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jstyleid-gpu-GPU-aa.lock", "jstyleid-gpu-GPU-bb.lock"]


def test_a_job_waits_for_a_busy_gpu(tmp_path):
    first = start_job("GPU-aa", 1.5, tmp_path)
    claimed(first)
    started = time.monotonic()
    second = start_job("GPU-aa", 0, tmp_path)  # starts up while the first holds the GPU
    device, waited = claimed(second)
    first.wait()
    second.wait()
    assert device == "cuda:0"
    assert waited >= 1.0  # it got the GPU only once the first job had exited
    assert time.monotonic() - started >= 1.4


def test_gpus_are_named_by_uuid(monkeypatch):
    # CUDA_VISIBLE_DEVICES=1 in one job and a scheduler's cgroup in another can both show one physical GPU
    # as cuda:0; its UUID names the lock file, so the two jobs do not both take it.
    uuids = {0: "GPU-5f0e", 1: "GPU-77aa"}
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid=uuids[i]))
    assert devices.visible_gpus() == ["GPU-5f0e", "GPU-77aa"]


def test_defaults():
    assert devices.resolve_dtype("auto", "cpu") == "float32"
    assert devices.resolve_dtype("auto", "cuda:0") == "float16"
    assert devices.resolve_dtype("bfloat16", "cuda:0") == "bfloat16"
    assert devices.resolve_device("cpu") == "cpu"
    assert devices.device_kind("cuda:3") == "cuda"


def test_the_engine_reads_its_weights_before_claiming_the_gpu(monkeypatch, tiny_model):
    from jstyleid.engines import load_engine
    from jstyleid.engines import torch as torch_engine

    state_at_claim = []

    def claim(device):
        engine = inspect.currentframe().f_back.f_locals["self"]
        state_at_claim.append((device, engine.unet_model.dtype, len(engine.unet_model.attn_processors)))
        return "cpu"

    monkeypatch.setattr(torch_engine, "resolve_device", claim)
    engine = load_engine("torch", str(tiny_model), "auto", "float16")
    assert state_at_claim == [("auto", torch.float16, len(engine.unet_model.attn_processors))]
    assert engine.device == torch.device("cpu")
