package dev.faceage.core

import kotlin.math.ceil
import kotlin.math.floor
import kotlin.math.hypot

/**
 * Where a face's keypoints sit in the model's input crop, as fractions of the crop's side (x
 * right, y down), in the detector's order: right eye, left eye, nose tip, mouth centre (the
 * model card's `template`, `faceage_tf.schema.FaceTemplate`).
 */
data class FaceTemplate(val keypoints: List<Pair<Double, Double>>) {
    init {
        if (keypoints.size != ALIGNMENT_KEYPOINTS) {
            throw FaceAgeException.InvalidCard("template.keypoints must hold $ALIGNMENT_KEYPOINTS points, got ${keypoints.size}")
        }
        if (!keypoints.all { (x, y) -> x > 0.0 && x < 1.0 && y > 0.0 && y < 1.0 }) {
            throw FaceAgeException.InvalidCard("template.keypoints must lie inside the crop (0..1), got $keypoints")
        }
        if (!(keypoints[1].first - keypoints[0].first > 0)) {
            throw FaceAgeException.InvalidCard("template.keypoints: the left eye must be right of the right eye, got $keypoints")
        }
    }

    companion object {
        /** Eyes, nose tip, mouth: the ear tragions move too much with the head's yaw. */
        const val ALIGNMENT_KEYPOINTS = 4
    }
}

/**
 * Face alignment as `faceage_tf.align`: the similarity transform (rotation, uniform scale,
 * shift) from the detected keypoints to the template, an intermediate crop of the face's own
 * size made by Pillow's bilinear affine transform, then Pillow's antialiased resize to the input
 * size, reading the image reflected at its edges where the crop reaches past it. Coordinates are
 * continuous pixels (a pixel's centre at +0.5), as Pillow's.
 */
object Alignment {
    /** The intermediate crop is at most this many times the input side. */
    const val MAX_INTERMEDIATE = 2

    /**
     * The least-squares similarity (no reflection) mapping [src] onto [dst] (x, y pairs), as
     * (a0, a1, a2, a3, a4, a5) with dst = (a0 x + a1 y + a2, a3 x + a4 y + a5); the closed form of
     * Umeyama's method in 2-D: in complex numbers a = sum(conj(s) d) / sum(|s|^2) over centred points.
     */
    fun similarityTransform(src: DoubleArray, dst: DoubleArray): DoubleArray {
        if (src.size != dst.size || src.size < 4 || src.size % 2 != 0) {
            throw FaceAgeException.BadInput("similarity needs two equal lists of at least 2 points, got ${src.size / 2.0} and ${dst.size / 2.0}")
        }
        val k = src.size / 2
        var sx = 0.0; var sy = 0.0; var dx = 0.0; var dy = 0.0
        for (i in 0 until k) {
            sx += src[2 * i]; sy += src[2 * i + 1]; dx += dst[2 * i]; dy += dst[2 * i + 1]
        }
        sx /= k; sy /= k; dx /= k; dy /= k
        var norm = 0.0
        var re = 0.0
        var im = 0.0
        for (i in 0 until k) {
            val s0 = src[2 * i] - sx
            val s1 = src[2 * i + 1] - sy
            val d0 = dst[2 * i] - dx
            val d1 = dst[2 * i + 1] - dy
            norm += s0 * s0 + s1 * s1
            re += s0 * d0 + s1 * d1
            im += s0 * d1 - s1 * d0
        }
        if (!(norm > 0)) throw FaceAgeException.BadInput("keypoints must not all coincide")
        val a = re / norm
        val b = im / norm
        return doubleArrayOf(a, -b, dx - (a * sx - b * sy), b, a, dy - (b * sx + a * sy))
    }

    /** The inverse of an affine transform (a0..a5), as Pillow's AFFINE data wants it. */
    fun invert(t: DoubleArray): DoubleArray {
        val det = t[0] * t[4] - t[1] * t[3]
        if (det == 0.0 || !det.isFinite()) throw FaceAgeException.BadInput("transform is not invertible")
        val i0 = t[4] / det
        val i1 = -t[1] / det
        val i3 = -t[3] / det
        val i4 = t[0] / det
        return doubleArrayOf(i0, i1, -(i0 * t[2] + i1 * t[5]), i3, i4, -(i3 * t[2] + i4 * t[5]))
    }

    /** A transform from image pixels to the intermediate crop's pixels, and that crop's side. */
    class CropTransform(val forward: DoubleArray, val side: Int)

