"""Labels for captured images: Label Studio round trip and a plain CSV (docs/labels.md).

::

    from imgrec.labels import export_tasks, import_labels
    export_tasks("captures/", "model-store@production", "tasks.json")   # least certain first
    import_labels("export.json", "captures/", "new-data", classes=["0", "1", ...])
    import_labels("labels.csv", "captures/", "new-data", classes=[...])   # fingerprint,label
"""

from imgrec.labels.export import export_tasks
from imgrec.labels.importer import import_labels

__all__ = ["export_tasks", "import_labels"]
