package dev.faceage.demo

import android.app.ActivityManager
import android.content.Context
import dev.faceage.core.Alignment
import dev.faceage.core.Face
import dev.faceage.core.FaceAge
import dev.faceage.core.FaceAgeException
import dev.faceage.core.ModelCard
import dev.faceage.core.OutputDecoder
import dev.faceage.core.Preprocessor
import dev.faceage.core.RgbImage
import dev.faceage.core.TensorBinding
import dev.faceage.core.TensorCheck
import dev.faceage.core.TensorInfo
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import java.io.Closeable
import java.nio.ByteBuffer

/** One face in an image: where the detector found it (box, keypoints) and the model's answer. */
data class FaceResult(val face: Face, val age: FaceAge)

/**
 * Owns the age/gender model's LiteRT interpreter and turns detected faces into [FaceResult]s.
 * Everything the model needs (input size, normalisation, alignment template, labels) comes from
 * the model card inside the `.tflite`, via the core module; the aligned crop is the core's port
 * of Python's (`faceage_tf.align`, Pillow's resampling), so both give the model the same pixels.
 * Not thread-safe: call it from one thread.
 *
 * @throws FaceAgeException if the model is missing, unreadable, has no valid card, or its
 *   tensors disagree with the card.
 */
class FaceAgeClassifier(context: Context, assetName: String = DEFAULT_MODEL, numThreads: Int = 2) : Closeable {
    companion object {
        /** The packaged default model (both networks, flip built in): the more accurate one. */
        const val DEFAULT_MODEL = "faceage.tflite"

        /** The packaged small model (one narrow network, under 1 MB): for low-end phones. */
        const val SMALL_MODEL = "faceage-small.tflite"

        /** The small model on phones that Android marks as low-RAM, else the default (README, "Which model"). */
        fun modelFor(context: Context): String {
            val activities = context.getSystemService(Context.ACTIVITY_SERVICE) as ActivityManager
            return if (activities.isLowRamDevice) SMALL_MODEL else DEFAULT_MODEL
        }
    }

    val card: ModelCard
    private val interpreter: Interpreter
    private val signature: String
    private val binding: TensorBinding
    private val preprocessor: Preprocessor
    private val decoder: OutputDecoder
    private val size: Int

    // Made once, reused for every face: the input tensor and the output arrays (keyed by the
    // interpreter's own output names).
    private val tensor: FloatArray
    private val input: ByteBuffer
    private val inputs: Map<String, Any>
    private val outputs: Map<String, Array<FloatArray>>
    private val outputsByTensor: Map<String, Any>

    init {
        val bytes = LiteRt.readAsset(context, assetName)
        card = ModelCard.fromTflite(bytes, assetName, verifyHash = true)
        interpreter = LiteRt.interpreter(bytes, assetName, numThreads)
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
        tensor = FloatArray(size * size * 3)
        input = LiteRt.floatBuffer(tensor.size)
        inputs = mapOf(binding.input to input)
        outputs = binding.outputs.mapValues { (key, _) -> Array(1) { FloatArray(card.outputs.getValue(key)[1]!!) } }
        outputsByTensor = outputs.entries.associate { (key, value) -> binding.outputs.getValue(key) to value }
    }

    /** Age and gender for every detected face (keypoints in image pixels) of an upright [image]. */
    fun classify(image: RgbImage, faces: List<Face>): List<FaceResult> = faces.map { face ->
        val crop = Alignment.alignFace(image, face.keypoints, card.template, size)
        FaceResult(face, classifyCrop(crop.pixels))
    }

    /** The model on one aligned crop: `inputSize` x `inputSize` packed ARGB pixels. */
    fun classifyCrop(argb: IntArray): FaceAge {
        preprocessor.toTensor(argb, tensor)
        input.rewind()
        input.asFloatBuffer().put(tensor)
        interpreter.runSignature(inputs, outputsByTensor, signature)
        return decoder.decode(outputs.getValue("gender")[0], outputs.getValue("age_group")[0], outputs.getValue("age")[0])
    }

    override fun close() = interpreter.close()
}
