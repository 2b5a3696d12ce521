"""A run over many styles on the tiny model: hostile inputs, a killed driver, a full disk.

Workflow tests reuse tests/test_workflow.py's copy of the workflow and its FAST settings.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_workflow import ROOT, copy_workflow, edit_config, pending, snakemake

LONG = "A lighthouse on a cliff above a stormy sea at dusk, " * 5  # 255 characters, ASCII
NEAR_LIMIT = LONG[:239] + "!"  # 240 characters: 244 bytes as a .png, 260 as its temporary name before
UNICODE = "猫がピアノを弾いている絵、" * 9  # 117 characters, 351 bytes of UTF-8


def hostile_set(workdir: Path, marker: Path) -> dict:
    """Styles beside the two demo styles: one with hostile prompt names and shell metacharacters,
    and one of each kind of bad style. Returns {(style, stage): the words its failure's line must hold}."""
    data = workdir / "data"
    prompts = {"0": "Bird", "1": NEAR_LIMIT, "2": UNICODE, "3": "half/half\\back", "4": ".hidden",
               "5": f"$(touch {marker})", "6": f"`touch {marker}`; touch {marker} #", "7": "it's \"quoted\" & <b> | {x}"}
    (data / "01/prompt.json").write_text(json.dumps(prompts, ensure_ascii=False), encoding="utf-8")

    def style(name, prompt_json='{"0": "Ring"}', images=("ok.png",)):
        (data / name / "images").mkdir(parents=True)
        (data / name / "prompt.json").write_text(prompt_json, encoding="utf-8")
        for image in images:
            shutil.copy(data / "02/images/dots_0.png", data / name / "images" / image)
        return data / name

    style("03", '{"0": "Cat", "1": "cat"}')
    broken = style("04", images=("ok.png", "corrupt.png"))
    (broken / "images/corrupt.png").write_bytes((data / "02/images/dots_1.png").read_bytes()[:60])
    empty_image = style("05", images=("ok.png", "empty.png"))
    (empty_image / "images/empty.png").write_bytes(b"")
    style("06", images=())
    style("07", '{"0": "Ring",')
    return {("03", "check_inputs"): "data/03/prompt.json: prompts '0' ('Cat') and '1' ('cat')",
            ("04", "train_lora"): "data/04/images/corrupt.png: cannot decode image",
            ("04", "invert_style"): "data/04/images/corrupt.png: cannot decode image",
            ("05", "check_inputs"): "data/05/images/empty.png: image file is empty (0 bytes)",
            ("06", "check_inputs"): "data/06/images: style folder contains no images",
            ("07", "check_inputs"): "data/07/prompt.json: not valid JSON"}


@pytest.mark.slow
@pytest.mark.timeout(3900)  # its snakemake runs may take 1800 s each
def test_hostile_set_finishes_the_good_styles_and_names_the_bad(tmp_path):
    from jstyleid.storage.inputs import safe_filename

    workdir = copy_workflow(tmp_path / "wf")
    marker = tmp_path / "executed"
    bad = hostile_set(workdir, marker)
    edit_config(workdir, batch_size=8)

    run = snakemake(workdir, "--cores", "2", check=False, timeout=1800)
    log = run.stdout + run.stderr
    assert run.returncode != 0
    assert not marker.exists()  # no prompt reached a shell unquoted
    prompts = json.loads((workdir / "data/01/prompt.json").read_text(encoding="utf-8"))
    names = [safe_filename(p) for p in prompts.values()]
    assert names[1] == prompts["1"] and names[3] == "half_half_back" and names[4] == "_hidden"
    assert len(names[2].encode()) <= 247 and names[2].startswith(UNICODE[:70]) and "~" in names[2]
    for style, wanted in (("01", names), ("02", ["Cat", "Lighthouse", "Tree"])):
        outputs = (workdir / f"results/{style}/styleid").glob("*.png")
        assert sorted(p.stem for p in outputs) == sorted(wanted)
    assert not list((workdir / "results").rglob(".*.tmp*"))  # no temporary file left behind

    with open(workdir / "results/failures.tsv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert {(row["style"], row["stage"]) for row in rows} == set(bad)
    for row in rows:
        assert bad[row["style"], row["stage"]] in row["error"], row
        assert row["error"] in log  # the summary table in the run's log
    page = (workdir / "results/failures.html").read_text(encoding="utf-8")
    assert "<td>04</td><td>train_lora</td>" in page and "corrupt.png: cannot decode image" in page

    # The broken style fixed (left out): only what it blocked runs; the report lists the refused styles.
    shutil.rmtree(workdir / "data/04")
    assert {rule for rule, _ in pending(workdir)} == {"check_inputs", "submission", "report"}
    run = snakemake(workdir, "--cores", "2", check=False, timeout=1800)
    assert run.returncode != 0 and not (workdir / "results/checks").exists()
    mapping = json.loads((workdir / "results/submission/mapping.json").read_text(encoding="utf-8"))
    assert [entry["file"] for entry in mapping["01"]] == [f"01/{name}.png" for name in names]
    report = (workdir / "results/report/index.html").read_text(encoding="utf-8")
    assert "<h2>Failed</h2>" in report and "<td>07</td><td>check_inputs</td>" in report
    assert "04" not in {row["style"] for row in csv.DictReader(
        open(workdir / "results/failures.tsv", encoding="utf-8"), delimiter="\t")}


@pytest.mark.slow
@pytest.mark.timeout(3600)  # its snakemake runs may take 900 + 1800 s
def test_killed_driver_recovers_with_unlock_and_the_same_command(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    shutil.rmtree(workdir / "data/02")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    driver = subprocess.Popen([sys.executable, "-m", "snakemake", "--directory", str(workdir), "--cores", "2"],
                              cwd=workdir, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    job_log = workdir / "results/logs/train_lora/01.log"
    deadline = time.monotonic() + 600
    while not job_log.exists() and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job_log.exists() and driver.poll() is None, "the train_lora job never started"
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and its jobs, as a power loss would
    driver.wait()

    locked = snakemake(workdir, "--cores", "2", check=False)
    assert locked.returncode != 0 and "LockException" in locked.stdout + locked.stderr
    snakemake(workdir, "--unlock")
    snakemake(workdir, "--cores", "2", timeout=1800)
    assert (workdir / "results/submission/01/Bird.png").is_file()
    assert (workdir / "results/01/lora/pytorch_lora_weights.safetensors").is_file()
    assert pending(workdir) == set()


def test_disk_check_stops_a_run_that_cannot_fit_before_any_job(tmp_path):
    from jstyleid.engines.base import INJECTED_LAYERS
    from jstyleid.storage.diskspace import planned_cache_bytes

    workdir = copy_workflow(tmp_path / "wf")
    free = shutil.disk_usage(tmp_path).free

    def need(resolution, features):  # the demo's 5 contents and 6 style references, 999 steps
        plans = [("content", 999, resolution, INJECTED_LAYERS, [""] * 5),
                 ("style", 999, resolution, INJECTED_LAYERS, [""] * 6)]
        return planned_cache_bytes("builtin:tiny", plans, features=features)

    resolution = next(r for r in range(64, 1 << 20, 64) if need(r, "stored") > 3 * free)
    assert need(resolution, "recompute") < free / 2  # latents alone are about 20 times smaller
    edit_config(workdir, resolution=resolution, inversion_steps=999)
    result = snakemake(workdir, "-n", check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "the planned inversion caches need" in out and "features: recompute" in out
    assert "Job stats" not in out  # stopped before planning any job
    assert snakemake(workdir, "--unlock").returncode == 0  # the recovery step works on a full disk
    edit_config(workdir, features="recompute")
    assert snakemake(workdir, "-n").returncode == 0


def test_cache_size_estimate_matches_real_caches(tiny_model, torch_engine, images, tmp_path):
    from jstyleid.storage.diskspace import cache_bytes, planned_cache_bytes
    from jstyleid.pipelines.invert import invert_images

    for role, steps, features in (("content", 3, True), ("style", 2, True), ("content", 3, False)):
        out = tmp_path / f"{role}{steps}{features}.h5"
        invert_images(torch_engine, [images["c0"]], [out], role=role, steps=steps, resolution=64, features=features)
        estimate = cache_bytes(role=role, steps=steps, resolution=64, unet_config=torch_engine.unet_config,
                               vae_scale_factor=torch_engine.vae_scale_factor,
                               layers=torch_engine.injected_layers, features=features)
        assert abs(estimate - out.stat().st_size) <= 0.03 * out.stat().st_size, (role, steps, features)
    layers = torch_engine.injected_layers
    plans = [("content", 3, 64, layers, ["a.h5", "b.h5"]), ("style", 2, 64, layers, ["s.h5"])]
    assert planned_cache_bytes(str(tiny_model), plans) == planned_cache_bytes("builtin:tiny", plans) == (
        2 * cache_bytes(role="content", steps=3, resolution=64, unet_config=torch_engine.unet_config,
                        vae_scale_factor=8, layers=torch_engine.injected_layers)
        + cache_bytes(role="style", steps=2, resolution=64, unet_config=torch_engine.unet_config,
                      vae_scale_factor=8, layers=torch_engine.injected_layers))


def test_challenge_cache_size_is_562_mib_per_content_image():
    from jstyleid.storage.diskspace import cache_bytes
    from jstyleid.engines.base import INJECTED_LAYERS
    from jstyleid.engines.presets import PRESETS

    sd21 = dict(PRESETS["sd21"]["unet"], in_channels=4)
    features = 3 * (32 * 32 * 640 + 64 * 64 * 320) * 2 * 50  # q of three 32x32 and three 64x64 layers, 50 steps
    content = cache_bytes(role="content", steps=50, resolution=512, unet_config=sd21, vae_scale_factor=8,
                          layers=INJECTED_LAYERS)
    assert features / 2**20 == 562.5 and 0 < content - features < 4 * 2**20  # + latents and HDF5's own bytes


def limited_cli(args, file_size):
    """`jstyleid ARGS` in a subprocess whose files may not grow past file_size bytes (ulimit -f)."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    return subprocess.run([sys.executable, "-m", "jstyleid.cli", *map(str, args)], preexec_fn=limit,
                          capture_output=True, text=True)


def test_full_disk_leaves_earlier_results_and_says_so_in_one_line(tiny_model, images, tmp_path):
    from jstyleid.cli import main
    from jstyleid.storage.inputs import sha256_file

    model = ["--model", tiny_model, "--device", "cpu", "--resolution", 64]
    out = tmp_path / "out"
    first = [out / "Ring.png", out / "ring.h5"]
    earlier = [["generate", *model, "--prompt", "Ring", "--out", first[0], "--ddim-steps", 2],
               ["invert", *model, "--role", "content", "--images", images["c0"], "--out", first[1], "--ddim-steps", 2]]
    for args in earlier:  # made without a limit, so in this process (two CLI start-ups fewer)
        assert main([str(arg) for arg in args]) == 0
    before = {p: sha256_file(p) for p in first}

    runs = [limited_cli(["generate", *model, "--prompt", "Ring", "Cat", "--out", first[0], out / "Cat.png",
                         "--ddim-steps", 3], 2000),
            limited_cli(["invert", *model, "--role", "content", "--images", images["c0"], images["c1"],
                         "--out", first[1], out / "c1.h5", "--ddim-steps", 3], 40000)]
    for run in runs:
        errors = [line for line in run.stderr.splitlines() if "error" in line.lower() or "Traceback" in line]
        assert run.returncode == 1 and len(errors) == 1, run.stderr[-2000:]
        assert "disk full" in errors[0] and "files finished before it are intact" in errors[0]
    assert {p: sha256_file(p) for p in first} == before
    assert sorted(p.name for p in out.iterdir()) == ["Ring.png", "ring.h5"]  # no partial or temporary file


def test_a_prompt_near_the_name_limit_is_written(torch_engine, tmp_path):
    from jstyleid.storage.fileio import NAME_MAX, temporary_path
    from jstyleid.pipelines.generate import generate_images

    prompt = NEAR_LIMIT
    out = tmp_path / f"{prompt}.png"
    assert len(temporary_path(out).name.encode()) <= NAME_MAX < len(f".{out.name}.1234567.tmp.png")
    generate_images(torch_engine, [prompt], [out], steps=2, resolution=64)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_a_name_too_long_is_refused_before_the_model_loads(tmp_path, capsys):
    from jstyleid.cli import main

    out = tmp_path / ("x" * 300 + ".png")
    assert main(["generate", "--model", str(tmp_path / "no-model"), "--prompt", "x", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "jstyleid generate: error: --out: file name of" in err and "is 304 bytes of UTF-8; file systems allow 255" in err


def test_prompt_file_names():
    from jstyleid.storage.inputs import MAX_STEM_BYTES, safe_filename

    challenge = ["Ring", "Ice cream", "Sailing ship", "Cat", "Lighthouse", "Tree", "Bird"]
    assert [safe_filename(p) for p in challenge] == challenge
    assert safe_filename(NEAR_LIMIT) == NEAR_LIMIT
    assert [safe_filename(p) for p in (".hidden", "a/b", "a\0b", "  ")] == ["_hidden", "a_b", "a_b", "_"]
    long_a, long_b = LONG * 2, LONG * 2 + "!"
    names = [safe_filename(p) for p in (long_a, long_b, UNICODE)]
    assert len(set(names)) == 3 and all(len(n.encode()) <= MAX_STEM_BYTES and n[-9] == "~" for n in names)
    assert names[0] == safe_filename(long_a) and names[0].startswith(LONG[:200])
    assert names[2].encode().decode() == names[2] and names[2].startswith(UNICODE[:70])


@pytest.mark.parametrize("prompts, words", [
    ({"0": "Cat", "1": "cat"}, "prompts '0' ('Cat') and '1' ('cat') map to file names that differ only in case"),
    ({"a": "x/y", "b": "x:y"}, "prompts 'a' ('x/y') and 'b' ('x:y') map to the same file name"),
])
def test_prompts_that_would_share_a_file_are_refused_naming_the_keys(tmp_path, prompts, words):
    from jstyleid.errors import InputError
    from jstyleid.storage.inputs import read_prompts

    path = tmp_path / "prompt.json"
    path.write_text(json.dumps(prompts))
    with pytest.raises(InputError, match=r"prompt\.json: ") as refused:
        read_prompts(path)
    assert words in str(refused.value)


def test_error_line_of_a_job_log(tmp_path):
    from jstyleid.reporting.outcome import error_line, failed_jobs

    crash = tmp_path / "results/logs/generate/01.log"
    crash.parent.mkdir(parents=True)
    crash.write_text("progress 10%\nTraceback (most recent call last):\n  File \"x\", line 1\n"
                     "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n")
    assert error_line(crash) == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    killed = tmp_path / "results/logs/inject/01.log"
    killed.parent.mkdir(parents=True)
    killed.write_text("inject: 40%\n")
    log = tmp_path / "run.log"
    log.write_text("\n".join([
        "Error in rule generate:", "    jobid: 3", f"    output: {tmp_path}/results/01/content",
        f"    log: {crash} (check log file(s) for error details)", "    shell:", "        jstyleid generate ...", "",
        "Error in rule inject:", "    jobid: 5", f"    output: {tmp_path}/results/01/styleid", f"    log: {killed}",
        "Error in rule generate:", "    jobid: 3", f"    log: {crash}", ""]))
    assert [(f.style, f.stage, f.error) for f in failed_jobs(log)] == [
        ("01", "generate", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
        ("01", "inject", "inject: 40%")]
    (tmp_path / "results/01/styleid").mkdir(parents=True)  # inject retried into success: not a failure
    assert [f.stage for f in failed_jobs(log)] == ["generate"]


def test_check_stage_names_the_first_problem(tmp_path, capsys):
    from jstyleid.cli import main

    style = tmp_path / "04"
    (style / "images").mkdir(parents=True)
    (style / "prompt.json").write_text('{"0": "Ring"}')
    good = ROOT / "data/02/images/dots_0.png"
    shutil.copy(good, style / "images/ok.png")
    assert main(["check", "--style-dir", str(style)]) == 0
    (style / "images/corrupt.png").write_bytes(good.read_bytes()[:60])
    assert main(["check", "--style-dir", str(style)]) == 0  # without --decode only sizes are looked at
    assert main(["check", "--decode", "--style-dir", str(style)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"{style}/images/corrupt.png: cannot decode image (image file is truncated)")
