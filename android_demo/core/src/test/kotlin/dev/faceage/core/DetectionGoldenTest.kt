package dev.faceage.core

import org.junit.Assume.assumeTrue
import org.junit.Before
import org.junit.Test
import java.io.File
import kotlin.math.abs
import kotlin.test.assertEquals
import kotlin.test.assertTrue

/**
 * Detection and alignment agree with Python (`faceage_tf.runtime.blazeface`, `faceage_tf.align`,
 * Pillow): golden vectors from real faces and photos, written by `python -m faceage_tf.golden`.
 * The raw detector outputs come from the bundled BlazeFace model run in Python; from them on
 * everything is computed here. Skipped (with the reason) when the vectors are absent.
 */
class DetectionGoldenTest {
    private lateinit var dir: File
    private lateinit var cases: List<Map<*, *>>
    private lateinit var pillow: Map<*, *>
    private lateinit var detector: List<Map<*, *>>
    private val card = ModelCard.fromTflite(TestFiles.modelBytes())

    @Before
    fun load() {
        assumeTrue(TestFiles.goldenSkipReason, TestFiles.goldenDir != null)
        dir = TestFiles.goldenDir!!
        val golden = Json.parse(File(dir, "golden.json").readText()) as Map<*, *>
        assumeTrue("golden vectors have no detector cases (regenerate them)", golden["detection"] != null)
        cases = (golden["detection"] as List<*>).map { it as Map<*, *> }
        pillow = golden["pillow"] as Map<*, *>
        detector = (golden["detector"] as List<*>).map { it as Map<*, *> }
    }

    private fun ints(name: Any?) = TestFiles.readInts(File(dir, name as String))
    private fun floats(name: Any?) = TestFiles.readFloats(File(dir, name as String))
    private fun list(value: Any?) = (value as List<*>).map { (it as Double) }.toDoubleArray()
    private fun int(value: Any?) = (value as Double).toInt()
    private fun image(entry: Map<*, *>) = RgbImage(int(entry["width"]), int(entry["height"]), ints(entry["argb"]))
    private fun spec(model: Any?) = if (model == "short") BlazeFaceSpec.SHORT_RANGE else BlazeFaceSpec.FULL_RANGE

    /** Pixels that differ in R, G or B (alpha is ignored: Python has none). */
    private fun differing(expected: IntArray, actual: IntArray): Int {
        assertEquals(expected.size, actual.size, "pixel count")
        return expected.indices.count { (expected[it] xor actual[it]) and 0xFFFFFF != 0 }
    }

    private fun assertClose(expected: DoubleArray, actual: FloatArray, tolerance: Double, what: String) {
        assertEquals(expected.size, actual.size, "$what: count")
        val worst = expected.indices.maxOfOrNull { abs(expected[it] - actual[it]) } ?: 0.0
        assertTrue(worst <= tolerance, "$what: differs by up to $worst (tolerance $tolerance)")
    }

    private fun flatten(detections: List<Detection>, part: (Detection) -> FloatArray) =
        detections.flatMap { part(it).toList() }.toFloatArray()

    @Test
    fun pillowResizeIsBitExact() {
        val source = image(pillow)
        for (r in pillow["resize"] as List<*>) {
            r as Map<*, *>
            val out = Pillow.resize(source, int(r["width"]), int(r["height"]), r["reducing_gap"] as Double?)
            assertEquals(0, differing(ints(r["argb"]), out.pixels), "resize to ${r["width"]}x${r["height"]} (reducing gap ${r["reducing_gap"]}): pixels differ")
        }
    }

    @Test
    fun pillowAffineIsBitExact() {
        val source = image(pillow)
        for (a in pillow["affine"] as List<*>) {
            a as Map<*, *>
            val side = int(a["side"])
            val out = Pillow.affine(source, side, side, list(a["data"]))
            assertEquals(0, differing(ints(a["argb"]), out.pixels), "affine ${a["data"]}: pixels differ")
        }
    }

    @Test
    fun letterboxedInputIsBitExact() {
        for (case in cases) {
            val spec = spec(case["model"])
            val tensor = FloatArray(spec.inputSize * spec.inputSize * 3)
            val placement = BlazeFace.letterbox(image(case), spec.inputSize, case["margin"] as Double, tensor)
            val expected = floats(case["input"])
            val off = expected.indices.count { expected[it] != tensor[it] }
            assertEquals(0, off, "${case["source"]} (${case["model"]}, margin ${case["margin"]}): input values differ")
            val lb = case["letterbox"] as Map<*, *>
            assertEquals(Letterbox(int(lb["size"]), lb["scale_x"] as Double, lb["scale_y"] as Double, int(lb["offset_x"]), int(lb["offset_y"])), placement)
        }
    }

