"""`imgrec deploy sync|status|image|apply`: git-driven deployment (docs/gitops.md).

``sync`` keeps the local KServe predictor serving what an overlay at a git ref names (the
laptop's Argo CD); ``status`` prints what the last sync did or why it did nothing; ``image``
sets the serving image tag of an overlay (what cd.yml runs after pushing an image); ``apply``
applies an overlay with kubectl after a server-side dry run (deploy.yml, no Argo CD).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from imgrec.cli.app import deploy_app


@deploy_app.command("sync")
def sync_cmd(
    repo: str = typer.Option(..., "--repo", help="The watched repository: a path or a git URL."),
    ref: str = typer.Option("main", "--ref", help="Branch or tag to follow."),
    overlay: str = typer.Option(
        "manifests/overlays/local", "--overlay", help="Overlay folder inside the repository."
    ),
    watch: float = typer.Option(
        0, "--watch", help="Poll every SECONDS until Ctrl-C (0: reconcile once and exit)."
    ),
    port: int = typer.Option(8080, "--port", help="Port of the local imgrec server."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address if a server is started."),
    name: str = typer.Option("imgrec", "--name", help="Model name on the server."),
    start: bool = typer.Option(True, "--start/--no-start", help="Start a server if none runs."),
    status_file: str = typer.Option(None, "--status-file", help="Where to write the status."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON lines."),
) -> None:
    """Serve exactly the model the overlay names at REF: start, hot-swap, canary, or nothing.

    A commit naming a missing, incomplete or corrupt version changes nothing; the status says
    why (`imgrec deploy status`). Exits 1 after a single failed reconciliation.
    """
    from imgrec.serving.gitops_sync import GitOpsSync, describe

    sync = GitOpsSync(repo, ref, overlay, port=port, host=host, name=name, start=start,
                      status_file=Path(status_file) if status_file else None)  # fmt: skip

    def show(status: dict) -> None:
        typer.echo(json.dumps(status, default=str) if as_json else describe(status))

    if watch > 0:
        sync.watch(watch, on_change=show)
        return
    status = sync.once()
    show(status)
    if status["state"] != "synced":
        raise typer.Exit(1)


@deploy_app.command("status")
def status_cmd(
    port: int = typer.Option(8080, "--port", help="Port of the local imgrec server."),
    status_file: str = typer.Option(None, "--status-file", help="The sync's status file."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole status as JSON."),
) -> None:
    """What the last `imgrec deploy sync` did, or why it did nothing (exit 1 when it failed)."""
    from imgrec.errors import NotFoundError
    from imgrec.serving.gitops_sync import describe, status_path

    path = Path(status_file) if status_file else status_path(port)
    if not path.is_file():
        raise NotFoundError(f"no sync status at {path}", hint="run `imgrec deploy sync` first")
    status = json.loads(path.read_text())
    typer.echo(json.dumps(status) if as_json else describe(status))
    if status.get("state") != "synced":
        raise typer.Exit(1)


@deploy_app.command("image")
def image_cmd(
    tag: str = typer.Argument(..., help="The new serving image tag, e.g. a commit SHA."),
    overlay: list[str] = typer.Option(..., "--overlay", help="Overlay folder (repeat)."),
    use_git: bool = typer.Option(False, "--git", help="Commit the changed kustomization files."),
    branch: str = typer.Option(None, "--branch", help="With --git: commit on this new branch."),
    push: str = typer.Option(None, "--push", help="With --git: push the commit to this remote."),
) -> None:
    """Set the serving image tag (images: newTag) in each overlay; with --git commit them."""
    from imgrec.gitops import git
    from imgrec.gitops.overlay import IMAGE_NAME, write_image_tag

    paths = [write_image_tag(o, tag) for o in overlay]
    if use_git:
        root = git.toplevel(paths[0])
        names = ", ".join(Path(o).name for o in overlay)
        sha = git.commit(root, paths, f"deploy: serving image {IMAGE_NAME}:{tag} ({names})\n",
                         branch=branch)  # fmt: skip
        typer.echo(f"image tag {tag} in {names} ({sha[:12]})")
        if push:
            typer.echo(f"pushed to {git.push(root, push)}")
    else:
        typer.echo(f"image tag {tag} in {', '.join(str(p) for p in paths)}")


@deploy_app.command("apply")
def apply_cmd(
    overlay: str = typer.Option(..., "--overlay", help="Overlay folder to apply."),
    kubectl: str = typer.Option(None, "--kubectl", help="kubectl binary (default: found)."),
    kubeconfig: str = typer.Option(None, "--kubeconfig", help="kubeconfig file."),
    kubeconfig_env: str = typer.Option(
        None, "--kubeconfig-env", help="Environment variable holding a kubeconfig's text (CI)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Apply OVERLAY with `kubectl apply -k --server-side`, after a server-side dry run.

    For clusters without Argo CD (deploy.yml). Nothing is applied when the overlay does not
    render or the dry run fails.
    """
    from imgrec.gitops.apply import apply_overlay

    result = apply_overlay(overlay, kubectl=kubectl, kubeconfig=kubeconfig,
                           kubeconfig_env=kubeconfig_env)  # fmt: skip
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo("\n".join(result["applied"]))
