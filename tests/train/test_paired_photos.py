"""benchmarks/paired_photos.py on a few real held-out photos: its differences are the models' own."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "..", "shared", "data")


@pytest.mark.skipif(not all(os.path.isdir(os.path.join(DATA, name)) for name in ("utkface", "aaf")),
                    reason=f"real photos not found in {DATA} (utkface and aaf)")
def test_paired_photos_compares_each_model_with_the_first_on_the_same_faces(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "paired_photos.py"),
                             "--split", os.path.join(ROOT, "configs", "splits", "default.json"), "--part", "val",
                             "--model", "default", "--model", "small", "--average", "--limit", "12",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((tmp_path / "paired_photos.json").read_text())
    assert list(results) == ["AAF validation photos", "UTKFace validation crops"]
    for rows in results.values():
        assert list(rows) == ["default", "small", "average of all"]
        assert "against_reference" not in rows["default"]
        for name in ("small", "average of all"):
            for key in ("gender_accuracy", "age_group_accuracy", "age_mae"):
                paired = rows[name]["against_reference"][key]
                assert paired["difference"] == pytest.approx(rows[name][key] - rows["default"][key])
                assert paired["ci95"][0] <= paired["difference"] <= paired["ci95"][1]
    assert "| AAF validation photos | small | 12 |" in (tmp_path / "paired_photos.md").read_text()
