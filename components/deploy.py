"""deploy: serve the newly registered production version (after register).

``target`` = ``local`` (hot-swap or start ``imgrec serve`` on this machine) or ``cluster``
(create/patch a KServe InferenceService; ``runtime`` = ``kserve`` for the imgrec predictor or
``torchserve``). A failed rollout moves ``production`` back to the previous version.
"""

from kfp.dsl import Markdown, Output


def deploy(
    store_uri: str,
    version: int,
    target: str,
    runtime: str,
    service_name: str,
    namespace: str,
    port: int,
    summary: Output[Markdown],
) -> dict:
    """Deploy ``version`` of the store; returns what was done (JSON-able)."""
    from imgrec.serving.deploy import deploy_step

    kw: dict = {"name": service_name}
    if target == "cluster":
        kw.update(namespace=namespace, runtime=runtime)
    else:
        kw.update(port=port)
    result = deploy_step(store_uri, version, target=target, **kw)
    with open(summary.path, "w", encoding="utf-8") as fh:
        fh.write(f"## Deploy ({target})\n\n")
        fh.writelines(f"- **{k}**: `{v}`\n" for k, v in result.items() if k != "token")
    return {k: v for k, v in result.items() if k != "token"}
