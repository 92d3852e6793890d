package dev.faceage.demo

import android.content.Context
import dev.faceage.core.FaceAgeException
import org.tensorflow.lite.Interpreter
import java.io.FileNotFoundException
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** LiteRT plumbing shared by the detector and the classifier: clear errors instead of crashes. */
internal object LiteRt {
    /** The bytes of a model in the app's assets. */
    fun readAsset(context: Context, name: String): ByteArray = try {
        context.assets.open(name).use { it.readBytes() }
    } catch (e: FileNotFoundException) {
        throw FaceAgeException.MissingModel("$name is not in the app's assets: rebuild the app (the build copies it from faceage_tf/assets/)")
    }

    /** An interpreter over a copy of [bytes] in native memory (LiteRT reads the model from there). */
    fun interpreter(bytes: ByteArray, name: String, numThreads: Int): Interpreter {
        val model = ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder())
        model.put(bytes)
        model.rewind()
        return try {
            Interpreter(model, Interpreter.Options().setNumThreads(numThreads))
        } catch (e: IllegalArgumentException) {
            throw FaceAgeException.NotAModel("$name: LiteRT cannot load it (${e.message})")
        }
    }

    fun floatBuffer(floats: Int): ByteBuffer = ByteBuffer.allocateDirect(floats * 4).order(ByteOrder.nativeOrder())
}
