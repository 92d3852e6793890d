package dev.faceage.core

import kotlin.math.ceil
import kotlin.math.floor

/**
 * An RGB image as Android's `Bitmap.getPixels` gives it: packed ARGB ints, row by row (alpha is
 * ignored on input and opaque on output).
 */
class RgbImage(val width: Int, val height: Int, val pixels: IntArray = IntArray(width * height)) {
    init {
        if (width <= 0 || height <= 0) throw FaceAgeException.BadInput("image size must be positive, got ${width}x$height")
        if (pixels.size != width * height) {
            throw FaceAgeException.BadInput("a ${width}x$height image needs ${width * height} pixels, got ${pixels.size}")
        }
    }
}

/**
 * Pillow's resampling (the version in faceage_tf's runtime environment, 11-13), ported from its C
 * source (`src/libImaging/Resample.c` and `Geometry.c`) operation for operation, so that a crop
 * made here equals the Python crop bit for bit given the same pixels and coefficients:
 * - [resize]: `Image.resize(size, Image.BILINEAR, reducing_gap=...)` on RGB: the antialiased
 *   two-pass resize with its 22-bit fixed-point coefficients (a triangle filter widened by the
 *   scale when shrinking), after [reduce]'s integer box filter when a reducing gap is given;
 * - [affine]: `Image.transform(size, Image.AFFINE, data, resample=Image.BILINEAR)` on RGB:
 *   bilinear sampling at each output pixel's centre, black outside the source.
 */
object Pillow {
    private const val PRECISION_BITS = 32 - 8 - 2
    private const val OPAQUE = 0xFF shl 24

    /**
     * `image.resize((width, height), Image.BILINEAR, reducing_gap=reducingGap)`. With a reducing
     * gap, a large shrink first reduces the image by integer factors (a box filter, [reduce]) as
     * Pillow does, then resamples the rest.
     */
    fun resize(image: RgbImage, width: Int, height: Int, reducingGap: Double? = null): RgbImage {
        if (width <= 0 || height <= 0) throw FaceAgeException.BadInput("resize target must be positive, got ${width}x$height")
        if (width == image.width && height == image.height) return RgbImage(width, height, image.pixels.copyOf())
        var source = image
        var box = doubleArrayOf(0.0, 0.0, image.width.toDouble(), image.height.toDouble())
        if (reducingGap != null) {
            // Image.resize: int() truncates, "or 1" turns 0 into 1.
            val fx = ((box[2] - box[0]) / width / reducingGap).toInt().coerceAtLeast(1)
            val fy = ((box[3] - box[1]) / height / reducingGap).toInt().coerceAtLeast(1)
            if (fx > 1 || fy > 1) {
                // Image._get_safe_box: the box widened by the bilinear filter's reach (support 1 - 0.5).
                val supportX = 0.5 * ((box[2] - box[0]) / width)
                val supportY = 0.5 * ((box[3] - box[1]) / height)
                val safe = intArrayOf(
                    maxOf(0, (box[0] - supportX).toInt()),
                    maxOf(0, (box[1] - supportY).toInt()),
                    minOf(image.width, ceil(box[2] + supportX).toInt()),
                    minOf(image.height, ceil(box[3] + supportY).toInt()),
                )
                source = reduce(image, fx, fy, safe)
                box = doubleArrayOf((box[0] - safe[0]) / fx, (box[1] - safe[1]) / fy, (box[2] - safe[0]) / fx, (box[3] - safe[1]) / fy)
            }
        }
        return resample(source, width, height, FloatArray(4) { box[it].toFloat() }) // C takes the box as floats
    }

    /** _imaging.c `_resize` + ImagingResampleInner for a box (left, top, right, bottom) of [image]. */
    private fun resample(image: RgbImage, width: Int, height: Int, box: FloatArray): RgbImage {
        if (box[0] - box[0].toInt() == 0f && box[2] - box[0] == width.toFloat() &&
            box[1] - box[1].toInt() == 0f && box[3] - box[1] == height.toFloat()
        ) {
            return crop(image, box[0].toInt(), box[1].toInt(), width, height) // whole pixels, same size
        }
        val needHorizontal = width != image.width || box[0] != 0f || box[2] != width.toFloat()
        val needVertical = height != image.height || box[1] != 0f || box[3] != height.toFloat()
        var current = image
        if (needHorizontal) current = horizontal(current, Coefficients(image.width, box[0], box[2], width))
        if (needVertical) current = vertical(current, Coefficients(image.height, box[1], box[3], height))
        return if (current === image) RgbImage(image.width, image.height, image.pixels.copyOf()) else current
    }

