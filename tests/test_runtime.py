"""Tests for sweep.runtime: device placement (with a faked GPU list) and thread settings."""

import pytest

from sweep.config import parse_device
from sweep.errors import ConfigError
from sweep.runtime import automatic_threads, choose_device, thread_settings

FAKE_GPUS = ["/physical_device:GPU:0", "/physical_device:GPU:1"]


@pytest.mark.parametrize(
    "requested, worker, gpus, expected",
    [
        ("auto", 0, [], "cpu"),
        ("auto", 3, [], "cpu"),
        ("auto", 0, FAKE_GPUS, "gpu:0"),
        ("auto", 1, FAKE_GPUS, "gpu:1"),
        ("auto", 2, FAKE_GPUS, "gpu:0"),
        ("auto", 5, FAKE_GPUS, "gpu:1"),
        ("gpu", 3, FAKE_GPUS, "gpu:1"),
        ("gpu:1", 0, FAKE_GPUS, "gpu:1"),
        ("cpu", 1, FAKE_GPUS, "cpu"),
    ],
)
def test_worker_i_uses_gpu_i_mod_n(requested, worker, gpus, expected):
    """Check that worker i gets GPU i mod n under auto/gpu, a fixed GPU under gpu:N, and the CPU without GPUs or under
    cpu."""
    assert choose_device(parse_device(requested), worker, gpus) == expected


@pytest.mark.parametrize(
    "requested, gpus, match",
    [
        ("gpu", [], r"sees no GPU.*--device cpu"),
        ("gpu:0", [], r"sees no GPU"),
        ("gpu:2", FAKE_GPUS, r"sees 2 GPU\(s\) \(gpu:0 to gpu:1\)"),
    ],
)
def test_impossible_device_requests_are_config_errors(requested, gpus, match):
    """Check that asking for a GPU that is not there is a ConfigError saying what exists."""
    with pytest.raises(ConfigError, match=match):
        choose_device(parse_device(requested), 0, gpus)


def test_threads_in_force_are_reported():
    """Check that the thread settings report positive counts (the automatic ones unless TF started otherwise)."""
    found = thread_settings()
    assert set(found) == {"intra_op", "inter_op"} and min(found.values()) >= 1
    assert set(automatic_threads()) == set(found)
