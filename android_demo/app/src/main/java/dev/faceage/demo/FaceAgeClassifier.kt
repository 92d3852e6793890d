package dev.faceage.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Paint
import android.graphics.Rect
import dev.faceage.core.Box
import dev.faceage.core.BoxExpander
import dev.faceage.core.FaceAge
import dev.faceage.core.FaceAgeException
import dev.faceage.core.ModelCard
import dev.faceage.core.OutputDecoder
import dev.faceage.core.Preprocessor
import dev.faceage.core.TensorBinding
import dev.faceage.core.TensorCheck
import dev.faceage.core.TensorInfo
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import java.io.Closeable
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** One face in an image: the detector's box, the model's crop around it, and the answer. */
data class FaceResult(val box: Rect, val crop: Box, val age: FaceAge)

/**
 * Owns the LiteRT interpreter and turns face boxes into [FaceResult]s. Everything the model
 * needs (input size, normalisation, crop, labels) comes from the model card inside the
 * `.tflite`, via the core module. Not thread-safe: call it from one thread.
 *
 * @throws FaceAgeException if the model has no valid card or its tensors disagree with it.
 */
class FaceAgeClassifier(context: Context, assetName: String = "faceage.tflite", numThreads: Int = 2) : Closeable {
    val card: ModelCard
    private val interpreter: Interpreter
    private val signature: String
    private val binding: TensorBinding
    private val preprocessor: Preprocessor
    private val decoder: OutputDecoder
    private val size: Int

    // Reused for every face, so the camera loop makes no garbage per frame.
    private val pixels: IntArray
    private val tensor: FloatArray
    private val input: ByteBuffer

    init {
        val bytes = context.assets.open(assetName).use { it.readBytes() }
        card = ModelCard.fromTflite(bytes, assetName, verifyHash = true)
        val model = ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder())
        model.put(bytes)
        model.rewind()
        interpreter = Interpreter(model, Interpreter.Options().setNumThreads(numThreads))
        try {
            val keys = interpreter.signatureKeys
            signature = if ("serving_default" in keys) "serving_default" else keys.firstOrNull()
                ?: throw FaceAgeException.TensorMismatch("$assetName has no signature; export it with faceage_tf.export")
            fun info(name: String, t: Tensor) = TensorInfo(name, t.shapeSignature().toList(), t.dataType().name.lowercase())
            binding = TensorCheck.bind(
                card,
                interpreter.getSignatureInputs(signature).map { info(it, interpreter.getInputTensorFromSignature(it, signature)) },
                interpreter.getSignatureOutputs(signature).map { info(it, interpreter.getOutputTensorFromSignature(it, signature)) },
            )
        } catch (e: Exception) {
            interpreter.close()
            throw e
        }
        preprocessor = Preprocessor(card)
        decoder = OutputDecoder(card)
        size = card.inputSize
        pixels = IntArray(size * size)
        tensor = FloatArray(size * size * 3)
        input = ByteBuffer.allocateDirect(tensor.size * 4).order(ByteOrder.nativeOrder())
    }

    /** Age and gender for every face box (image pixels) found in an upright [image]. */
    fun classify(image: Bitmap, faces: List<Rect>): List<FaceResult> = faces.map { face ->
        val crop = BoxExpander.expand(Box(face.left.toFloat(), face.top.toFloat(), face.right.toFloat(), face.bottom.toFloat()), card.crop)
        FaceResult(face, crop, classifyCrop(cropFace(image, crop)))
    }

    /** The card's crop, scaled to the input size; the part outside the image stays black, as in Python. */
    fun cropFace(image: Bitmap, crop: Box): Bitmap {
        val (left, top, right, bottom) = BoxExpander.pixelBounds(crop)
        val out = Bitmap.createBitmap(size, size, Bitmap.Config.ARGB_8888)
        Canvas(out).apply {
            scale(size.toFloat() / (right - left), size.toFloat() / (bottom - top))
            translate(-left.toFloat(), -top.toFloat())
            drawBitmap(image, 0f, 0f, Paint(Paint.FILTER_BITMAP_FLAG)) // bilinear
        }
        return out
    }

    /** The model on one face crop of `inputSize` x `inputSize` pixels. */
    fun classifyCrop(face: Bitmap): FaceAge {
        if (face.width != size || face.height != size) {
            throw FaceAgeException.BadInput("face crop is ${face.width}x${face.height}, the model card's input_size is $size")
        }
        face.getPixels(pixels, 0, size, 0, 0, size, size)
        preprocessor.toTensor(pixels, tensor)
        input.rewind()
        input.asFloatBuffer().put(tensor)
        // One [1][n] array per output, keyed by the interpreter's own output names.
        val outputs = binding.outputs.mapValues { (key, _) -> Array(1) { FloatArray(card.outputs.getValue(key)[1]!!) } }
        interpreter.runSignature(mapOf(binding.input to input), outputs.entries.associate { (key, value) -> binding.outputs.getValue(key) to value }, signature)
        return decoder.decode(outputs.getValue("gender")[0], outputs.getValue("age_group")[0], outputs.getValue("age")[0])
    }

    override fun close() = interpreter.close()
}
