package dev.faceage.core

/** A box in image pixels: left, top, right, bottom (as Android's Rect/RectF). */
data class Box(val left: Float, val top: Float, val right: Float, val bottom: Float) {
    val width: Float get() = right - left
    val height: Float get() = bottom - top
}

/** The card's crop convention, as `faceage_tf.schema.FaceCrop.expand`. */
object BoxExpander {
    /** The model's crop for a detector's face box: a square around it, scaled and shifted. */
    fun expand(box: Box, crop: CropConvention): Box {
        val side = crop.scale * maxOf(box.width, box.height)
        val cx = (box.left.toDouble() + box.right) / 2
        val cy = (box.top.toDouble() + box.bottom) / 2 + crop.shiftY * side
        return Box((cx - side / 2).toFloat(), (cy - side / 2).toFloat(), (cx + side / 2).toFloat(), (cy + side / 2).toFloat())
    }

    /**
     * Whole-pixel bounds (left, top, right, bottom) of a crop, rounded half to even like Python's
     * `round` in `faceage_tf.preprocess.crop`, at least one pixel wide and high. They may lie
     * outside the image: the part outside is black, as in Python.
     */
    fun pixelBounds(box: Box): IntArray {
        val left = Math.rint(box.left.toDouble()).toInt()
        val top = Math.rint(box.top.toDouble()).toInt()
        val right = maxOf(Math.rint(box.right.toDouble()).toInt(), left + 1)
        val bottom = maxOf(Math.rint(box.bottom.toDouble()).toInt(), top + 1)
        return intArrayOf(left, top, right, bottom)
    }
}
