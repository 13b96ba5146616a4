"""The exceptions imgrec users see.

Every error carries a stable machine-readable ``code`` (used as the HTTP error code by the
servers and printed by the CLI), a message naming the offending value, and a ``hint`` saying
how to fix it. The CLI prints ``error[code]: message (hint)`` on one line; the servers map
``http_status`` to the response status in one place.
"""

from __future__ import annotations


class ImgrecError(Exception):
    """Base class: ``code`` is stable and machine-readable, ``hint`` says what to do."""

    code = "imgrec_error"
    http_status = 400

    def __init__(self, message: str, *, hint: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, str]:
        """``{"code", "message", "hint"}`` (the ``error`` of a prediction record)."""
        return {"code": self.code, "message": self.message, "hint": self.hint}

    def response_body(self) -> dict[str, str]:
        """The JSON body of every server's error response (KServe predictor and TorchServe):
        ``{"error": message, "code", "message", "hint"}`` (``error`` is KServe's own key)."""
        return error_body(self.code, self.message, self.hint)


def error_body(code: str, message: str, hint: str = "") -> dict[str, str]:
    """``{"error": message, "code": code, "message": message, "hint": hint}``."""
    return {"error": message, "code": code, "message": message, "hint": hint}


# --- images (BAD-INPUTS rows 1-10) -------------------------------------------------------
class ImageError(ImgrecError):
    """A single image could not be used."""


class EmptyFileError(ImageError):
    code = "empty_file"


class UnsupportedMediaTypeError(ImageError):
    code = "unsupported_media_type"
    http_status = 415


class CorruptImageError(ImageError):
    code = "corrupt_image"


class ImageTooLargeError(ImageError):
    code = "image_too_large"
    http_status = 413


# --- data, config, names ---------------------------------------------------------------
class DatasetError(ImgrecError):
    """A dataset (layout, labels, splits, too many bad files) cannot be used."""

    code = "invalid_dataset"


class ConfigError(ImgrecError):
    """A configuration value or key is invalid."""

    code = "invalid_config"


class UnknownNameError(ImgrecError, KeyError):
    """A name looked up in a registry does not exist."""

    code = "unknown_name"
    http_status = 404

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return ImgrecError.__str__(self)


# --- models, weights, storage ----------------------------------------------------------
class ModelError(ImgrecError):
    """A model directory or weights file is invalid (BAD-INPUTS rows 16-17)."""

    code = "invalid_model"
    http_status = 422


class WeightsUnavailableError(ImgrecError):
    """Pretrained weights cannot be obtained (e.g. offline)."""

    code = "weights_unavailable"
    http_status = 503


class MissingExtraError(ImgrecError):
    """A command needs an optional extra that is not installed (``pip install 'imgrec[EXTRA]'``)."""

    code = "missing_extra"
    http_status = 501


class StorageError(ImgrecError):
    """Reading or writing a local path or ``s3://`` URI failed."""

    code = "storage_error"
    http_status = 502


class NotFoundError(StorageError):
    code = "not_found"
    http_status = 404


class UnsafeArchiveError(ImgrecError):
    code = "unsafe_archive_entry"


class ContainerEngineError(ImgrecError):
    """No container engine answers, or the image a pipeline step runs in is missing."""

    code = "container_unavailable"
    http_status = 503


class ValidationFailedError(ImgrecError):
    """A data validation step found critical problems."""

    code = "validation_failed"
    http_status = 422


class TrainingJobError(ImgrecError):
    """A training job on the cluster (a Training Operator PyTorchJob) failed or timed out."""

    code = "training_job_failed"
    http_status = 502


class ServiceError(ImgrecError):
    """Raised by the servers for request-level problems."""

    code = "bad_request"


class BadRequestError(ServiceError):
    """The request body is not a valid V1 or V2 inference request."""

    code = "bad_request"
    http_status = 400


class InvalidBase64Error(ServiceError):
    """An image sent as base64 text does not decode."""

    code = "invalid_base64"
    http_status = 400


class UnsupportedContentTypeError(ServiceError):
    """The request's ``Content-Type`` is not one the server reads."""

    code = "unsupported_content_type"
    http_status = 415


