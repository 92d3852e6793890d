package dev.faceage.core

import kotlin.math.exp
import kotlin.math.max
import kotlin.math.min

/**
 * One of MediaPipe's BlazeFace models (bundled in `faceage_tf/assets/blazeface/`): its file,
 * square input side, anchor layout and score threshold, as `faceage_tf.runtime.blazeface`.
 *
 * @param anchorLayers (stride, anchors per cell) per feature map, in output order.
 */
data class BlazeFaceSpec(val name: String, val file: String, val inputSize: Int, val anchorLayers: List<Pair<Int, Int>>, val minScore: Float) {
    /** Anchor centres as x, y pairs in [0, 1]: cells row by row, one cell's anchors together. */
    val anchors: FloatArray by lazy {
        val out = ArrayList<Float>()
        for ((stride, perCell) in anchorLayers) {
            val cells = (inputSize + stride - 1) / stride
            for (y in 0 until cells) for (x in 0 until cells) repeat(perCell) {
                out += ((x + 0.5) / cells).toFloat()
                out += ((y + 0.5) / cells).toFloat()
            }
        }
        out.toFloatArray()
    }

    val numAnchors: Int get() = anchors.size / 2

    companion object {
        const val NUM_KEYPOINTS = 6
        const val VALUES_PER_ANCHOR = 4 + 2 * NUM_KEYPOINTS
        const val NMS_IOU = 0.3f

        val SHORT_RANGE = BlazeFaceSpec("short", "face_detection_short_range.tflite", 128, listOf(8 to 2, 16 to 6), 0.5f)
        val FULL_RANGE = BlazeFaceSpec("full", "face_detection_full_range.tflite", 192, listOf(4 to 1), 0.6f)
    }
}

/**
 * One detected face: box (left, top, right, bottom), six keypoints as x, y pairs (right eye,
 * left eye, nose tip, mouth centre, right ear tragion, left ear tragion: the subject's right and
 * left) and score, in the coordinates of the step that made it (normalised input, or pixels).
 */
class Detection(val box: FloatArray, val keypoints: FloatArray, val score: Float)

/** Where the image sits in the detector's square input: image pixel = (input pixel - offset) / scale. */
data class Letterbox(val size: Int, val scaleX: Double, val scaleY: Double, val offsetX: Int, val offsetY: Int) {
    fun toImageX(x: Float): Double = (x.toDouble() * size - offsetX) / scaleX
    fun toImageY(y: Float): Double = (y.toDouble() * size - offsetY) / scaleY

    /** A detection in normalised input coordinates to image pixels (doubles, as numpy's float64). */
    fun toImage(d: Detection): Face {
        val box = doubleArrayOf(toImageX(d.box[0]), toImageY(d.box[1]), toImageX(d.box[2]), toImageY(d.box[3]))
        val keypoints = DoubleArray(d.keypoints.size) { i -> if (i % 2 == 0) toImageX(d.keypoints[i]) else toImageY(d.keypoints[i]) }
        return Face(box, keypoints, d.score)
    }
}

/** A face in image pixels: box (left, top, right, bottom), six keypoints as x, y pairs, score. */
class Face(val box: DoubleArray, val keypoints: DoubleArray, val score: Float)

/**
 * BlazeFace's pre- and post-processing, as `faceage_tf.runtime.blazeface` (numpy): letterboxing,
 * decoding of the raw outputs against the anchors, and MediaPipe's weighted non-maximum
 * suppression. The interpreter itself runs in the app (LiteRT).
 */
object BlazeFace {
    /** A large photo is first shrunk by an integer factor (Pillow's reducing_gap), as in Python. */
    const val REDUCING_GAP = 3.0

