package dev.faceage.core

import kotlin.math.max
import kotlin.math.min

/** A box in pixels: left, top, right, bottom (as Android's RectF). */
data class Box(val left: Float, val top: Float, val right: Float, val bottom: Float) {
    val width: Float get() = right - left
    val height: Float get() = bottom - top
}

/**
 * Maps image pixels to view pixels for an image drawn centred in a view: scaled to fill the view
 * (the camera preview's FILL_CENTER, cropping the overflow) or to fit it (a photo's fitCenter),
 * mirrored left-right for a front camera, whose preview is shown as a mirror image.
 */
class ViewMapping(imageWidth: Int, imageHeight: Int, private val viewWidth: Int, viewHeight: Int, fill: Boolean, private val mirror: Boolean) {
    val scale: Float
    private val dx: Float
    private val dy: Float

    init {
        require(imageWidth > 0 && imageHeight > 0) { "image size must be positive, got ${imageWidth}x$imageHeight" }
        val sx = viewWidth.toFloat() / imageWidth
        val sy = viewHeight.toFloat() / imageHeight
        scale = if (fill) max(sx, sy) else min(sx, sy)
        dx = (viewWidth - imageWidth * scale) / 2
        dy = (viewHeight - imageHeight * scale) / 2
    }

    fun x(imageX: Float): Float = (imageX * scale + dx).let { if (mirror) viewWidth - it else it }

    fun y(imageY: Float): Float = imageY * scale + dy

    /** A box in view pixels (left < right also when mirrored). */
    fun box(box: Box): Box {
        val a = x(box.left)
        val b = x(box.right)
        return Box(min(a, b), y(box.top), max(a, b), y(box.bottom))
    }
}

/** Sizes for decoding photos: a 50 MP photo decoded whole takes 200 MB and cannot be drawn. */
object PhotoSize {
    /**
     * Android refuses to draw bitmaps over 100 MB; the app also copies the pixels once for
     * detection. 8 MP (32 MB a copy) keeps faces far above the model's 64 px input.
     */
    const val MAX_PIXELS = 8_000_000L

    /**
     * The smallest power-of-two sample size (1, 2, 4, ...) that brings a `width` x `height`
     * photo to at most [maxPixels] pixels, as `ImageDecoder.setTargetSampleSize` takes it.
     */
    fun sampleSize(width: Int, height: Int, maxPixels: Long = MAX_PIXELS): Int {
        if (width <= 0 || height <= 0) throw FaceAgeException.BadInput("photo size must be positive, got ${width}x$height")
        var sample = 1
        while (ceilDiv(width, sample).toLong() * ceilDiv(height, sample) > maxPixels) sample *= 2
        return sample
    }

    private fun ceilDiv(a: Int, b: Int) = (a + b - 1) / b
}
