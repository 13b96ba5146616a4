"""Pictures are valid PNGs, the HTML report escapes hostile names, boxes land on exact pixels."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from PIL import Image

from imgrec.evaluation import classification_metrics, reliability_data
from imgrec.evaluation.plots import Mistake, read_history, write_figures
from imgrec.evaluation.report import render_report, write_report
from imgrec.visualize import draw_boxes, draw_label, safe_text

HOSTILE = ['<script>alert("x")</script>', "a&b $x^2$", "nul\x00byte", "../../etc/passwd", "猫"]


def _metrics(classes, seed=0):
    rng = np.random.default_rng(seed)
    n = 60
    y_true = rng.integers(0, len(classes), n)
    y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, len(classes), n))
    probs = rng.dirichlet(np.ones(len(classes)), n)
    probs[np.arange(n), y_pred] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    return classification_metrics(y_true, y_pred, probs, classes=classes), probs, y_pred, y_true


def _assert_png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        assert im.width > 100 and im.height > 100


def test_write_figures_all_pictures_are_pngs(tmp_path):
    classes = [f"class_{i}" for i in range(4)]
    metrics, probs, y_pred, y_true = _metrics(classes)
    history = tmp_path / "history.jsonl"
    lines = [
        json.dumps(
            {
                "epoch": e,
                "train_loss": 1 / e,
                "val_loss": 1.2 / e,
                "val_accuracy": 0.5 + e / 20,
                "lr": 0.01 / e,
                "seconds": 1.0,
            }
        )
        for e in range(1, 6)
    ]
    history.write_text("\n".join(lines) + "\n{broken", encoding="utf-8")  # cut-off last line
    assert len(read_history(history)) == 5
    conf = probs[np.arange(len(y_pred)), y_pred]
    mistakes = [
        Mistake(Image.new("RGB", (40, 30), (200, 10, 10)), "class_0", "class_1", 0.93),
        Mistake(Image.new("RGB", (30, 40), (10, 200, 10)), "class_2", "class_3", 0.71),
    ]
    figs = write_figures(
        tmp_path / "figures",
        metrics,
        history=history,
        reliability=reliability_data(conf, y_pred == y_true),
        mistakes=mistakes,
    )
    assert set(figs) == {"confusion_matrix", "per_class", "curves", "reliability", "worst_mistakes"}
    for path in figs.values():
        _assert_png(path)


def test_many_classes_and_hostile_names_plot(tmp_path):
    classes = HOSTILE + [f"c{i}" for i in range(40)]
    metrics, *_ = _metrics(classes, seed=1)
    mistakes = [Mistake(Image.new("RGB", (8, 8)), HOSTILE[0], HOSTILE[1], 0.5)]
    figs = write_figures(tmp_path, metrics, mistakes=mistakes)
    for path in figs.values():
        _assert_png(path)


def test_report_is_self_contained_and_escapes_hostile_names(tmp_path):
    metrics, *_ = _metrics(HOSTILE, seed=2)
    figs = write_figures(tmp_path / "figures", metrics)
    path = write_report(
        tmp_path / "report.html",
        metrics,
        figs,
        title="<b>run</b>",
        context={"model": "<img src=x onerror=alert(1)>"},
    )
    text = path.read_text(encoding="utf-8")
    assert "<script>" not in text and "<img src=x" not in text and "<b>run" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "a&amp;b $x^2$" in text
    # every picture is embedded, none is linked from disk
    blobs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(blobs) == len(figs)
    assert all(base64.b64decode(b).startswith(b"\x89PNG") for b in blobs)
    assert re.findall(r'src="(?!data:)', text) == []
    assert not list(tmp_path.glob(".report-*"))  # temp file renamed away


def test_report_without_probs_shows_na():
    metrics = classification_metrics([0, 1], [0, 0], classes=["a", "b"])
    text = render_report(metrics)
    assert "n/a" in text and "Per class" in text


def test_draw_boxes_exact_pixels():
    base = Image.new("RGB", (100, 80), (0, 0, 0))
    red = (255, 0, 0)
    out = draw_boxes(base, [[20.2, 30.0, 60.0, 50.4]], colors=[red], width=1)
    px = np.asarray(out)
    # the outline runs through x 20..60 and y 30..50 inclusive
    assert (px[30, 20:61] == red).all() and (px[50, 20:61] == red).all()
    assert (px[30:51, 20] == red).all() and (px[30:51, 60] == red).all()
    # and nowhere else: just outside and just inside the outline stay black
    assert (px[29, :] == 0).all() and (px[51, :] == 0).all()
    assert (px[:, 19] == 0).all() and (px[:, 61] == 0).all()
    assert (px[31:50, 21:60] == 0).all()
    assert np.asarray(base).max() == 0  # input untouched


def test_draw_boxes_width_grows_inwards_and_captions_drawn():
    base = Image.new("RGB", (120, 120), (0, 0, 0))
    out = np.asarray(draw_boxes(base, [[30, 60, 90, 100]], ["cat"], [0.9], width=3))
    color = out[80, 30]
    assert (out[80, 30:33] == color).all() and (out[80, 33] == 0).all() and (out[80, 29] == 0).all()
    caption = out[40:60, 30:90]  # above the box: a filled label with white text
    assert (caption > 200).all(axis=-1).any() and (caption == color).all(axis=-1).any()
    with pytest.raises(ValueError, match="labels"):
        draw_boxes(base, [[0, 0, 1, 1]], ["a", "b"])


def test_draw_label_draws_banner_with_text():
    base = Image.new("RGB", (200, 120), (0, 128, 0))
    out = np.asarray(draw_label(base, "tabby 0.93"))
    banner = out[:15, :80]
    assert (banner > 200).all(axis=-1).sum() > 20  # white text pixels
    assert (banner == 0).all(axis=-1).sum() > 20  # black banner
    assert (out[-10:] == (0, 128, 0)).all()  # the rest untouched
    assert safe_text("a\x00b\nc") == "a?b?c"
