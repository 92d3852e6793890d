package dev.faceage.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Matrix
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
import java.io.FileNotFoundException
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** One face in an image: the detector's box, the model's crop around it, and the answer. */
data class FaceResult(val box: Rect, val crop: Box, val age: FaceAge)

/**
 * Owns the LiteRT interpreter and turns face boxes into [FaceResult]s. Everything the model
 * needs (input size, normalisation, crop, labels) comes from the model card inside the
 * `.tflite`, via the core module. Not thread-safe: call it from one thread.
 *
 * @throws FaceAgeException if the model is missing, unreadable, has no valid card, or its
 *   tensors disagree with the card.
 */
class FaceAgeClassifier(context: Context, assetName: String = "faceage.tflite", numThreads: Int = 2) : Closeable {
    val card: ModelCard
    private val interpreter: Interpreter
    private val signature: String
    private val binding: TensorBinding
    private val preprocessor: Preprocessor
    private val decoder: OutputDecoder
    private val size: Int

    // Made once and reused for every face: the crop bitmap and its canvas, the pixels, the
    // input tensor and the output arrays (keyed by the interpreter's own output names).
    private val crop: Bitmap
    private val cropCanvas: Canvas
    private val cropMatrix = Matrix()
    private val cropPaint = Paint(Paint.FILTER_BITMAP_FLAG) // bilinear
    private val pixels: IntArray
    private val tensor: FloatArray
    private val input: ByteBuffer
    private val inputs: Map<String, Any>
    private val outputs: Map<String, Array<FloatArray>>
    private val outputsByTensor: Map<String, Any>

    init {
        val bytes = try {
            context.assets.open(assetName).use { it.readBytes() }
        } catch (e: FileNotFoundException) {
            throw FaceAgeException.MissingModel("$assetName is not in the app's assets: rebuild the app (the build copies faceage_tf/assets/$assetName)")
        }
        card = ModelCard.fromTflite(bytes, assetName, verifyHash = true)
        val model = ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder())
        model.put(bytes)
        model.rewind()
        interpreter = try {
            Interpreter(model, Interpreter.Options().setNumThreads(numThreads))
        } catch (e: IllegalArgumentException) {
            throw FaceAgeException.NotAModel("$assetName: LiteRT cannot load it (${e.message})")
        }
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
        crop = Bitmap.createBitmap(size, size, Bitmap.Config.ARGB_8888)
        cropCanvas = Canvas(crop)
        pixels = IntArray(size * size)
        tensor = FloatArray(size * size * 3)
        input = ByteBuffer.allocateDirect(tensor.size * 4).order(ByteOrder.nativeOrder())
        inputs = mapOf(binding.input to input)
        outputs = binding.outputs.mapValues { (key, _) -> Array(1) { FloatArray(card.outputs.getValue(key)[1]!!) } }
        outputsByTensor = outputs.entries.associate { (key, value) -> binding.outputs.getValue(key) to value }
    }

    /** Age and gender for every face box (image pixels) found in an upright [image]. */
    fun classify(image: Bitmap, faces: List<Rect>): List<FaceResult> = faces.map { face ->
        val box = BoxExpander.expand(Box(face.left.toFloat(), face.top.toFloat(), face.right.toFloat(), face.bottom.toFloat()), card.crop)
        FaceResult(face, box, classifyCrop(cropFace(image, box)))
    }

    /**
     * The card's crop, scaled to the input size, into a bitmap reused for every face (valid
     * until the next call); the part outside the image stays black, as in Python.
     */
    fun cropFace(image: Bitmap, box: Box): Bitmap {
        val (left, top, right, bottom) = BoxExpander.pixelBounds(box)
        crop.eraseColor(Color.BLACK)
        cropMatrix.setTranslate(-left.toFloat(), -top.toFloat())
        cropMatrix.postScale(size.toFloat() / (right - left), size.toFloat() / (bottom - top))
        cropCanvas.drawBitmap(image, cropMatrix, cropPaint)
        return crop
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
        interpreter.runSignature(inputs, outputsByTensor, signature)
        return decoder.decode(outputs.getValue("gender")[0], outputs.getValue("age_group")[0], outputs.getValue("age")[0])
    }

    override fun close() = interpreter.close()
}