class PayloadTooLargeError(ServiceError):
    """The request body is larger than the server's limit (BAD-INPUTS row 19)."""

    code = "payload_too_large"
    http_status = 413


class RequestTimeoutError(ServiceError):
    """The client did not send the announced body in time."""

    code = "request_timeout"
    http_status = 408


class OverloadedError(ServiceError):
    """The inference queue is full (BAD-INPUTS row 22); the client should retry later."""

    code = "overloaded"
    http_status = 503

    def __init__(self, message: str, *, retry_after_s: int = 1, hint: str = "") -> None:
        super().__init__(message, hint=hint or f"retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class InferenceTimeoutError(ServiceError):
    """Inference took longer than the server's timeout (BAD-INPUTS row 23)."""

    code = "inference_timeout"
    http_status = 504


class UnauthorizedError(ServiceError):
    """An admin route was called without a valid token."""

    code = "unauthorized"
    http_status = 401


class TorchServeError(ImgrecError):
    """TorchServe (or its model archiver) failed to start, pack or answer."""

    code = "torchserve_error"
    http_status = 502


class DeployError(ImgrecError):
    """A deployment (local server or KServe InferenceService) did not go through."""

    code = "deploy_failed"
    http_status = 502


# --- drift monitoring (BAD-INPUTS rows 31-35) ------------------------------------------------
class MonitorError(ImgrecError):
    """A prediction log or a monitoring reference cannot be used."""

    code = "monitor_error"
    http_status = 422


class EmptyWindowError(MonitorError):
    """The selected window holds no usable prediction record."""

    code = "empty_window"


class ReferenceProfileError(MonitorError):
    """A monitoring reference profile is missing, corrupt or made for another model."""

    code = "invalid_reference"


# --- deployment from git (imgrec.gitops) -------------------------------------------------
class GitOpsError(ImgrecError):
    """An overlay, a git operation or a git-driven deployment cannot go ahead (BAD-INPUTS 39)."""

    code = "gitops_error"
    http_status = 409


class OverlayError(GitOpsError):
    """A kustomize overlay is malformed or does not name one production model."""

    code = "invalid_overlay"
    http_status = 422


class ProductionMismatchError(GitOpsError):
    """The store's production pointer and an overlay name different versions."""

    code = "production_mismatch"


# --- the learning loop: labels and retraining triggers ---------------------------------
class LabelError(ImgrecError):
    """Labels (a Label Studio export or a CSV) cannot be imported."""

    code = "invalid_labels"
    http_status = 422


class TriggerError(ImgrecError):
    """A retraining trigger (GitHub dispatch, KFP submission, local run) did not start."""

    code = "trigger_failed"
    http_status = 502


class KfpError(ImgrecError):
    """Kubeflow Pipelines refused or did not answer an upload, a run or a read of one."""

    code = "kfp_failed"
    http_status = 502


# --- the dashboard (imgrec dashboard, BAD-INPUTS rows 40-41) ------------------------------
class ForbiddenError(ImgrecError):
    """An action the dashboard refuses: actions off, a missing or wrong token, another origin."""

    code = "forbidden"
    http_status = 403


class UploadTooLargeError(ImgrecError):
    """An upload larger than the dashboard's limit (the API's code for a too-large body)."""

    code = "payload_too_large"
    http_status = 413


class NoFilesError(ImgrecError):
    """An upload that carries no files."""

    code = "no_files"


class EndpointUnavailableError(ImgrecError):
    """The model server the dashboard sends images to is not configured or does not answer."""

    code = "endpoint_unavailable"
    http_status = 502


class EndpointError(ImgrecError):
    """The model server answered the dashboard with an error; its own ``code`` and ``hint``
    (the API's stable codes, e.g. ``image_too_large``) are passed on unchanged."""

    code = "server_error"
    http_status = 502


class DashboardStartError(ImgrecError):
    """``imgrec dashboard`` started beside the model server (``make run``) did not come up."""

    code = "dashboard_failed"
    http_status = 500


class RedeployError(DeployError):
    """The dashboard moved the store's production pointer but the running server was not
    made to serve it (no state file for its port, or the swap was refused)."""

    code = "redeploy_failed"
