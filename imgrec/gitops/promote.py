"""Promotion and rollback that move the store pointer and an overlay together, and the status
that says where they disagree (``imgrec models promote V --git``, ``rollback --git``, ``status``).

Order of a git promotion: check (the version is complete and its checksums match; the overlay
names this store; the overlay file has no uncommitted edits; the pointer and the overlay agree
or the pointer already names V, as after a pipeline registered it), move the store pointer,
write the overlay, commit. When the commit fails the pointer is moved back and the file
restored, so the two never silently disagree. Example::

    result = promote_git(3, "manifests/overlays/production", reason="passed the gate")
    result["commit"], result["message"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgrec.errors import ImgrecError, OverlayError, ProductionMismatchError
from imgrec.gitops import git
from imgrec.gitops.overlay import MODEL_FILE, Production, read_production, write_production

SHOWN_METRICS = ("accuracy", "f1_macro", "top5", "ece")


def commit_message(action: str, version: int, metadata: dict[str, Any], *, overlay: str,
                   store: str, previous: int | None, reason: str,
                   canary: int | None) -> str:  # fmt: skip
    """The commit message: version, metrics and the gate's decision, then details."""
    metrics = metadata.get("metrics") or {}
    shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in SHOWN_METRICS if isinstance(
        metrics.get(k), (int, float)))  # fmt: skip
    gate = metadata.get("gate") or {}
    decision = (
        "gate passed" if gate.get("passed") else "gate failed" if "passed" in gate else "no gate"
    )
    split = f" as a {canary}% canary" if canary is not None else ""
    summary = f"{shown or 'no metrics'}; {decision}"
    head = f"models: {action} {Path(overlay).name} to version {version}{split} ({summary})"
    lines = [
        head,
        "",
        f"version: {version} (previous: {previous if previous is not None else 'none'})",
        f"store: {store}",
        f"overlay: {overlay}",
        f"reason: {reason}",
        "metrics: "
        + (
            ", ".join(f"{k}={v}" for k, v in metrics.items() if isinstance(v, (int, float)))
            or "none"
        ),
        f"gate: {decision}",
        *(f"  - {r}" for r in gate.get("reasons") or []),
    ]
    return "\n".join(lines) + "\n"


def _check_store(prod: Production, store: str | None, overlay: str) -> str:
    if store is not None and store.rstrip("/") != prod.store.rstrip("/"):
        raise ProductionMismatchError(
            f"{overlay} deploys models from {prod.store}, not from {store}",
            hint="drop --store (the overlay names the store) or pass the overlay of that store",
        )
    return prod.store


def _move(action: str, target: int | None, overlay: str | Path, *, store: str | None,
          reason: str, canary: int | None, branch: str | None) -> dict[str, Any]:  # fmt: skip
    from imgrec.model_store import ModelStore

    overlay_dir = Path(overlay)
    prod = read_production(overlay_dir)
    ms = ModelStore(_check_store(prod, store, str(overlay)))
    root = git.toplevel(overlay_dir)
    model_file = overlay_dir / MODEL_FILE
    if not git.is_clean(root, model_file):
        raise OverlayError(
            f"{model_file} has uncommitted changes",
            hint="commit or discard them first (git diff shows them)",
        )
    pointer = ms.production_version()
    if action == "rollback" and target is None:
        target = _previous(ms, prod)
    assert target is not None
    if pointer is not None and pointer not in (prod.version, target):
        raise ProductionMismatchError(
            f"the store {ms.uri} has version {pointer} in production but {overlay} names "
            f"version {prod.version}",
            hint="see `imgrec models status`; promote one of them with --git to reconcile",
        )
    mv = ms.get(target)  # NotFoundError for missing/incomplete versions
    ms.verify(target)  # ModelError when a file no longer matches its checksum
    old_text = model_file.read_text(encoding="utf-8")
    if action == "promote":
        ms.promote(target, reason=f"{reason} (git: {overlay})")
    else:
        ms.rollback(to=target, reason=f"{reason} (git: {overlay})")
    message = commit_message(action, target, mv.metadata, overlay=str(overlay), store=ms.uri,
                             previous=prod.version, reason=reason, canary=canary)  # fmt: skip
    try:
        write_production(overlay_dir, ms.uri, target, canary_percent=canary)
        sha = git.commit(root, [model_file], message, branch=branch)
    except ImgrecError:
        model_file.write_text(old_text, encoding="utf-8")
        if pointer is not None and pointer != target:
            ms.rollback(to=pointer, reason=f"git commit of version {target} failed")
        raise
    return {
        "action": action,
        "version": target,
        "previous": prod.version,
        "store": ms.uri,
        "overlay": str(overlay),
        "canary_percent": canary,
        "commit": sha,
        "message": message,
    }


def _previous(ms: Any, prod: Production) -> int:
    ptr = ms.pointer() or {}
    stack = [int(v) for v in ptr.get("stack", []) if int(v) != prod.version]
    if not stack:
        raise ImgrecError(
            f"no earlier production version of {ms.uri} to roll back to",
            hint="pass --to VERSION",
            code="nothing_to_roll_back",
        )
    return stack[-1]


def promote_git(version: int, overlay: str | Path, *, store: str | None = None,
                reason: str = "promoted by hand", canary: int | None = None,
                branch: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Make ``version`` production in the store and in ``overlay``, with one commit."""
    if canary is not None and not 0 < canary < 100:
        raise OverlayError(f"--canary must be 1-99, got {canary}", hint="e.g. --canary 20")
    return _move("promote", version, overlay, store=store, reason=reason, canary=canary,
                 branch=branch)  # fmt: skip


def rollback_git(
    overlay: str | Path,
    *,
    to: int | None = None,
    store: str | None = None,
    reason: str = "rollback",
    branch: str | None = None,
) -> dict[str, Any]:
    """Move production back (to the previous production version, or ``to``) in both places."""
    return _move("rollback", to, overlay, store=store, reason=reason, canary=None, branch=branch)


def overlay_status(overlay: str | Path) -> dict[str, Any]:
    """One overlay's production model and whether the store's pointer agrees with it."""
    from imgrec.model_store import ModelStore

    row: dict[str, Any] = {"overlay": str(overlay)}
    try:
        prod = read_production(overlay)
    except ImgrecError as exc:
        return {**row, "state": "invalid_overlay", "problem": str(exc)}
    row.update(store=prod.store, git_version=prod.version, canary_percent=prod.canary_percent)
    try:
        ms = ModelStore(prod.store)
        pointer = ms.production_version()
        complete = ms.is_complete(prod.version)
    except Exception as exc:  # an unreachable store is a status, not a crash
        return {**row, "store_version": None, "state": "store_unreachable", "problem": str(exc)}
    row["store_version"] = pointer
    if not complete:
        problem = f"version {prod.version} is missing or incomplete in {prod.store}"
        row.update(state="missing_version", problem=problem)
    elif pointer != prod.version:
        problem = f"store production is {pointer}, git names {prod.version}"
        row.update(state="mismatch", problem=problem)
    else:
        row["state"] = "in_sync"
    return row


def overlays_under(path: str | Path) -> list[Path]:
    """``path`` itself when it is an overlay, else its sub-folders holding a model file."""
    folder = Path(path)
    if (folder / MODEL_FILE).is_file():
        return [folder]
    return sorted(p.parent for p in folder.glob(f"*/{MODEL_FILE}"))