    private fun crop(image: RgbImage, left: Int, top: Int, width: Int, height: Int): RgbImage {
        val out = RgbImage(width, height)
        for (y in 0 until height) image.pixels.copyInto(out.pixels, y * width, (top + y) * image.width + left, (top + y) * image.width + left + width)
        return out
    }

    /**
     * `image.reduce((fx, fy), box)` (Reduce.c): each output pixel is the mean of its fx x fy
     * block of the box (blocks at the right and bottom edges are cut by the box), rounded as
     * Pillow's fixed point does: ((n / 2 + sum) * (2^32 / (256 n), in float32)) >> 24.
     *
     * @param box left, top, right, bottom, whole pixels inside the image.
     */
    fun reduce(image: RgbImage, fx: Int, fy: Int, box: IntArray): RgbImage {
        val boxW = box[2] - box[0]
        val boxH = box[3] - box[1]
        if (fx < 1 || fy < 1 || boxW <= 0 || boxH <= 0) throw FaceAgeException.BadInput("bad reduce: factor ${fx}x$fy, box ${box.toList()}")
        val outW = (boxW + fx - 1) / fx
        val outH = (boxH + fy - 1) / fy
        val out = RgbImage(outW, outH)
        for (y in 0 until outH) {
            val y0 = box[1] + y * fy
            val y1 = minOf(y0 + fy, box[3])
            for (x in 0 until outW) {
                val x0 = box[0] + x * fx
                val x1 = minOf(x0 + fx, box[2])
                val count = (x1 - x0) * (y1 - y0)
                val amend = (count / 2).toLong()
                val multiplier = (4294967296.0f / (256 * count).toFloat()).toLong() // division_UINT32, float32
                var r = amend
                var g = amend
                var b = amend
                for (yy in y0 until y1) {
                    val row = yy * image.width
                    for (xx in x0 until x1) {
                        val p = image.pixels[row + xx]
                        r += (p shr 16) and 0xFF
                        g += (p shr 8) and 0xFF
                        b += p and 0xFF
                    }
                }
                out.pixels[y * outW + x] = OPAQUE or (level(r, multiplier) shl 16) or (level(g, multiplier) shl 8) or level(b, multiplier)
            }
        }
        return out
    }

    /** (ss * multiplier) >> 24 in UINT32 arithmetic. */
    private fun level(sum: Long, multiplier: Long) = (((sum * multiplier) and 0xFFFFFFFFL) shr 24).toInt()

    /** precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter (support 1). */
    private class Coefficients(inSize: Int, in0: Float, in1: Float, val outSize: Int) {
        val ksize: Int
        val bounds = IntArray(outSize * 2) // first source index and count, per output index
        val weights: IntArray

        init {
            val scale = (in1 - in0).toDouble() / outSize // float32 subtraction, as in C
            val filterScale = if (scale < 1.0) 1.0 else scale
            val support = 1.0 * filterScale
            ksize = ceil(support).toInt() * 2 + 1
            val kk = DoubleArray(outSize * ksize)
            for (xx in 0 until outSize) {
                val center = in0 + (xx + 0.5) * scale
                var ww = 0.0
                val ss = 1.0 / filterScale
                var xmin = (center - support + 0.5).toInt()
                if (xmin < 0) xmin = 0
                var xmax = (center + support + 0.5).toInt()
                if (xmax > inSize) xmax = inSize
                xmax -= xmin
                val k = xx * ksize
                for (x in 0 until xmax) {
                    val w = triangle((x + xmin - center + 0.5) * ss)
                    kk[k + x] = w
                    ww += w
                }
                for (x in 0 until xmax) if (ww != 0.0) kk[k + x] /= ww
                bounds[xx * 2] = xmin
                bounds[xx * 2 + 1] = xmax
            }
            weights = IntArray(kk.size) { i ->
                val v = kk[i]
                if (v < 0) (-0.5 + v * (1 shl PRECISION_BITS)).toInt() else (0.5 + v * (1 shl PRECISION_BITS)).toInt()
            }
        }

        private fun triangle(x: Double): Double {
            val a = if (x < 0.0) -x else x
            return if (a < 1.0) 1.0 - a else 0.0
        }
    }

    /** clip8: the fixed-point sum back to 0..255 (the lookup table in Resample.c). */
    private fun clip8(sum: Int): Int {
        val v = sum shr PRECISION_BITS
        return if (v < 0) 0 else if (v > 255) 255 else v
    }

