package dev.faceage.demo

import android.content.Context
import dev.faceage.core.BlazeFaceSpec
import dev.faceage.core.Face
import dev.faceage.core.FaceAgeException
import dev.faceage.core.FaceFinder
import dev.faceage.core.RgbImage
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import java.io.Closeable
import java.nio.ByteBuffer

/**
 * Owns the LiteRT interpreters of the two bundled BlazeFace models (assets `blazeface/`, the same
 * files as faceage_tf's) and finds faces with them; letterboxing, decoding, non-maximum
 * suppression and the choice of passes are the core's [FaceFinder], checked against Python.
 * The full-range model is loaded on first use: most photos never need it. Not thread-safe.
 */
class FaceDetector(private val context: Context, private val numThreads: Int = 2) : Closeable {
    /** One model's interpreter and the buffers reused for every run. */
    private class Model(val interpreter: Interpreter, spec: BlazeFaceSpec, boxesIndex: Int, scoresIndex: Int) {
        val input: ByteBuffer = LiteRt.floatBuffer(spec.inputSize * spec.inputSize * 3)
        val boxes: ByteBuffer = LiteRt.floatBuffer(spec.numAnchors * BlazeFaceSpec.VALUES_PER_ANCHOR)
        val scores: ByteBuffer = LiteRt.floatBuffer(spec.numAnchors)
        val rawBoxes = FloatArray(spec.numAnchors * BlazeFaceSpec.VALUES_PER_ANCHOR)
        val rawScores = FloatArray(spec.numAnchors)
        val inputs: Array<Any> = arrayOf(input)
        val outputs: Map<Int, Any> = mapOf(boxesIndex to boxes, scoresIndex to scores)
    }

    private val models = HashMap<String, Model>()
    private val finder = FaceFinder(::run)

    init {
        model(BlazeFaceSpec.SHORT_RANGE) // fail now, with the reason, rather than on the first frame
    }

    /** Faces in an upright image, largest first, in image pixels, with their six keypoints. */
    fun detect(image: RgbImage): List<Face> = finder.detect(image)

    private fun run(spec: BlazeFaceSpec, input: FloatArray): Pair<FloatArray, FloatArray> {
        val m = model(spec)
        m.input.rewind()
        m.input.asFloatBuffer().put(input)
        m.boxes.rewind()
        m.scores.rewind()
        m.interpreter.runForMultipleInputsOutputs(m.inputs, m.outputs)
        m.boxes.rewind()
        m.boxes.asFloatBuffer().get(m.rawBoxes)
        m.scores.rewind()
        m.scores.asFloatBuffer().get(m.rawScores)
        return m.rawBoxes to m.rawScores
    }

    private fun model(spec: BlazeFaceSpec): Model = models.getOrPut(spec.name) { load(spec) }

    /** Loads a model and checks its tensors against the spec the core decodes with. */
    private fun load(spec: BlazeFaceSpec): Model {
        val name = "blazeface/${spec.file}"
        val interpreter = LiteRt.interpreter(LiteRt.readAsset(context, name), name, numThreads)
        try {
            val input = interpreter.getInputTensor(0)
            val expected = listOf(1, spec.inputSize, spec.inputSize, 3)
            if (input.shape().toList() != expected || input.dataType() != DataType.FLOAT32) {
                throw FaceAgeException.TensorMismatch("$name: input is ${input.shape().toList()} ${input.dataType()}, expected $expected FLOAT32")
            }
            // Outputs are told apart by their last dimension, as in Python: 16 regressors, 1 score.
            val byWidth = (0 until interpreter.outputTensorCount).associateBy { interpreter.getOutputTensor(it).shape().last() }
            val boxes = byWidth[BlazeFaceSpec.VALUES_PER_ANCHOR]
            val scores = byWidth[1]
            if (boxes == null || scores == null ||
                interpreter.getOutputTensor(boxes).numElements() != spec.numAnchors * BlazeFaceSpec.VALUES_PER_ANCHOR ||
                interpreter.getOutputTensor(scores).numElements() != spec.numAnchors
            ) {
                val shapes = (0 until interpreter.outputTensorCount).map { interpreter.getOutputTensor(it).shape().toList() }
                throw FaceAgeException.TensorMismatch("$name: outputs are $shapes, expected ${spec.numAnchors} x 16 regressors and ${spec.numAnchors} scores")
            }
            return Model(interpreter, spec, boxes, scores)
        } catch (e: Exception) {
            interpreter.close()
            throw e
        }
    }

    override fun close() {
        models.values.forEach { it.interpreter.close() }
        models.clear()
    }
}
