"""The per-image store (jstyleid/storage/store.py): killed jobs resume, stale entries are refused, gc bounds it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jstyleid.cli import main
from jstyleid.pipelines.generate import generate_images
from jstyleid.pipelines.invert import invert_images
from jstyleid.storage.store import Store, collect_garbage
from conftest import write_image
from test_generate import lora_file  # noqa: F401 (a fixture)

RES, STEPS, N = 64, 3, 4
PROMPTS = ["a cat", "a red house", "a bird", "a ship"]
COUNT = re.compile(r"(\d+) of (\d+) image\(s\) from the store, (\d+) to compute")


def entries(store: Path) -> list[Path]:
    """The finished entries of a store (not sidecars, not temporaries of a killed job)."""
    return sorted(p for p in store.glob("*/*/*") if p.suffix != ".json" and not p.name.startswith("."))


def computed(log: str) -> int:
    return sum(int(todo) for _, _, todo in COUNT.findall(log))


def cli(stage, model, *args):
    return [sys.executable, "-m", "jstyleid.cli", stage, "--model", str(model), "--device", "cpu", *map(str, args)]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, torch_engine):
    """Four content images, their caches and a style cache, made without a store."""
    root = tmp_path_factory.mktemp("inputs")
    images = [write_image(root / f"img{i}.png", seed=10 + i) for i in range(N)]
    contents = [root / f"content{i}.h5" for i in range(N)]
    invert_images(torch_engine, images, contents, role="content", steps=STEPS, resolution=RES)
    style = root / "style.h5"
    invert_images(torch_engine, [write_image(root / "style.png", seed=99)], [style], role="style", steps=STEPS,
                  resolution=RES)
    return dict(images=images, contents=contents, style=style)


def stage_job(stage, model, inputs, out: Path, store=None):
    """(command, outputs) of a 4-image job of `stage` in batches of 2."""
    if stage == "generate":
        outs = [out / f"{i}.png" for i in range(N)]
        args = ["--prompt", *PROMPTS, "--out", *outs, "--ddim-steps", STEPS, "--resolution", RES]
    elif stage == "invert":
        outs = [out / f"{i}.h5" for i in range(N)]
        args = ["--role", "content", "--images", *inputs["images"], "--out", *outs, "--ddim-steps", STEPS,
                "--resolution", RES]
    else:
        outs = [out / f"{i}.png" for i in range(N)]
        args = ["--content-caches", *inputs["contents"], "--style-caches", inputs["style"], "--out", *outs]
    return cli(stage, model, *args, "--batch-size", 2, *(["--store", store] if store else [])), outs


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["generate", "invert", "inject"])
def test_a_killed_job_resumes_with_only_the_unfinished_images(stage, tiny_model, inputs, tmp_path):
    """SIGKILL after the first batch (2 of 4 images in the store): the rerun computes the other 2, and the
    outputs equal, byte for byte, those of an uninterrupted run without a store."""
    baseline_cmd, baseline = stage_job(stage, tiny_model, inputs, tmp_path / "baseline")
    subprocess.run(baseline_cmd, check=True, capture_output=True)

    store = tmp_path / "store"
    cmd, outs = stage_job(stage, tiny_model, inputs, tmp_path / "out", store)
    with open(tmp_path / "killed.log", "w") as log:
        job = subprocess.Popen(cmd, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 300
        while len(entries(store)) < 2 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    finished = len(entries(store))
    assert job.returncode == -signal.SIGKILL and 0 < finished < N, (finished, (tmp_path / "killed.log").read_text())
    assert all(out.read_bytes() == base.read_bytes() for out, base in zip(outs, baseline) if out.exists())

    rerun = subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert computed(rerun.stderr) == N - finished
    assert [out.read_bytes() for out in outs] == [base.read_bytes() for base in baseline]
    assert all(out.stat().st_nlink == 2 for out in outs)  # hard links into the store, no copies


def test_outputs_are_copies_where_links_fail(torch_engine, tmp_path, monkeypatch):
    def no_links(*_):
        raise OSError(18, "Invalid cross-device link")

    store, outs = tmp_path / "store", [tmp_path / "a.png", tmp_path / "b.png"]
    generate_images(torch_engine, PROMPTS[:2], outs, steps=2, resolution=RES, store=store)
    monkeypatch.setattr(os, "link", no_links)
    copies = [tmp_path / "copy" / "a.png", tmp_path / "copy" / "b.png"]
    generate_images(torch_engine, PROMPTS[:2], copies, steps=2, resolution=RES, store=store)
    assert [c.read_bytes() for c in copies] == [o.read_bytes() for o in outs]
    assert [c.stat().st_nlink for c in copies] == [1, 1] and len(entries(store)) == 2


# Stale entries: an entry that is not what its key says (another model, LoRA, resolution, step count
# or source image) is refused in one line, exit 2. Each case puts the entry a job with other settings
# made at the place of the entry the job asks for.

STALE = {  # case: (stage, what the stale entry was made with, what the refusal names)
    "model": ("generate", dict(engine="other model"), "model="),
    "lora": ("generate", dict(engine="no lora"), "loras=[]"),
    "resolution": ("generate", dict(resolution=128), "resolution=128"),
    "steps": ("invert", dict(steps=4), "timesteps=[1, 251, 501, 751]"),
    "source image": ("invert", dict(image=1), "source_sha256="),
}


@pytest.fixture(scope="module")
def engines(tiny_model, tiny_model_epsilon, torch_engine, lora_file):  # noqa: F811
    from jstyleid.engines import load_engine

    return {"lora": load_engine("torch", str(tiny_model), device="cpu", dtype="float32", lora=str(lora_file)),
            "no lora": torch_engine,
            "other model": load_engine("torch", str(tiny_model_epsilon), device="cpu", dtype="float32")}


@pytest.mark.parametrize("case", STALE)
def test_a_stale_entry_is_refused(case, tiny_model, inputs, lora_file, engines, tmp_path, capsys):  # noqa: F811
    stage, change, problem = STALE[case]
    asked = dict(engine="lora" if stage == "generate" else "no lora", resolution=RES, steps=STEPS, image=0)

    def make(store, engine, resolution, steps, image):
        if stage == "generate":
            generate_images(engines[engine], ["a cat"], [tmp_path / "made.png"], steps=2, resolution=resolution,
                            store=store)
        else:
            invert_images(engines[engine], [inputs["images"][image]], [tmp_path / "made.h5"], role="content",
                          steps=steps, resolution=RES, store=store)

    wanted_store, stale_store = tmp_path / "asked", tmp_path / "stale"
    make(wanted_store, **asked)
    make(stale_store, **dict(asked, **change))
    [wanted], [other] = entries(wanted_store), entries(stale_store)
    for suffix in (wanted.suffix, ".json"):  # the stale entry, sidecar and all, at the place of the asked one
        wanted.with_suffix(suffix).unlink()
        shutil.copyfile(other.with_suffix(suffix), wanted.with_suffix(suffix))
    job = (["generate", "--prompt", "a cat", "--out", tmp_path / "out.png", "--ddim-steps", 2, "--lora", lora_file]
           if stage == "generate" else
           ["invert", "--role", "content", "--images", inputs["images"][0], "--out", tmp_path / "out.h5",
            "--ddim-steps", STEPS])
    capsys.readouterr()
    assert main([*map(str, job), "--model", str(tiny_model), "--device", "cpu", "--resolution", str(RES),
                 "--store", str(wanted_store)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(f"jstyleid {stage}: error: {wanted}: store entry was made with ")
    assert problem in lines[-1] and "Traceback" not in "\n".join(lines)
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.h5").exists()


def test_a_stored_cache_whose_file_is_not_its_sidecars_is_refused(tiny_model, inputs, tmp_path, capsys):
    """The sidecar says image 0, the file is image 1's cache: the cache's own attributes give it away."""
    store = tmp_path / "store"
    args = lambda i: ["invert", "--model", str(tiny_model), "--device", "cpu", "--role", "content", "--images",  # noqa: E731
                      str(inputs["images"][i]), "--out", str(tmp_path / f"{i}.h5"), "--ddim-steps", str(STEPS),
                      "--resolution", str(RES), "--store", str(store)]
    assert main(args(0)) == 0
    [entry] = entries(store)
    assert main(args(1)) == 0
    other = next(p for p in entries(store) if p != entry)
    entry.unlink()
    shutil.copyfile(other, entry)
    capsys.readouterr()
    assert main(args(0)) == 2
    assert "stored cache has source_sha256=" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("option, value, problem", [
    ("--expect-ddim-steps", STEPS + 1, f"cache has {STEPS} inversion steps, --expect-ddim-steps is {STEPS + 1}"),
    ("--expect-resolution", 2 * RES, f"cache resolution is {RES}, --expect-resolution is {2 * RES}"),
])
def test_inject_refuses_caches_of_other_settings(tiny_model, inputs, tmp_path, capsys, option, value, problem):
    code = main(["inject", "--model", str(tiny_model), "--device", "cpu", "--content-caches", str(inputs["contents"][0]),
                 "--style-caches", str(inputs["style"]), "--out", str(tmp_path / "out.png"), option, str(value)])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and str(inputs["contents"][0]) in line and problem in line
    assert not (tmp_path / "out.png").exists()


# gc: only entries no output links to are deleted; by age, or least recently used first down to a budget.

def test_gc_deletes_only_unreferenced_entries(tmp_path, capsys):
    store = Store(tmp_path / "store")
    made = []
    for i, size in enumerate([100, 200, 300, 400]):
        entry = store.entry("test", dict(i=i), ".bin")
        with entry.writing() as tmp:
            tmp.write_bytes(b"x" * size)
        entry.link(tmp_path / "out" / f"{i}.bin")
        os.utime(entry.path, (time.time() - 86400 * (10 - i),) * 2)  # entry 0 is the least recently used
        made.append(entry)
    (tmp_path / "out" / "3.bin").unlink()  # entries 0..2 stay referenced, 3 is not
    orphan = made[0].path.with_name(f"{'0' * 64}.json")
    orphan.write_text("{}")
    assert [e.path for e in collect_garbage(store.root, unreferenced=True, dry_run=True)] == [made[3].path]
    assert made[3].path.exists() and orphan.exists()

    for i in (0, 1):
        (tmp_path / "out" / f"{i}.bin").unlink()
    assert main(["gc", "--store", str(store.root), "--max-size", "650"]) == 0  # 100+200+400 held: drop 0
    assert capsys.readouterr().out.split() == [str(made[0].path)]
    assert main(["gc", "--store", str(store.root), "--older-than", "7.5"]) == 0  # entry 1 unused 9 days
    assert capsys.readouterr().out.split() == [str(made[1].path)]
    assert [e.path.exists() for e in made] == [False, False, True, True] and not orphan.exists()
    assert main(["gc", "--store", str(store.root), "--unreferenced"]) == 0
    assert [e.path.exists() for e in made] == [False, False, True, False]
    assert (tmp_path / "out" / "2.bin").read_bytes() == b"x" * 300
    assert main(["gc", "--store", str(store.root), "--max-size", "lots"]) == 2


def test_report_counts_what_each_job_took_from_the_store(tmp_path):
    import json

    log = tmp_path / "generate.log"
    log.write_text("2026-12-02 06:58:15,129 jstyleid.storage.store: generate: 2 of 3 image(s) from the store, 1 to compute\n")
    jobs = [dict(style="01", stage="generate", log=str(log)), dict(style="01", stage="inject", log="missing.log")]
    out = tmp_path / "report/index.html"
    manifest = dict(styles=[], benchmarks=[], config={}, store_logs=jobs)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert main(["report", "--manifest", str(tmp_path / "manifest.json"), "--out", str(out)]) == 0
    page = out.read_text()
    assert "<tr><td>01</td><td>generate</td><td class=num>2</td><td class=num>1</td></tr>" in page
    assert "<td>inject</td>" not in page  # no log, no row