    @Test
    fun decodingAndNmsAgreeWithin1e5() {
        var clusters = 0
        for (case in cases) {
            val name = "${case["source"]} (${case["model"]})"
            val spec = spec(case["model"])
            val decoded = BlazeFace.decode(floats(case["raw_boxes"]), floats(case["raw_scores"]), spec)
            val want = case["decoded"] as Map<*, *>
            assertClose(list(want["boxes"]), flatten(decoded) { it.box }, 1e-5, "$name decoded boxes")
            assertClose(list(want["keypoints"]), flatten(decoded) { it.keypoints }, 1e-5, "$name decoded keypoints")
            assertClose(list(want["scores"]), decoded.map { it.score }.toFloatArray(), 1e-5, "$name decoded scores")
            val faces = BlazeFace.weightedNms(decoded)
            val nms = case["nms"] as Map<*, *>
            assertClose(list(nms["boxes"]), flatten(faces) { it.box }, 1e-5, "$name boxes after NMS")
            assertClose(list(nms["keypoints"]), flatten(faces) { it.keypoints }, 1e-5, "$name keypoints after NMS")
            assertClose(list(nms["scores"]), faces.map { it.score }.toFloatArray(), 1e-5, "$name scores after NMS")
            clusters += decoded.size - faces.size
            // In image pixels: 1e-5 of the input side, scaled up by the letterbox.
            val lb = case["letterbox"] as Map<*, *>
            val placement = Letterbox(int(lb["size"]), lb["scale_x"] as Double, lb["scale_y"] as Double, int(lb["offset_x"]), int(lb["offset_y"]))
            val inImage = faces.map(placement::toImage)
            val tolerance = 1e-5 * placement.size / minOf(placement.scaleX, placement.scaleY)
            val px = case["image"] as Map<*, *>
            assertClose(list(px["boxes"]), inImage.flatMap { it.box.map(Double::toFloat) }.toFloatArray(), tolerance, "$name boxes in pixels")
            assertClose(list(px["keypoints"]), inImage.flatMap { it.keypoints.map(Double::toFloat) }.toFloatArray(), tolerance, "$name keypoints in pixels")
        }
        assertTrue(clusters > 0, "no detections were merged: the NMS was not exercised")
        assertTrue(cases.any { (it["nms"] as Map<*, *>).let { n -> (n["scores"] as List<*>).size >= 2 } }, "no case with two faces")
    }

    @Test
    fun faceFinderChoosesPassesAsPython() {
        for (want in detector) {
            val source = want["source"]
            val mine = cases.filter { it["source"] == source }
            val ran = ArrayList<String>()
            // Replays the model outputs recorded in Python for the same input tensor.
            val finder = FaceFinder { spec, input ->
                val case = mine.firstOrNull { c -> c["model"] == spec.name && floats(c["input"]).contentEquals(input) }
                    ?: throw AssertionError("$source: no recorded ${spec.name}-range pass has this input")
                ran += "${spec.name} ${case["margin"]}"
                floats(case["raw_boxes"]) to floats(case["raw_scores"])
            }
            val faces = finder.detect(image(mine[0]))
            val boxes = (want["boxes"] as List<*>).flatMap { list(it).toList() }.toDoubleArray()
            val keypoints = (want["keypoints"] as List<*>).flatMap { list(it).toList() }.toDoubleArray()
            val name = "$source (passes: ${ran.joinToString()})"
            assertClose(boxes, faces.flatMap { it.box.map(Double::toFloat) }.toFloatArray(), 1e-2, "$name boxes")
            assertClose(keypoints, faces.flatMap { it.keypoints.map(Double::toFloat) }.toFloatArray(), 1e-2, "$name keypoints")
            assertClose(list(want["scores"]), faces.map { it.score }.toFloatArray(), 1e-5, "$name scores")
            assertTrue(faces.isNotEmpty(), "$name: no face found")
        }
        assertTrue(detector.size >= 4, "too few images for the detector")
    }

    private fun template(alignment: Map<*, *>) =
        FaceTemplate((alignment["template"] as List<*>).map { p -> (p as List<*>).let { (it[0] as Double) to (it[1] as Double) } })

    @Test
    fun alignedCropFromPythonsTransformIsBitExact() {
        for (case in cases) {
            val a = case["alignment"] as? Map<*, *> ?: continue
            val crop = Alignment.cropWith(image(case), list(a["inverse"]), int(a["side"]), int(a["size"]))
            assertEquals(0, differing(ints(a["crop"]), crop.pixels), "${case["source"]}: aligned crop pixels differ")
        }
    }

    @Test
    fun alignmentFromKeypointsMatchesPython() {
        var checked = 0
        for (case in cases) {
            val a = case["alignment"] as? Map<*, *> ?: continue
            val keypoints = list(a["keypoints"])
            val size = int(a["size"])
            val t = Alignment.cropTransform(keypoints, template(a), size)
            assertEquals(int(a["side"]), t.side, "${case["source"]}: intermediate crop side")
            // numpy's SIMD complex arithmetic and LAPACK's inverse round differently in the last bits.
            assertClose(list(a["forward"]), t.forward.map { it.toFloat() }.toFloatArray(), 1e-4, "${case["source"]} forward transform")
            // Python's coefficients come from numpy's SIMD complex arithmetic and LAPACK, ours from
            // plain doubles: equal to ~1e-15, which has left every pixel unchanged on these faces.
            val crop = Alignment.alignFace(image(case), keypoints, template(a), size)
            assertEquals(0, differing(ints(a["crop"]), crop.pixels), "${case["source"]}: aligned crop pixels differ from Python's")
            val tensor = Preprocessor(card).toTensor(crop.pixels)
            val want = floats(a["tensor"])
            assertEquals(0, want.indices.count { want[it] != tensor[it] }, "${case["source"]}: model input differs from Python's")
            checked++
        }
        assertTrue(checked >= 4, "only $checked aligned faces in the golden vectors")
    }
}