    /**
     * @param keypoints at least the first 4 detector keypoints (x, y pairs, image pixels).
     * The side is the face's crop side in image pixels, rounded half to even (Python's round),
     * clipped to [size, MAX_INTERMEDIATE * size].
     */
    fun cropTransform(keypoints: DoubleArray, template: FaceTemplate, size: Int): CropTransform {
        val n = FaceTemplate.ALIGNMENT_KEYPOINTS
        if (keypoints.size < 2 * n) throw FaceAgeException.BadInput("alignment needs $n keypoints, got ${keypoints.size / 2}")
        val src = keypoints.copyOf(2 * n)
        val dst = DoubleArray(2 * n) { i -> template.keypoints[i / 2].let { if (i % 2 == 0) it.first else it.second } }
        val toUnit = similarityTransform(src, dst)
        val sourceSide = 1.0 / hypot(toUnit[0], toUnit[3])
        val side = Math.rint(sourceSide).coerceIn(size.toDouble(), (MAX_INTERMEDIATE * size).toDouble()).toInt()
        return CropTransform(DoubleArray(6) { toUnit[it] * side }, side)
    }

    /**
     * The model's size x size input crop of the face; parts outside the image are the image
     * reflected at its edges, as in training ([reflectedSource]).
     */
    fun alignFace(image: RgbImage, keypoints: DoubleArray, template: FaceTemplate, size: Int): RgbImage {
        val t = cropTransform(keypoints, template, size)
        return cropWith(image, invert(t.forward), t.side, size)
    }

    /** The crop from Pillow AFFINE data (output pixel -> image pixel) for a side x side intermediate. */
    fun cropWith(image: RgbImage, inverse: DoubleArray, side: Int, size: Int): RgbImage {
        val source = reflectedSource(image, inverse, side)
        val crop = Pillow.affine(source.image, side, side, source.inverse)
        return if (side != size) Pillow.resize(crop, size, size) else crop
    }

    /**
     * Reflection is skipped (parts outside stay black) when the region a crop reads would hold
     * more than this many times the image's pixels, or lies wholly outside it.
     */
    const val MAX_REFLECTED_AREA = 4

    /** An index into an axis of [length], mirrored at its ends without repeating the edge pixel. */
    fun reflectIndex(index: Int, length: Int): Int {
        if (length == 1) return 0
        val period = 2 * (length - 1)
        val i = Math.floorMod(index, period)
        return if (i < length) i else period - i
    }

    /** An image and the AFFINE data that samples the crop from it. */
    class Source(val image: RgbImage, val inverse: DoubleArray)

    /**
     * `faceage_tf.align.reflected_source`: the region a side x side crop through [inverse] reads
     * (a pixel to spare for bilinear sampling), with the image reflected at its edges where the
     * region reaches past it; the image itself when the region lies inside.
     */
    fun reflectedSource(image: RgbImage, inverse: DoubleArray, side: Int): Source {
        val s = side.toDouble()
        val cornersX = doubleArrayOf(0.0, s, s, 0.0)
        val cornersY = doubleArrayOf(0.0, 0.0, s, s)
        val xs = DoubleArray(4) { inverse[0] * cornersX[it] + inverse[1] * cornersY[it] + inverse[2] }
        val ys = DoubleArray(4) { inverse[3] * cornersX[it] + inverse[4] * cornersY[it] + inverse[5] }
        val left = floor(xs.min()) - 1.0
        val right = ceil(xs.max()) + 1.0
        val top = floor(ys.min()) - 1.0
        val bottom = ceil(ys.max()) + 1.0
        val width = image.width
        val height = image.height
        if (left >= 0 && top >= 0 && right <= width && bottom <= height) return Source(image, inverse)
        val overlaps = right > 0 && left < width && bottom > 0 && top < height
        if (!overlaps || (right - left) * (bottom - top) > MAX_REFLECTED_AREA.toDouble() * width * height) {
            return Source(image, inverse)
        }
        val x0 = left.toInt()
        val y0 = top.toInt()
        val w = right.toInt() - x0
        val h = bottom.toInt() - y0
        val columns = IntArray(w) { reflectIndex(x0 + it, width) }
        val pixels = IntArray(w * h)
        for (y in 0 until h) {
            val row = reflectIndex(y0 + y, height) * width
            for (x in 0 until w) pixels[y * w + x] = image.pixels[row + columns[x]]
        }
        val shifted = doubleArrayOf(inverse[0], inverse[1], inverse[2] - x0, inverse[3], inverse[4], inverse[5] - y0)
        return Source(RgbImage(w, h, pixels), shifted)
    }
}