    private fun horizontal(src: RgbImage, c: Coefficients): RgbImage {
        val out = RgbImage(c.outSize, src.height)
        val half = 1 shl (PRECISION_BITS - 1)
        for (y in 0 until src.height) {
            val row = y * src.width
            for (xx in 0 until c.outSize) {
                val xmin = c.bounds[xx * 2]
                val count = c.bounds[xx * 2 + 1]
                val k = xx * c.ksize
                var r = half
                var g = half
                var b = half
                for (x in 0 until count) {
                    val p = src.pixels[row + xmin + x]
                    val w = c.weights[k + x]
                    r += ((p shr 16) and 0xFF) * w
                    g += ((p shr 8) and 0xFF) * w
                    b += (p and 0xFF) * w
                }
                out.pixels[y * c.outSize + xx] = OPAQUE or (clip8(r) shl 16) or (clip8(g) shl 8) or clip8(b)
            }
        }
        return out
    }

    private fun vertical(src: RgbImage, c: Coefficients): RgbImage {
        val out = RgbImage(src.width, c.outSize)
        val half = 1 shl (PRECISION_BITS - 1)
        for (yy in 0 until c.outSize) {
            val ymin = c.bounds[yy * 2]
            val count = c.bounds[yy * 2 + 1]
            val k = yy * c.ksize
            for (x in 0 until src.width) {
                var r = half
                var g = half
                var b = half
                for (y in 0 until count) {
                    val p = src.pixels[(ymin + y) * src.width + x]
                    val w = c.weights[k + y]
                    r += ((p shr 16) and 0xFF) * w
                    g += ((p shr 8) and 0xFF) * w
                    b += (p and 0xFF) * w
                }
                out.pixels[yy * src.width + x] = OPAQUE or (clip8(r) shl 16) or (clip8(g) shl 8) or clip8(b)
            }
        }
        return out
    }

    /**
     * `image.transform((width, height), Image.AFFINE, data, resample=Image.BILINEAR)`: output
     * pixel (x, y) samples the source at (a0 x' + a1 y' + a2, a3 x' + a4 y' + a5) with
     * x' = x + 0.5, y' = y + 0.5; black where that falls outside the source.
     */
    fun affine(image: RgbImage, width: Int, height: Int, data: DoubleArray): RgbImage {
        if (data.size != 6) throw FaceAgeException.BadInput("an affine transform has 6 coefficients, got ${data.size}")
        if (width <= 0 || height <= 0) throw FaceAgeException.BadInput("transform target must be positive, got ${width}x$height")
        val (a0, a1, a2) = Triple(data[0], data[1], data[2])
        val (a3, a4, a5) = Triple(data[3], data[4], data[5])
        val w = image.width
        val h = image.height
        val src = image.pixels
        val out = RgbImage(width, height)
        for (y in 0 until height) {
            for (x in 0 until width) {
                // affine_transform
                val xo = x + 0.5
                val yo = y + 0.5
                var xin = a0 * xo + a1 * yo + a2
                var yin = a3 * xo + a4 * yo + a5
                // bilinear_filter32RGB (BILINEAR_HEAD / BILINEAR_BODY)
                if (xin < 0.0 || xin >= w || yin < 0.0 || yin >= h) {
                    out.pixels[y * width + x] = OPAQUE // fill: black
                    continue
                }
                xin -= 0.5
                yin -= 0.5
                val sx = floor(xin).toInt()
                val sy = floor(yin).toInt()
                val dx = xin - sx
                val dy = yin - sy
                val row0 = clip(sy, h) * w
                val hasRow1 = sy + 1 in 0 until h
                val row1 = (sy + 1) * w
                val x0 = clip(sx, w)
                val x1 = clip(sx + 1, w)
                var pixel = OPAQUE
                var shift = 16 // red, green, blue
                while (shift >= 0) {
                    val p00 = (src[row0 + x0] shr shift) and 0xFF
                    val p01 = (src[row0 + x1] shr shift) and 0xFF
                    val top = p00 + (p01 - p00) * dx
                    val bottom = if (hasRow1) {
                        val p10 = (src[row1 + x0] shr shift) and 0xFF
                        val p11 = (src[row1 + x1] shr shift) and 0xFF
                        p10 + (p11 - p10) * dx
                    } else {
                        top
                    }
                    val v = top + (bottom - top) * dy
                    pixel = pixel or (v.toInt() shl shift) // (UINT8) cast: truncation
                    shift -= 8
                }
                out.pixels[y * width + x] = pixel
            }
        }
        return out
    }

    private fun clip(i: Int, size: Int) = if (i < 0) 0 else if (i < size) i else size - 1
}
