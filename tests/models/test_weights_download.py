"""Downloads of timm / torchvision weights fail at once, naming the offline options, when the
host cannot be reached; weights in the libraries' caches still load."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import torch

from imgrec.errors import ConfigError, WeightsUnavailableError
from imgrec.models import build_model
from imgrec.models.weights import DOWNLOAD_TIMEOUT_ENV, download_state, download_timeout


@pytest.fixture
def closed_url() -> str:
    """An http URL on loopback where nothing listens (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/weights.pth"


@pytest.fixture
def open_url() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/weights.pth"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(DOWNLOAD_TIMEOUT_ENV, raising=False)


def _hub_offline_now() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def test_unreachable_host_fails_at_once_naming_the_offline_options(closed_url: str) -> None:
    calls: list[bool] = []

    def download() -> dict[str, torch.Tensor]:
        calls.append(_hub_offline_now())
        raise OSError("not in the cache")

    with pytest.raises(WeightsUnavailableError) as info:
        download_state("resnet18", download, url=closed_url)
    assert calls == [True]  # tried once, from the local cache only
    assert "offline: cannot reach 127.0.0.1" in info.value.message
    assert "efficientnet_lite0 --pretrained" in info.value.hint
    assert "--weights FILE" in info.value.hint and DOWNLOAD_TIMEOUT_ENV in info.value.hint
    assert not _hub_offline_now()  # restored


def test_unreachable_host_still_loads_cached_weights(closed_url: str) -> None:
    state = {"w": torch.ones(2)}
    assert download_state("resnet18", lambda: state, url=closed_url) is state


def test_reachable_host_downloads_normally(open_url: str) -> None:
    seen: list[bool] = []
    state = {"w": torch.ones(2)}

    def download() -> dict[str, torch.Tensor]:
        seen.append(_hub_offline_now())
        return state

    assert download_state("resnet18", download, url=open_url) is state
    assert seen == [False]


def test_download_timeout_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert download_timeout() == 3.0
    monkeypatch.setenv(DOWNLOAD_TIMEOUT_ENV, "60")
    assert download_timeout() == 60.0
    for bad in ("soon", "0", "-5"):
        monkeypatch.setenv(DOWNLOAD_TIMEOUT_ENV, bad)
        with pytest.raises(ConfigError, match=DOWNLOAD_TIMEOUT_ENV):
            download_timeout()


def test_timm_download_from_an_unreachable_hub_fails_within_seconds(
    monkeypatch: pytest.MonkeyPatch, tmp_path, closed_url: str
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", closed_url.rsplit("/", 1)[0])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match=r"offline: cannot reach 127\.0\.0\.1"):
        build_model("resnet18", num_classes=3, pretrained=True)
    assert time.monotonic() - start < 20  # not the hub's retries: ~45-70 s offline
