"""The runtime is a leaf: importing it (and the command line) never imports TensorFlow."""

import subprocess
import sys


def test_runtime_and_cli_do_not_import_tensorflow():
    code = ("import sys, faceage_tf, faceage_tf.runtime, faceage_tf.cli\n"
            "from faceage_tf.runtime import FaceAgePredictor\n"
            "FaceAgePredictor().predict_tensor(__import__('numpy').zeros((1, 64, 64, 3), 'float32'))\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))\n"
            "print(heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
