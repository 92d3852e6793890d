package dev.faceage.core

/**
 * Finds faces with the two BlazeFace models as the Python runtime does
 * (`faceage_tf.runtime.detectors.BlazeFaceDetector`), choosing the passes per photo:
 * 1. the short-range model on the whole image, keeping faces scoring at least [CONFIDENT]; if
 *    its widest face is at least [LARGE_FACE] of the image's longer side, that is the answer;
 * 2. otherwise the full-range model too (small faces in a wider shot), both merged by weighted
 *    non-maximum suppression;
 * 3. if neither finds a face, the short-range model again, at its own threshold, with a black
 *    border of [CROP_MARGIN]
 *    (a tight face crop lacks the context the detector was trained with).
 * Faces come largest first, in image pixels.
 *
 * @param run runs one model on a letterboxed input (NHWC floats) and returns its raw outputs:
 *   regressors (anchors x 16) and score logits (anchors). The app runs LiteRT here.
 */
class FaceFinder(private val run: (BlazeFaceSpec, FloatArray) -> Pair<FloatArray, FloatArray>) {
    // One input tensor per model, reused for every image.
    private val inputs = HashMap<String, FloatArray>()

    fun detect(image: RgbImage): List<Face> {
        var faces = pass(BlazeFaceSpec.SHORT_RANGE, image, 0.0, CONFIDENT)
        val widest = faces.maxOfOrNull { it.box[2] - it.box[0] } ?: 0.0
        if (widest < LARGE_FACE * maxOf(image.width, image.height)) {
            faces = merge(faces + pass(BlazeFaceSpec.FULL_RANGE, image, 0.0))
        }
        if (faces.isEmpty()) faces = pass(BlazeFaceSpec.SHORT_RANGE, image, CROP_MARGIN)
        return faces.sortedByDescending { (it.box[2] - it.box[0]) * (it.box[3] - it.box[1]) }
    }

    private fun pass(spec: BlazeFaceSpec, image: RgbImage, margin: Double, minScore: Float = spec.minScore): List<Face> {
        val input = inputs.getOrPut(spec.name) { FloatArray(spec.inputSize * spec.inputSize * 3) }
        val placement = BlazeFace.letterbox(image, spec.inputSize, margin, input)
        val (boxes, scores) = run(spec, input)
        return BlazeFace.weightedNms(BlazeFace.decode(boxes, scores, spec, minScore)).map(placement::toImage)
    }

    /** Both models' faces in image pixels, merged as Python merges them (float32 results). */
    private fun merge(faces: List<Face>): List<Face> =
        BlazeFace.weightedNms(faces.map { f -> Detection(f.box.toFloats(), f.keypoints.toFloats(), f.score) })
            .map { d -> Face(d.box.toDoubles(), d.keypoints.toDoubles(), d.score) }

    private fun DoubleArray.toFloats() = FloatArray(size) { this[it].toFloat() }
    private fun FloatArray.toDoubles() = DoubleArray(size) { this[it].toDouble() }

    companion object {
        /** Box width / longer side above which the short-range pass alone is trusted. */
        const val LARGE_FACE = 0.2

        /**
         * The first pass's threshold: faces in photos score at least 0.86, blurred backgrounds
         * give whole-photo false faces at 0.5-0.65 (measured in Python on AAF photos).
         */
        const val CONFIDENT = 0.75f

        /** Border added in the last pass, as a fraction of the longer side. */
        const val CROP_MARGIN = 0.25
    }
}
