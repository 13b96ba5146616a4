"""Label Studio's JSON formats, both ways (https://labelstud.io/guide/task_format,
https://labelstud.io/guide/predictions).

Out: tasks with pre-annotations. Each task is ``{"data": {"image": URL, "fingerprint": FP},
"predictions": [{"model_version", "score", "result": [...]}]}``; a classification result is
``{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [C]},
"score": s}``, a detection result ``{"type": "rectanglelabels", "value": {"x", "y", "width",
"height", "rotation": 0, "rectanglelabels": [C]}, "original_width", "original_height",
"score"}`` with x/y/width/height in percent of the image. :func:`label_config` is the
project's labeling interface with the same names.

In: Label Studio's JSON export, a list of tasks each with ``annotations`` (``result`` lists
of the same shape, ``was_cancelled``, ``ground_truth``) -- :func:`read_export` turns it into
one :class:`Labelled` per task or a :class:`Refusal` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from imgrec.data.captures import fingerprint_of_name, normalize_fingerprint

FROM_CHOICE = "label"
FROM_BOX = "box"
TO_NAME = "image"


@dataclass
class Labelled:
    """One image's human label: a class (classify) or boxes ``(x1, y1, x2, y2, class)``."""

    fingerprint: str
    item: str  # where it came from: "task 12", "line 7"
    label: str | None = None
    boxes: list[tuple[float, float, float, float, str]] = field(default_factory=list)
    width: int = 0
    height: int = 0


@dataclass
class Refusal:
    item: str
    reason: str

    def __str__(self) -> str:
        return f"{self.item}: {self.reason}"


def label_config(classes: list[str], task: str) -> str:
    """The Label Studio labeling interface (XML) matching the exported pre-annotations."""
    if task == "detect":
        tags = "".join(f"\n    <Label value={quoteattr(c)}/>" for c in classes)
        body = (
            f'  <RectangleLabels name="{FROM_BOX}" toName="{TO_NAME}">{tags}\n  </RectangleLabels>'
        )
    else:
        tags = "".join(f"\n    <Choice value={quoteattr(c)}/>" for c in classes)
        body = (
            f'  <Choices name="{FROM_CHOICE}" toName="{TO_NAME}" choice="single" '
            f'showInLine="true">{tags}\n  </Choices>'
        )
    return f'<View>\n  <Image name="{TO_NAME}" value="$image"/>\n{body}\n</View>\n'


def choice_result(label: str, score: float) -> dict[str, Any]:
    return {
        "from_name": FROM_CHOICE,
        "to_name": TO_NAME,
        "type": "choices",
        "value": {"choices": [label]},
        "score": round(float(score), 6),
    }


def rectangle_result(
    box: list[float], label: str, score: float, width: int, height: int, index: int
) -> dict[str, Any]:
    """A ``rectanglelabels`` result from a pixel box ``[x1, y1, x2, y2]``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return {
        "id": f"p{index}",
        "from_name": FROM_BOX,
        "to_name": TO_NAME,
        "type": "rectanglelabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {
            "x": round(100 * x1 / width, 4),
            "y": round(100 * y1 / height, 4),
            "width": round(100 * (x2 - x1) / width, 4),
            "height": round(100 * (y2 - y1) / height, 4),
            "rotation": 0,
            "rectanglelabels": [label],
        },
        "score": round(float(score), 6),
    }


def task_fingerprint(task: dict[str, Any]) -> str | None:
    """The capture fingerprint a task refers to: ``data.fingerprint``, else the image URL's
    file name (``.../3fa1c0d2e4b59a17.png``)."""
    data = task.get("data") if isinstance(task.get("data"), dict) else {}
    assert isinstance(data, dict)
    if isinstance(data.get("fingerprint"), str):
        return normalize_fingerprint(data["fingerprint"])
    image = data.get(TO_NAME)
    return fingerprint_of_name(image) if isinstance(image, str) else None


def _chosen_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    """The annotation that counts: a ``ground_truth`` one, else the latest not cancelled."""
    done = [
        a
        for a in task.get("annotations") or []
        if isinstance(a, dict) and not a.get("was_cancelled") and a.get("result")
    ]
    if not done:
        return None
    truth = [a for a in done if a.get("ground_truth")]
    return max(truth or done, key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))


def _one_task(task: dict[str, Any], item: str, known: set[str]) -> Labelled | Refusal:
    fp = task_fingerprint(task)
    if fp is None:
        return Refusal(item, "no image fingerprint (data.fingerprint or a capture file URL)")
    annotation = _chosen_annotation(task)
    if annotation is None:
        return Refusal(item, "no annotation with a result (empty, skipped or cancelled)")
    labelled = Labelled(fp, item)
    for r in annotation["result"]:
        value = r.get("value") or {}
        if r.get("type") == "choices":
            choices = value.get("choices") or []
            if len(choices) != 1:
                return Refusal(item, f"expected one choice, got {choices!r}")
            labelled.label = str(choices[0])
        elif r.get("type") == "rectanglelabels":
            names = value.get("rectanglelabels") or []
            if len(names) != 1:
                return Refusal(item, f"expected one label per rectangle, got {names!r}")
            if float(value.get("rotation") or 0) != 0:
                return Refusal(item, "rotated rectangles are not supported (rotation != 0)")
            w, h = int(r.get("original_width") or 0), int(r.get("original_height") or 0)
            if w <= 0 or h <= 0:
                return Refusal(item, "a rectangle without original_width/original_height")
            x, y = float(value["x"]) * w / 100, float(value["y"]) * h / 100
            bw, bh = float(value["width"]) * w / 100, float(value["height"]) * h / 100
            labelled.boxes.append((x, y, x + bw, y + bh, str(names[0])))
            labelled.width, labelled.height = w, h
    if labelled.label is None and not labelled.boxes:
        return Refusal(item, "the annotation has no choices or rectanglelabels result")
    if labelled.label is not None and labelled.boxes:
        return Refusal(item, "both a class choice and rectangles: one kind per project")
    names = [labelled.label] if labelled.label is not None else [b[4] for b in labelled.boxes]
    unknown = sorted({n for n in names if n not in known})
    if unknown:
        return Refusal(item, f"unknown class {', '.join(map(repr, unknown))}")
    return labelled


def read_export(tasks: Any, classes: list[str]) -> tuple[list[Labelled], list[Refusal]]:
    """Label Studio JSON export -> (labelled images, refused tasks with reasons)."""
    known = set(classes)
    good: list[Labelled] = []
    refused: list[Refusal] = []
    for i, task in enumerate(tasks):
        item = f"task {task.get('id', f'#{i}')}" if isinstance(task, dict) else f"task #{i}"
        out = _one_task(task, item, known) if isinstance(task, dict) else None
        if isinstance(out, Labelled):
            good.append(out)
        else:
            refused.append(out or Refusal(item, "not a task object"))
    return good, refused
