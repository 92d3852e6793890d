"""The `faceage` command on real files: as a real subprocess, and through `main()` for the many cases."""

import json
import os
import shutil
import sys

import pytest
from PIL import Image

from faceage_tf.cli import main


@pytest.fixture
def photo_folder(tmp_path, faces):
    """A folder of 3 real faces (one in a subfolder), a corrupt 'jpg' and a text file."""
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    for i, path in enumerate(faces[:3]):
        shutil.copy(path, folder / ("more" if i == 2 else "") / f"face{i}.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("ignored: not an image extension")
    return folder


def json_lines(text):
    return [json.loads(line) for line in text.splitlines()]


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "faceage")
    if not os.path.exists(script):
        pytest.skip("faceage_tf is not pip-installed in this environment")
    import subprocess
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "predict" in result.stdout


def test_predict_json_lines_in_a_subprocess(photo_folder, run_cli):
    result = run_cli("predict", "--json", "--detector", "none", photo_folder, photo_folder / "missing.jpg")
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert len(records) == 5  # 3 faces, broken.jpg, missing.jpg: one line per input
    by_name = {os.path.basename(r["file"]): r for r in records}
    broken = by_name["broken.jpg"]["error"]
    assert broken.startswith(str(photo_folder / "broken.jpg") + ":") and ("not an image" in broken or "truncated" in broken)
    assert by_name["missing.jpg"]["error"].endswith("missing.jpg: no such file")
    face = by_name["face2.jpg"]["faces"][0]
    assert face["box"] == [0.0, 0.0, 200.0, 200.0] and face["gender"] in ("male", "female")
    assert "5 input(s): 3 processed, 3 face(s), 2 error(s)" in result.stderr


def test_predict_table_and_glob(faces, tmp_path, capsys):
    for i, path in enumerate(faces[:2]):
        shutil.copy(path, tmp_path / f"a{i}.jpg")
    assert main(["predict", "--detector", "none", str(tmp_path / "a*.jpg"), str(tmp_path / "zz*.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["FILE", "FACE", "BOX"]
    assert out[1].startswith(str(tmp_path / "a0.jpg")) and " 0,0,200,200 " in out[1]
    assert "zz*.png: no file matches this pattern" in out[3]


def test_exit_status_is_1_only_when_nothing_was_processed(tmp_path, capsys, png_header_only):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(30_000, 30_000))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert main(["predict", "--json", str(bomb), str(empty), str(tmp_path / "nothing")]) == 1
    errors = [r["error"] for r in json_lines(capsys.readouterr().out)]
    assert errors[0].startswith(str(bomb)) and "decompression bomb" in errors[0]
    assert errors[1] == f"{empty}: empty file"
    assert errors[2] == f"{tmp_path / 'nothing'}: no such file"


def test_empty_folder_is_reported(tmp_path, capsys):
    assert main(["predict", str(tmp_path)]) == 1
    assert "folder has no image files" in capsys.readouterr().out


def test_a_bad_model_is_a_clear_error(tmp_path, faces, capsys):
    model = tmp_path / "model.tflite"
    model.write_bytes(b"nope")
    assert main(["predict", "--model", str(model), faces[0]]) == 1
    assert f"faceage: error: {model}: not a TFLite model" in capsys.readouterr().err


def test_progress_on_long_runs(faces, capsys):
    inputs = (faces * 7)[:50]
    assert main(["predict", "--json", "--detector", "none", *inputs]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 50
    assert "50/50" in captured.err


def test_annotate(faces, tmp_path, capsys):
    out = tmp_path / "annotated.png"
    assert main(["annotate", "--detector", "none", faces[0], str(out)]) == 0
    annotated = Image.open(out)
    assert annotated.size == Image.open(faces[0]).size
    assert annotated.getpixel((0, 0)) != Image.open(faces[0]).convert("RGB").getpixel((0, 0))  # the box is drawn
    assert main(["annotate", str(tmp_path / "missing.jpg"), str(out)]) == 1
    assert "missing.jpg: no such file" in capsys.readouterr().err
    assert main(["annotate", "--detector", "none", faces[0], str(tmp_path / "out.unknown")]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_info_and_bench_in_a_subprocess(run_cli):
    info = run_cli("info")
    assert info.returncode == 0 and "age groups" in info.stdout and "0-2, 3-9" in info.stdout
    card = json.loads(run_cli("info", "--json").stdout)
    assert card["schema"]["input_size"] == 64
    bench = run_cli("bench", "--runs", "5", "--threads", "1", "2", "--json")
    assert bench.returncode == 0, bench.stderr
    results = json.loads(bench.stdout)["results"]
    assert [r["threads"] for r in results] == [1, 2] and all(r["median_ms"] > 0 for r in results)


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["predict"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["predict", "--threads", "0", "x.jpg"])
