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
 * - [resize]: `Image.resize(size, Image.BILINEAR)` on RGB: the antialiased two-pass resize with
 *   its 22-bit fixed-point coefficients (a triangle filter widened by the scale when shrinking);
 * - [affine]: `Image.transform(size, Image.AFFINE, data, resample=Image.BILINEAR)` on RGB:
 *   bilinear sampling at each output pixel's centre, black outside the source.
 */
object Pillow {
    private const val PRECISION_BITS = 32 - 8 - 2
    private const val OPAQUE = 0xFF shl 24

    /** `image.resize((width, height), Image.BILINEAR)`. */
    fun resize(image: RgbImage, width: Int, height: Int): RgbImage {
        if (width <= 0 || height <= 0) throw FaceAgeException.BadInput("resize target must be positive, got ${width}x$height")
        // ImagingResampleInner: a pass runs only when its size changes (box is the whole image).
        var current = image
        if (width != image.width) current = horizontal(current, Coefficients(image.width, width))
        if (height != image.height) current = vertical(current, Coefficients(image.height, height))
        return if (current === image) RgbImage(width, height, image.pixels.copyOf()) else current
    }

    /** precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter (support 1). */
    private class Coefficients(inSize: Int, val outSize: Int) {
        val ksize: Int
        val bounds = IntArray(outSize * 2) // first source index and count, per output index
        val weights: IntArray

        init {
            val in0 = 0.0f
            val in1 = inSize.toFloat()
            val scale = (in1 - in0).toDouble() / outSize
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
