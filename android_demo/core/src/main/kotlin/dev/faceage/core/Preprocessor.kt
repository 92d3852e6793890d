package dev.faceage.core

/**
 * Face crop pixels to the model's input tensor, with the card's normalisation
 * `(pixel - mean) / std` on 0..255 RGB: the same float32 arithmetic as
 * `faceage_tf.preprocess.normalize`, so the tensors agree bit for bit.
 */
class Preprocessor(private val card: ModelCard) {
    val inputSize: Int get() = card.inputSize

    /**
     * @param argb `inputSize * inputSize` packed ARGB pixels, row by row, as
     *   `Bitmap.getPixels` returns them for a crop already scaled to the input size.
     * @param out reused between frames to avoid garbage; NHWC RGB floats.
     */
    fun toTensor(argb: IntArray, out: FloatArray = FloatArray(inputSize * inputSize * 3)): FloatArray {
        val pixels = inputSize * inputSize
        if (argb.size != pixels) {
            throw FaceAgeException.BadInput(
                "expected ${inputSize}x$inputSize = $pixels pixels (the model card's input_size), got ${argb.size}"
            )
        }
        if (out.size != pixels * 3) throw FaceAgeException.BadInput("output array holds ${out.size} floats, need ${pixels * 3}")
        val mean = card.mean
        val std = card.std
        for (i in 0 until pixels) {
            val p = argb[i] // alpha is ignored: the model sees RGB
            out[3 * i] = (((p shr 16) and 0xFF).toFloat() - mean) / std
            out[3 * i + 1] = (((p shr 8) and 0xFF).toFloat() - mean) / std
            out[3 * i + 2] = ((p and 0xFF).toFloat() - mean) / std
        }
        return out
    }
}
