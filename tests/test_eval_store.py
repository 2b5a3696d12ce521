"""Incremental evaluation: the parts' per-image values in the per-image store. Scores from the store
equal scores from pixels, no network is loaded when everything is stored, a new setting or style costs
only its own images, and an evaluation stopped midway keeps what it finished."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from jstyleid.evaluation import available_metrics, score_styles
from jstyleid.evaluation.score import PARTS

pytestmark = pytest.mark.usefixtures("torch_home")


def write_image(path, seed, size):
    import conftest

    path.parent.mkdir(parents=True, exist_ok=True)
    return conftest.write_image(path, seed, size)


def make_styles(root, names=("00", "01"), labels=("content", "styleid"), prompts=("Cat", "Red tree", "Ship")):
    styles = []
    for s, name in enumerate(names):
        refs = [str(write_image(root / f"refs{name}" / f"{i}.png", seed=100 + 10 * s + i, size=(48, 48)))
                for i in range(3)]
        settings = []
        for k, label in enumerate(labels):
            images = [str(write_image(root / name / label / f"{p}.png", seed=1000 * s + 10 * k + i, size=(40, 36)))
                      for i, p in enumerate(prompts)]
            settings.append(dict(label=label, outputs=str(root / name / label), images=images))
        styles.append(dict(name=name, refs=refs, settings=settings))
    return styles


def metrics(random_weights):
    options = dict(dino=random_weights["dino"], clip=random_weights["clip"], clip_iqa=random_weights["clip"])
    found, status = available_metrics(PARTS, options)
    assert all(status[p]["status"] == "ok" for p in PARTS)
    return found


def computed(caplog) -> dict[str, int]:
    """{part: images computed} from the evaluation's log lines."""
    import re

    counts = {}
    for record in caplog.records:
        found = re.match(r"evaluate (\w+): \d+ of \d+ image\(s\) from the store, (\d+) to compute", record.getMessage())
        if found:
            counts[found[1]] = counts.get(found[1], 0) + int(found[2])
    caplog.clear()
    return counts


def test_stored_values_give_the_scores_of_pixels_and_load_no_network(random_weights, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    styles = make_styles(tmp_path / "pictures")
    plain = score_styles(styles, metrics(random_weights), "cpu")
    computed(caplog)
    cold = score_styles(styles, metrics(random_weights), "cpu", store=tmp_path / "store")
    assert json.dumps(cold) == json.dumps(plain)  # the same numbers, to the bit
    # 2 styles x 2 settings x 3 prompts, and the 2 x 3 references where a part compares features with them
    assert computed(caplog) == {part: 12 + (6 if part in ("dino", "fid") else 0) for part in PARTS}

    def refused(self, device):
        raise AssertionError(f"{self.name} loaded its network although every value is stored")

    for metric in metrics(random_weights).values():
        monkeypatch.setattr(type(metric), "load", refused)
    warm = score_styles(styles, metrics(random_weights), "cpu", store=tmp_path / "store")
    assert json.dumps(warm) == json.dumps(plain)
    assert computed(caplog) == {part: 0 for part in PARTS}


def test_a_new_setting_and_a_new_style_score_only_their_images(random_weights, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    store = tmp_path / "store"
    score_styles(make_styles(tmp_path / "p", names=("00",)), metrics(random_weights), "cpu", store=store)
    computed(caplog)
    grown = make_styles(tmp_path / "p", names=("00", "01"), labels=("content", "styleid", "g0.5_t1.5"))
    per_style, overall = score_styles(grown, metrics(random_weights), "cpu", store=store)
    # style 00's new setting (3 images) and style 01 (3 settings of 3): 12 images, and 01's 3 references
    assert computed(caplog) == {part: 12 + (3 if part in ("dino", "fid") else 0) for part in PARTS}
    assert (per_style, overall) == score_styles(grown, metrics(random_weights), "cpu")  # as from pixels
    assert overall["g0.5_t1.5"]["final"] is not None


def test_a_changed_image_or_reference_is_scored_again(random_weights, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    store = tmp_path / "store"
    styles = make_styles(tmp_path / "p", names=("00",), labels=("styleid",))
    score_styles(styles, metrics(random_weights), "cpu", store=store)
    computed(caplog)
    write_image(Path(styles[0]["settings"][0]["images"][0]), seed=77, size=(40, 36))
    score_styles(styles, metrics(random_weights), "cpu", store=store)
    assert computed(caplog) == {part: 1 for part in PARTS}
    write_image(Path(styles[0]["refs"][0]), seed=78, size=(48, 48))
    score_styles(styles, metrics(random_weights), "cpu", store=store)
    # Hist and LPIPS compare each image with the references: all 3 again; DINO and FID only the reference
    assert computed(caplog) == dict(hist=3, lpips=3, dino=1, fid=1, clip_iqa=0, clip_r=0)


def test_a_stopped_evaluation_keeps_the_values_it_finished(random_weights, tmp_path, monkeypatch, caplog):
    from jstyleid.evaluation import stored
    from jstyleid.evaluation.dino import Dino

    caplog.set_level(logging.INFO)
    monkeypatch.setattr(stored, "CHUNK", 2)
    compute, calls = Dino.compute, []

    def stops_at_the_third_chunk(self, images, references=()):
        calls.append(len(images))
        if len(calls) == 6:
            raise KeyboardInterrupt  # a kill between two chunks
        return compute(self, images, references)

    monkeypatch.setattr(Dino, "compute", stops_at_the_third_chunk)
    styles = make_styles(tmp_path / "p", names=("00", "01"), labels=("content", "styleid"))
    with pytest.raises(KeyboardInterrupt):
        score_styles(styles, dict(dino=metrics(random_weights)["dino"]), "cpu", store=tmp_path / "store")
    computed(caplog)
    assert calls == [2, 1, 2, 1, 2, 1]  # each style's 3 references, then the first set, in chunks of 2
    monkeypatch.setattr(Dino, "compute", compute)
    score_styles(styles, dict(dino=metrics(random_weights)["dino"]), "cpu", store=tmp_path / "store")
    # the references and the first chunk of the first set were finished before the stop: 12 - 2 pictures left
    assert computed(caplog) == {"dino": 10}
