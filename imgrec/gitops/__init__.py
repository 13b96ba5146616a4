"""Production in git: overlays that name the production model, and the git operations on them.

* :mod:`imgrec.gitops.kustomize` renders a kustomize overlay (the subset the overlays use) from
  any file reader: the working tree or a commit of a remote repository;
* :mod:`imgrec.gitops.overlay` reads and writes the one file of an overlay that names the
  production model (``production-model.yaml``) and the serving image tag;
* :mod:`imgrec.gitops.git` runs git (commit, fetch, read a file at a commit);
* :mod:`imgrec.gitops.promote` moves the store pointer and the overlay together.

The server side (``imgrec deploy sync``) lives in :mod:`serving.gitops_sync`.
"""