    /**
     * The detector's input (size x size x 3 floats in [-1, 1], NHWC) for an image: scaled to fit
     * with Pillow's BILINEAR resize with reducing gap [REDUCING_GAP] (aspect ratio kept), centred,
     * black around it. [margin] adds
     * a black border of that fraction of the longer side on every side first, so that a face
     * filling the whole image (a tight crop) is seen with surroundings.
     *
     * @param out reused between frames; its size must be size * size * 3.
     */
    fun letterbox(image: RgbImage, size: Int, margin: Double = 0.0, out: FloatArray = FloatArray(size * size * 3)): Letterbox {
        if (out.size != size * size * 3) throw FaceAgeException.BadInput("letterbox tensor holds ${out.size} floats, need ${size * size * 3}")
        if (!(margin >= 0.0 && margin <= 1.0)) throw FaceAgeException.BadInput("margin must be in 0..1, got $margin")
        val span = max(image.width, image.height) * (1.0 + 2.0 * margin)
        val newW = max(1, Math.rint(image.width.toLong() * size / span).toInt()) // Python's round: half to even
        val newH = max(1, Math.rint(image.height.toLong() * size / span).toInt())
        val offsetX = (size - newW) / 2
        val offsetY = (size - newH) / 2
        val resized = Pillow.resize(image, newW, newH, REDUCING_GAP)
        val black = 0f / 127.5f - 1f
        out.fill(black)
        for (y in 0 until newH) {
            for (x in 0 until newW) {
                val p = resized.pixels[y * newW + x]
                val i = ((y + offsetY) * size + x + offsetX) * 3
                out[i] = ((p shr 16) and 0xFF).toFloat() / 127.5f - 1f
                out[i + 1] = ((p shr 8) and 0xFF).toFloat() / 127.5f - 1f
                out[i + 2] = (p and 0xFF).toFloat() / 127.5f - 1f
            }
        }
        return Letterbox(size, newW.toDouble() / image.width, newH.toDouble() / image.height, offsetX, offsetY)
    }

    /**
     * Raw outputs (numAnchors x 16 regressors, numAnchors score logits) to the detections scoring
     * at least [minScore], in anchor order, in normalised input coordinates.
     */
    fun decode(rawBoxes: FloatArray, rawScores: FloatArray, spec: BlazeFaceSpec, minScore: Float = spec.minScore): List<Detection> {
        val n = spec.numAnchors
        if (rawBoxes.size != n * BlazeFaceSpec.VALUES_PER_ANCHOR || rawScores.size != n) {
            throw FaceAgeException.BadInput(
                "${spec.name}-range BlazeFace gives $n x ${BlazeFaceSpec.VALUES_PER_ANCHOR} regressors and $n scores, " +
                    "got ${rawBoxes.size} and ${rawScores.size}"
            )
        }
        val anchors = spec.anchors
        val side = spec.inputSize.toFloat()
        val out = ArrayList<Detection>()
        for (i in 0 until n) {
            val logit = rawScores[i].toDouble().coerceIn(-100.0, 100.0)
            val score = (1.0 / (1.0 + exp(-logit))).toFloat()
            if (!(score >= minScore)) continue
            val v = i * BlazeFaceSpec.VALUES_PER_ANCHOR
            val ax = anchors[2 * i]
            val ay = anchors[2 * i + 1]
            val cx = rawBoxes[v] / side + ax
            val cy = rawBoxes[v + 1] / side + ay
            val halfW = rawBoxes[v + 2] / side / 2
            val halfH = rawBoxes[v + 3] / side / 2
            val keypoints = FloatArray(2 * BlazeFaceSpec.NUM_KEYPOINTS) { k ->
                rawBoxes[v + 4 + k] / side + (if (k % 2 == 0) ax else ay)
            }
            out += Detection(floatArrayOf(cx - halfW, cy - halfH, cx + halfW, cy + halfH), keypoints, score)
        }
        return out
    }

    /** Intersection over union of two boxes (left, top, right, bottom), in float32 as numpy. */
    fun iou(a: FloatArray, b: FloatArray): Float {
        val width = max(min(a[2], b[2]) - max(a[0], b[0]), 0f)
        val height = max(min(a[3], b[3]) - max(a[1], b[1]), 0f)
        val inter = width * height
        val union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / max(union, 1e-12f)
    }

    /**
     * MediaPipe's weighted non-maximum suppression: the best remaining detection and every
     * remaining one overlapping it by IoU > [iouThreshold] form a cluster; the cluster's box and
     * keypoints are their score-weighted mean, its score the best one's. Best first.
     */
    fun weightedNms(detections: List<Detection>, iouThreshold: Float = BlazeFaceSpec.NMS_IOU): List<Detection> {
        var remaining = detections.sortedByDescending { it.score } // stable: ties keep anchor order
        val out = ArrayList<Detection>()
        while (remaining.isNotEmpty()) {
            val best = remaining[0]
            val (cluster, rest) = remaining.withIndex().partition { (i, d) -> i == 0 || iou(best.box, d.box) > iouThreshold }
            var total = 0f
            for ((_, d) in cluster) total += d.score
            val box = FloatArray(4)
            val keypoints = FloatArray(best.keypoints.size)
            for ((_, d) in cluster) {
                val w = d.score / total
                for (j in box.indices) box[j] += w * d.box[j]
                for (j in keypoints.indices) keypoints[j] += w * d.keypoints[j]
            }
            out += Detection(box, keypoints, best.score)
            remaining = rest.map { it.value }
        }
        return out
    }
}
