"""Nothing crashes, hangs or lies: a corpus of bad and odd inputs through the real command line,
with every detector, each call under a timeout; and the fault cases around it (FIFOs, devices,
huge sparse files, symlink loops, edited model cards, broken pipes, failed writes, Ctrl-C)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from faceage_tf.runtime import FaceAgePredictor, ImageError

try:
    import cv2  # noqa: F401
    DETECTORS = ("none", "blazeface", "haar")
except ImportError:
    DETECTORS = ("none", "blazeface")

# Runs the CLI and reports its own peak memory (KiB) on the last stderr line.
MEASURED_CLI = ("import resource, sys\nfrom faceage_tf.cli import main\nstatus = main(sys.argv[1:])\n"
                "print('peak_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(status)")
TIMEOUT = 240


def save(image, path, fmt=None, **options):
    image.save(path, fmt, **options)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, faces, aaf_photos, png_header_only):
    """About 40 inputs, most of them bad, in one folder (and a few given by path only)."""
    folder = tmp_path_factory.mktemp("corpus")
    face = Image.open(faces[0]).convert("RGB")
    photo = Image.open(aaf_photos[0]).convert("RGB")
    inputs = [shutil.copy(faces[0], folder / "good_face.jpg"), shutil.copy(aaf_photos[0], folder / "good_photo.jpg")]
    inputs.append(save(photo.convert("L"), folder / "grey_photo.png"))
    inputs.append(save(photo.resize((3000, 3400)), folder / "large_photo.jpg", quality=80))
    for w, h in ((1, 1), (1, 300), (300, 1), (2, 20000), (20000, 2), (7, 5), (3, 4000)):
        inputs.append(save(Image.new("RGB", (w, h), (120, 90, 80)), folder / f"shape_{w}x{h}.png"))
    inputs.append(save(Image.new("RGB", (640, 480)), folder / "black.png"))
    inputs.append(save(face.convert("CMYK"), folder / "cmyk.jpg"))
    inputs.append(save(face.convert("P"), folder / "palette.gif"))
    inputs.append(save(face.convert("RGBA"), folder / "alpha.png"))
    inputs.append(save(face.convert("I;16"), folder / "sixteen_bit.png"))
    inputs.append(save(Image.fromarray(np.full((50, 50), np.inf, np.float32), "F"), folder / "float_inf.tif"))
    inputs.append(save(Image.fromarray(np.full((50, 50), -3.0, np.float32), "F"), folder / "float_negative.tif"))
    inputs.append(save(Image.fromarray(np.linspace(0, 1, 2500, dtype=np.float32).reshape(50, 50), "F"), folder / "float_ok.tif"))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    inputs.append(save(photo, folder / "exif_rotated.jpg", exif=exif))
    raw = (folder / "good_face.jpg").read_bytes()
    for name, data in (("empty.jpg", b""), ("truncated.jpg", raw[:len(raw) // 3]), ("text.png", b"not an image at all"),
                       ("random.jpg", np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()),
                       ("bomb.png", png_header_only(40_000, 40_000)), ("zeros.jpg", bytes(10_000))):
        (folder / name).write_bytes(data)
        inputs.append(folder / name)
    os.mkfifo(folder / "fifo.jpg")
    os.symlink(folder / "loop_b.jpg", folder / "loop_a.jpg")
    os.symlink(folder / "loop_a.jpg", folder / "loop_b.jpg")
    os.symlink(folder / "gone.jpg", folder / "dangling.jpg")
    os.symlink("/dev/zero", folder / "dev_zero.jpg")
    with open(folder / "sparse_3gb.jpg", "wb") as f:
        f.truncate(3 * 10**9)
    (folder / "folder.jpg").mkdir()
    inputs += [folder / n for n in ("fifo.jpg", "loop_a.jpg", "dangling.jpg", "dev_zero.jpg", "sparse_3gb.jpg", "folder.jpg")]
    inputs += [folder / "missing.jpg", "/dev/zero"]
    return folder, [str(p) for p in inputs]


def run_measured(args, timeout=TIMEOUT, **kwargs):
    return subprocess.run([sys.executable, "-c", MEASURED_CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


@pytest.mark.parametrize("detector", DETECTORS)
def test_every_input_gets_one_json_line_and_nothing_crashes(corpus, detector):
    folder, inputs = corpus
    result = run_measured(["predict", "--json", "--no-progress", "--detector", detector, *inputs])
    assert "Traceback" not in result.stderr, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in records] == inputs
    errors = {os.path.basename(r["file"]): r["error"] for r in records if "error" in r}
    expected = {"fifo.jpg": "not a regular file (a FIFO)", "dev_zero.jpg": "not a regular file (a device)",
                "zero": "not a regular file (a device)", "sparse_3gb.jpg": "file too large (3,000,000,000 bytes",
                "loop_a.jpg": "symbolic link loop", "dangling.jpg": "no such file", "missing.jpg": "no such file",
                "folder.jpg": "folder has no image files", "empty.jpg": "empty file", "bomb.png": "decompression bomb",
                "float_inf.tif": "non-finite values", "float_negative.tif": "negative values",
                "text.png": "not an image", "zeros.jpg": "not an image"}
    for name, message in expected.items():
        assert message in errors[name], (name, errors.get(name))
    assert all(r["error"].startswith(r["file"] + ":") for r in records if "error" in r)
    found = {os.path.basename(r["file"]): r["faces"] for r in records if "faces" in r}
    assert len(found) == len(inputs) - len(errors) >= 18
    if detector != "none":
        assert found["good_photo.jpg"] and found["large_photo.jpg"]
        if detector == "blazeface":  # EXIF turns this photo on its side: BlazeFace still finds the face
            assert found["exif_rotated.jpg"] and found["grey_photo.png"]
        assert all(r["note"].startswith("no face found") for r in records if r.get("faces") == [])
    peak_mib = int(result.stderr.split("peak_kib")[-1]) / 1024
    print(f"detector {detector}: {len(inputs)} inputs, peak memory {peak_mib:.0f} MiB")
    assert peak_mib < 1024, peak_mib
    assert result.returncode == 0


def test_a_bad_model_file_is_refused_without_reading_it(corpus):
    folder, _ = corpus
    for model, message in ((folder / "fifo.jpg", "not a regular file (a FIFO)"), ("/dev/zero", "not a regular file (a device)"),
                           (folder / "sparse_3gb.jpg", "file too large")):
        result = run_measured(["predict", "--model", model, folder / "good_face.jpg"], timeout=60)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_predict_batch_returns_per_item_errors(faces, tmp_path):
    predictor = FaceAgePredictor(detector="none")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 nope")
    results = predictor.predict_batch([faces[0], str(broken), faces[1]], errors="return")
    assert isinstance(results[1], ImageError) and str(broken) in str(results[1])
    assert [r.age for r in (results[0], results[2])] == pytest.approx([p.age for p in predictor.predict_batch(faces[:2])])
    with pytest.raises(ImageError, match="broken.jpg"):
        predictor.predict_batch([faces[0], str(broken)])
    with pytest.raises(ValueError, match="errors must be"):
        predictor.predict_batch([faces[0]], errors="ignore")


def test_a_reader_that_goes_away_ends_the_command_quietly(corpus):
    folder, _ = corpus
    for command in ("predict --json --detector none", "info"):
        shell = f"set -o pipefail; {sys.executable} -m faceage_tf.cli {command} {folder if 'predict' in command else ''} | head -1"
        result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=TIMEOUT)
        assert result.returncode == 0 and "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
        assert len(result.stdout.splitlines()) == 1


def test_annotate_never_overwrites_its_input_or_leaves_half_a_file(aaf_photos, tmp_path):
    photo = shutil.copy(aaf_photos[1], tmp_path / "photo.jpg")
    before = open(photo, "rb").read()
    refused = run_measured(["annotate", photo, photo], timeout=120)
    assert refused.returncode == 1 and "refusing to overwrite" in refused.stderr and open(photo, "rb").read() == before
    assert run_measured(["annotate", "--overwrite", photo, photo], timeout=120).returncode == 0
    assert open(photo, "rb").read() != before and Image.open(photo).size == Image.open(aaf_photos[1]).size

    def small_file_limit():  # as a full disk would: writes past 20 kB fail (Python ignores SIGXFSZ)
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    out = tmp_path / "annotated.png"
    failed = run_measured(["annotate", aaf_photos[1], out], timeout=120, preexec_fn=small_file_limit)
    assert failed.returncode == 1 and "cannot write the annotated image" in failed.stderr, failed.stderr
    assert not out.exists() and os.listdir(tmp_path) == ["photo.jpg"]  # no truncated file, no temporary file


def test_thread_counts_are_validated_before_anything_loads(corpus):
    folder, _ = corpus
    result = run_measured(["predict", "--threads", "99999999999", folder / "good_face.jpg"], timeout=60)
    assert result.returncode == 2 and "must be an integer from 1 to 64" in result.stderr and len(result.stderr) < 2000
    with pytest.raises(ValueError, match="from 1 to 64"):
        FaceAgePredictor(num_threads=10**11)


def test_ctrl_c_at_any_time_ends_quietly(corpus):
    """Ctrl-C from start-up to the last line (when the interpreters are being freed) ends quietly.

    Times are spread over a whole run measured here, so a fast machine is also hit at the end.
    They start after Python has imported the CLI: before that, no program's code can catch it.
    """
    folder, _ = corpus
    command = [sys.executable, "-m", "faceage_tf.cli", "predict", str(folder)]

    def seconds(args):
        started = time.monotonic()
        subprocess.run(args, capture_output=True, timeout=120)
        return time.monotonic() - started

    import_time = 2 * seconds([sys.executable, "-c", "import faceage_tf.cli"])
    whole_run = seconds(command)
    for fraction in (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.98, 1.0):
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(import_time + fraction * max(whole_run - import_time, 0.0))
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        assert "Traceback" not in err, (fraction, err)
        assert child.returncode in (130, -signal.SIGINT, 0), (fraction, child.returncode)


def test_ctrl_c_inside_a_finalizer_after_the_run_is_quiet(corpus):
    """The case a spread of times rarely hits: Ctrl-C while an interpreter's __del__ runs."""
    folder, _ = corpus
    script = ("import os, signal, sys\nfrom faceage_tf.cli import main\nstatus = main(sys.argv[1:])\n"
              "class Interpreter:\n    def __del__(self):\n        os.kill(os.getpid(), signal.SIGINT)\n"
              "Interpreter()\nsys.exit(status)\n")
    result = subprocess.run([sys.executable, "-c", script, "predict", str(folder / "good_face.jpg")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file: a permission error cannot happen here")
def test_permission_denied_is_named(tmp_path, faces):
    locked = shutil.copy(faces[0], tmp_path / "locked.jpg")
    os.chmod(locked, 0)
    with pytest.raises(ImageError, match="permission denied"):
        FaceAgePredictor(detector="none").predict(locked)


def test_the_interpreters_log_lines_are_held_back(run_cli, faces):
    quiet = run_cli("predict", "--detector", "blazeface", faces[0])
    assert "XNNPACK" not in quiet.stderr and "INFO:" not in quiet.stderr, quiet.stderr
    verbose = run_cli("--verbose", "predict", "--detector", "blazeface", faces[0])
    assert verbose.returncode == 0


def test_no_face_says_why_in_every_output(tmp_path, run_cli):
    sky = save(Image.new("RGB", (400, 300), (90, 140, 220)), tmp_path / "sky.png")
    record = json.loads(run_cli("predict", "--json", sky).stdout)
    assert record["faces"] == [] and "--detector none" in record["note"]
    assert "--detector none" in run_cli("predict", sky).stdout
