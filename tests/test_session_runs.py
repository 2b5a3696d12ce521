"""conftest.run_once: a session run is made once for all xdist workers, and a failed one is not made again."""

from __future__ import annotations

import types

import pytest
from conftest import run_once


def _factory(base):
    """What run_once reads of pytest's tmp_path_factory: a worker's base temporary folder."""
    return types.SimpleNamespace(getbasetemp=lambda: base)


def test_the_second_worker_reuses_the_first_workers_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    made = []

    def make(workdir):
        workdir.mkdir(parents=True)
        made.append(workdir)

    first = run_once(_factory(tmp_path / "popen-gw0"), "demo", make)
    second = run_once(_factory(tmp_path / "popen-gw1"), "demo", make)
    assert first == second == tmp_path / "demo" / "wf" and made == [first] and first.is_dir()


def test_a_failed_run_fails_the_other_worker_without_making_it_again(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    attempts = []

    def make(workdir):
        attempts.append(workdir)
        pytest.fail("snakemake failed: no space left")

    with pytest.raises(pytest.fail.Exception, match="no space left"):
        run_once(_factory(tmp_path / "popen-gw0"), "demo", make)
    with pytest.raises(pytest.fail.Exception, match="'demo' failed in another worker:\nsnakemake failed: no space"):
        run_once(_factory(tmp_path / "popen-gw1"), "demo", make)
    assert len(attempts) == 1
