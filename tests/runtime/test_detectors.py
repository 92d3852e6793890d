"""Faces in photos: the bundled BlazeFace on real faces pasted at known places, sizes and angles
into larger real photos; alignment that does not depend on where and how the face lies; Haar and
custom detectors; images of extreme shapes for every detector."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from faceage_tf.align import align_face, crop_corners, crop_transform, reflect_index
from faceage_tf.preprocess import resize_face
from faceage_tf.runtime import DETECTOR_CHOICES, DetectorError, Face, FaceAgePredictor
from faceage_tf.runtime import blazeface
from faceage_tf.runtime.detectors import BlazeFaceDetector
from faceage_tf.schema import Schema

try:
    import cv2  # noqa: F401
    HAVE_OPENCV = True
except ImportError:
    HAVE_OPENCV = False

CANVAS = (1200, 900)
# (photo width as a fraction of the canvas width, rotation in degrees, (left, top) as fractions):
# three faces per scene, large and small, upright and turned. The smallest face box is about 12%
# of the canvas width, where the detector's documented range starts (BlazeFaceDetector).
PLACEMENTS = (
    ((0.45, 0, (0.02, 0.05)), (0.3, 0, (0.6, 0.04)), (0.3, 15, (0.55, 0.5))),
    ((0.35, -20, (0.02, 0.35)), (0.32, 0, (0.4, 0.02)), (0.3, 10, (0.68, 0.5))),
)


def iou(a, b):
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def paste(canvas, photo, width_fraction, angle, corner):
    """Pastes `photo` scaled and rotated (about its centre, counter-clockwise) onto `canvas`;
    returns the function mapping the photo's pixel coordinates to the canvas's."""
    scale = width_fraction * canvas.width / photo.width
    resized = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BICUBIC)
    mask = Image.new("L", resized.size, 255)
    rotated, mask = resized.rotate(angle, Image.BICUBIC, expand=True), mask.rotate(angle, Image.BICUBIC, expand=True)
    left, top = round(corner[0] * canvas.width), round(corner[1] * canvas.height)
    canvas.paste(rotated, (left, top), mask)
    theta = np.deg2rad(angle)
    rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])  # y points down

    def to_canvas(points):
        centred = np.asarray(points, np.float64) * scale - np.array(resized.size) / 2
        return centred @ rotation.T + np.array(rotated.size) / 2 + np.array([left, top])

    return to_canvas


@pytest.fixture(scope="module")
def detector():
    return BlazeFaceDetector(num_threads=1)


@pytest.fixture(scope="module")
def scenes(aaf_photos, detector):
    """Photos with three real faces each: (canvas, expected keypoints per face, expected box or None
    for turned faces). Expected values are where BlazeFace finds each face in its own photo,
    carried through the known paste transform."""
    result = []
    for k, placements in enumerate(PLACEMENTS):
        background = Image.new("RGB", CANVAS)
        for i, path in enumerate(aaf_photos[20 + 4 * k:24 + 4 * k]):  # a blurred mosaic of other real photos
            tile = Image.open(path).convert("RGB").resize((CANVAS[0] // 2, CANVAS[1] // 2))
            background.paste(tile, ((i % 2) * CANVAS[0] // 2, (i // 2) * CANVAS[1] // 2))
        canvas = background.filter(ImageFilter.GaussianBlur(30))
        expected = []
        for path, (width, angle, corner) in zip(aaf_photos[3 * k:3 * k + 3], placements):
            photo = Image.open(path).convert("RGB")
            (face,) = detector.detect(photo)[:1]
            to_canvas = paste(canvas, photo, width, angle, corner)
            box = np.concatenate(to_canvas(np.reshape(face.box, (2, 2)))) if angle == 0 else None
            expected.append((to_canvas(face.keypoints), box))
        result.append((canvas, expected))
    return result


def test_anchor_layouts_match_the_models():
    for spec in blazeface.SPECS.values():
        model = blazeface.BlazeFace(spec.name)
        boxes, scores = model.raw(np.zeros((1, spec.input_size, spec.input_size, 3), np.float32))
        assert len(blazeface.anchor_centres(spec)) == len(boxes) == len(scores)


def test_every_pasted_face_is_found_where_it_was_put(scenes, detector):
    for canvas, expected in scenes:
        faces = detector.detect(canvas)
        assert len(faces) == len(expected), [f.box for f in faces]
        for keypoints, box in expected:
            eye_distance = np.linalg.norm(keypoints[0] - keypoints[1])
            errors = [np.linalg.norm(f.keypoints[:4] - keypoints[:4], axis=1).mean() for f in faces]
            best = faces[int(np.argmin(errors))]
            # Keypoints within a quarter of the eye distance, boxes within IoU 0.6 (upright faces):
            # the reference itself comes from the detector on a photo of another size.
            assert min(errors) < 0.25 * eye_distance, (min(errors), eye_distance)
            if box is not None:
                assert iou(best.box, box) > 0.6, (best.box, box)
            assert best.score > 0.6


def test_alignment_does_not_depend_on_position_angle_or_scale(aaf_photos, detector):
    """A face and the same photo turned by 20 degrees and scaled 1.5x give the same aligned crop:
    its corners agree within 3.5 pixels of the 64 px crop, its pixels within 12 of 255 on average
    (what remains is the detector's keypoint noise and resampling twice)."""
    template = Schema().template
    for path in aaf_photos[:6]:
        photo = Image.open(path).convert("RGB")
        canvas = Image.new("RGB", (2 * photo.width, 2 * photo.height))
        to_canvas = paste(canvas, photo, 1.5 * photo.width / canvas.width, 20, (0.05, 0.05))
        found = [detector.detect(image)[0].keypoints for image in (photo, canvas)]
        corners = crop_corners(found[1], template, 64)
        crop_pixel = np.linalg.norm(corners[1] - corners[0]) / 64  # canvas pixels per crop pixel
        error = np.linalg.norm(to_canvas(crop_corners(found[0], template, 64)) - corners, axis=1) / crop_pixel
        assert error.max() < 3.5, error
        crops = [np.asarray(align_face(image, points, template, 64), np.float64) for image, points in zip((photo, canvas), found)]
        assert np.abs(crops[0] - crops[1]).mean() < 12, np.abs(crops[0] - crops[1]).mean()


def test_a_zoomed_template_aligns_as_the_zoomed_crop(aaf_photos, detector):
    """A card's template zoomed by 1.05 (how an export serves a looser framing) gives the crop
    that aligning to the template at zoom 1.05 gives: the same transform, up to the template's
    six decimals."""
    template = Schema().template
    assert template.zoomed(1.0) == template
    wider = template.zoomed(1.05)
    eyes = [np.subtract(*t.keypoints[:2]) for t in (template, wider)]
    assert np.hypot(*eyes[1]) == pytest.approx(np.hypot(*eyes[0]) / 1.05, abs=1e-5)
    for path in aaf_photos[:4]:
        photo = Image.open(path).convert("RGB")
        points = detector.detect(photo)[0].keypoints
        np.testing.assert_allclose(crop_corners(points, wider, 64), crop_corners(points, template, 64, zoom=1.05),
                                   atol=1e-3)
        crops = [np.asarray(align_face(photo, points, t, 64, zoom=z), np.int32)
                 for t, z in ((wider, 1.0), (template, 1.05))]
        assert np.abs(crops[0] - crops[1]).max() <= 1


def test_aligning_a_utkface_crop_gives_back_the_crop(utkface_files, detector):
    """The template is UTKFace's framing: the aligned crop is close to the crop itself, and the
    model says the same of both."""
    crops_predictor = FaceAgePredictor(detector="none")
    template = Schema().template  # the training template (the card's may serve a looser framing)
    aligned, originals = [], []
    for path in utkface_files[:24]:
        image = Image.open(path).convert("RGB")
        aligned.append(align_face(image, detector.detect(image)[0].keypoints, template, 64))
        originals.append(Image.fromarray(resize_face(image, 64)))
    pixels = np.abs(np.stack([np.asarray(a, np.float64) - np.asarray(o, np.float64) for a, o in zip(aligned, originals)]))
    assert np.median(pixels.mean(axis=(1, 2, 3))) < 20
    ages = [abs(a.age - o.age) for a, o in zip(crops_predictor.predict_batch(aligned), crops_predictor.predict_batch(originals))]
    assert np.median(ages) < 2.5, ages


def test_a_face_at_the_edge_is_aligned_as_in_the_image_extended_by_reflection(utkface_files, aaf_photos, detector):
    """UTKFace's crops end just around the face: the aligned crop reads past the image. It is the
    crop of the same face in the image padded by reflection (as training's crops were cut), not
    black; a face well inside a photo gives exactly the plain affine crop."""
    template = FaceAgePredictor(detector="none").schema.template
    past_the_edge = 0
    for path in utkface_files[:24]:
        image = Image.open(path).convert("RGB")
        points = detector.detect(image)[0].keypoints
        crop = np.asarray(align_face(image, points, template, 64), np.int32)
        padded = Image.fromarray(np.pad(np.asarray(image), ((150, 150), (150, 150), (0, 0)), mode="reflect"))
        reference = np.asarray(align_face(padded, points + 150, template, 64), np.int32)
        assert np.abs(crop - reference).max() <= 6 and np.abs(crop - reference).mean() < 0.05
        black_filled = np.asarray(plain_crop(image, points, template), np.int32)
        if not np.array_equal(crop, black_filled):
            past_the_edge += 1
            assert crop.mean() > black_filled.mean()
    assert past_the_edge >= 3
    photo = Image.open(aaf_photos[0]).convert("RGB")
    points = detector.detect(photo)[0].keypoints
    assert np.array_equal(np.asarray(align_face(photo, points, template, 64)), np.asarray(plain_crop(photo, points, template)))


def plain_crop(image, points, template):
    """The affine crop without reflection: black outside the image."""
    forward, side = crop_transform(points, template, 64)
    inverse = np.linalg.inv(np.vstack([forward, [0.0, 0.0, 1.0]]))[:2]
    crop = image.transform((side, side), Image.AFFINE, tuple(inverse.reshape(-1)), resample=Image.BILINEAR)
    return crop.resize((64, 64), Image.BILINEAR) if side != 64 else crop


def test_reflection_indexes_are_numpys_and_nonsense_keypoints_stay_cheap(utkface_files):
    for length in (1, 2, 5):
        for pad in (1, 4, 11):
            expected = np.pad(np.arange(length), pad, mode="reflect")
            assert np.array_equal(reflect_index(np.arange(-pad, length + pad), length), expected), (length, pad)
    image = Image.open(utkface_files[0]).convert("RGB")
    template = FaceAgePredictor(detector="none").schema.template
    huge = np.array([[-1e7, -1e7], [1e7, -1e7], [0.0, 0.0], [0.0, 1e7]])  # a "face" far larger than the image
    far = np.array([[1e9, 1e9], [1e9 + 20, 1e9], [1e9 + 10, 1e9 + 12], [1e9 + 10, 1e9 + 24]])  # far outside it
    for points in (huge, far):
        assert np.asarray(align_face(image, points, template, 64)).shape == (64, 64, 3)


def test_the_example_photo_has_one_face_well_inside_it(photo_predictor):
    (face,) = photo_predictor.predict("examples/astronaut.jpg")
    image = Image.open("examples/astronaut.jpg")
    left, top, right, bottom = face.box
    assert 0 < left < right < image.width and 0 < top < bottom < image.height
    assert (right - left) * (bottom - top) < 0.5 * image.width * image.height  # a face, not the photo
    assert len(face.keypoints) == 6 and face.detection_score > 0.8
    assert face.gender == "female"  # NASA's portrait of Eileen Collins


def test_tight_crops_are_found_too(utkface_files, detector):
    found = [bool(detector.detect(Image.open(p).convert("RGB"))) for p in utkface_files]
    assert np.mean(found) >= 0.98, found


class KnownFaces:
    """A detector that returns given faces: stands for any object with `detect(image) -> faces`."""

    def __init__(self, faces):
        self.faces = faces

    def detect(self, image):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        return self.faces


def test_a_custom_detector_with_keypoints_is_aligned_like_blazeface(aaf_photos, detector):
    photo = Image.open(aaf_photos[5]).convert("RGB")
    found = detector.detect(photo)
    ours = FaceAgePredictor(detector=detector).predict(photo)
    custom = FaceAgePredictor(detector=KnownFaces([Face(f.box, None, f.keypoints) for f in found])).predict(photo)
    assert [f.age for f in custom] == pytest.approx([f.age for f in ours], abs=1e-4)
    boxes_only = FaceAgePredictor(detector=KnownFaces([f.box for f in found])).predict(photo)
    assert boxes_only[0].keypoints is None and boxes_only[0].box == pytest.approx(found[0].box)


def test_no_face_and_bad_detector_output(aaf_photos):
    photo = Image.open(aaf_photos[0])
    assert FaceAgePredictor(detector=KnownFaces([])).predict(photo) == []
    with pytest.raises(DetectorError, match="invalid box"):
        FaceAgePredictor(detector=KnownFaces([(10, 10, 5, 20)])).predict(photo)
    with pytest.raises(DetectorError, match="invalid keypoints"):
        FaceAgePredictor(detector=KnownFaces([Face((1, 1, 50, 50), 0.9, np.full((6, 2), np.nan))])).predict(photo)
    with pytest.raises(DetectorError, match="detector must be one of"):
        FaceAgePredictor(detector="mtcnn")


def test_a_photo_without_a_face(detector):
    sky = Image.new("RGB", (400, 300), (90, 140, 220))
    assert detector.detect(sky) == []


@pytest.mark.parametrize("name", [n for n in DETECTOR_CHOICES if n != "haar" or HAVE_OPENCV])
def test_every_detector_copes_with_extreme_shapes(name):
    predictor = FaceAgePredictor(detector=name)
    for size in ((1, 1), (1, 300), (300, 1), (2, 20000), (20000, 2), (7, 5)):
        faces = predictor.predict(Image.new("RGB", size, (128, 100, 90)))
        assert len(faces) == (1 if name == "none" else 0), (name, size)


@pytest.mark.skipif(HAVE_OPENCV, reason="checks the error shown when OpenCV is missing")
def test_haar_without_opencv_is_a_clear_error():
    with pytest.raises(DetectorError, match=r"pip install 'faceage_tf\[detect\]'"):
        FaceAgePredictor(detector="haar")


@pytest.mark.skipif(not HAVE_OPENCV, reason="opencv-python-headless is not installed (extra 'detect')")
def test_haar_finds_most_pasted_faces(scenes):
    predictor = FaceAgePredictor(detector="haar")
    hits = []
    for canvas, expected in scenes:
        faces = predictor.predict(canvas)
        for keypoints, _ in expected:
            nose = keypoints[2]
            hits.append(any(f.box[0] < nose[0] < f.box[2] and f.box[1] < nose[1] < f.box[3] for f in faces))
    assert sum(hits) >= 4, hits  # Haar misses turned faces; BlazeFace above finds all six
