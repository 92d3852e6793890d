"""The scripts as a new user meets them: quiet, documented --help, and no TensorFlow noise."""

import os
import subprocess
import sys

import pytest

from faceage_tf import training

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = ["training/train.py", "training/evaluate.py", "export/export_tflite.py"]


def _help(script, *extra):
    return subprocess.run([sys.executable, os.path.join(ROOT, script), "--help", *extra], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_only_the_help(script):
    """TensorFlow's oneDNN, CUDA and cuInit lines (printed twice on import before) stay hidden;
    the usage text is clean."""
    result = _help(script)
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout.startswith("usage: " + os.path.basename(script))
    for noise in ("oneDNN", "cuda", "cuInit", "absl", "I0000", "E0000", "W0000", "XNNPACK", "TensorFlow binary"):
        assert noise not in result.stdout, noise
    assert "--verbose" in result.stdout


def test_train_help_documents_every_flag_with_its_default():
    text = " ".join(_help("training/train.py").stdout.split())
    for flag in training.config_flags():
        assert flag["help"].strip(), flag["dest"]
    for name in ("--limit", "--input-size", "--residual-widths", "--init-from", "--resume", "--overwrite", "--progress"):
        assert name in text, name
    assert "--limit LIMIT use only this many faces of each source, drawn at random (0: all): quick runs and tests (default: 0)" in text
    assert "{attentional,residual,ensemble}" in text and "(default: 64)" in text
