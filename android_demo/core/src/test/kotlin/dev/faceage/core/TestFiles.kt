package dev.faceage.core

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** Paths handed in by run_core_tests.sh (or Gradle) as system properties. */
object TestFiles {
    /** The real model, `faceage_tf/assets/faceage.tflite` by default. */
    val model: File = File(System.getProperty("faceage.model") ?: "../../faceage_tf/assets/faceage.tflite")

    /** The card written next to the model at export (`faceage.json`). */
    val modelJson: File = File(model.path.removeSuffix(".tflite") + ".json")

    /** Golden vectors from `python -m faceage_tf.golden`, or null when they could not be made. */
    val goldenDir: File? = System.getProperty("faceage.golden")?.let(::File)?.takeIf { File(it, "golden.json").isFile }

    /** Why there are no golden vectors (printed by the script). */
    val goldenSkipReason: String = System.getProperty("faceage.goldenSkip") ?: "golden vectors not generated (set -Dfaceage.golden)"

    fun modelBytes(): ByteArray {
        check(model.isFile) { "model not found at ${model.absolutePath} (set -Dfaceage.model)" }
        return model.readBytes()
    }

    fun readInts(file: File): IntArray {
        val buf = ByteBuffer.wrap(file.readBytes()).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer()
        return IntArray(buf.remaining()).also { buf.get(it) }
    }

    fun readFloats(file: File): FloatArray {
        val buf = ByteBuffer.wrap(file.readBytes()).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
        return FloatArray(buf.remaining()).also { buf.get(it) }
    }
}

/** Asserts that [block] throws a [T] whose message contains every one of [parts]; returns it. */
inline fun <reified T : FaceAgeException> assertFails(vararg parts: String, block: () -> Unit): T {
    val error = try {
        block()
        null
    } catch (e: FaceAgeException) {
        e
    } ?: throw AssertionError("expected ${T::class.simpleName}, nothing was thrown")
    if (error !is T) throw AssertionError("expected ${T::class.simpleName}, got ${error::class.simpleName}: ${error.message}")
    for (part in parts) {
        if (!error.message.orEmpty().contains(part)) throw AssertionError("message lacks '$part': ${error.message}")
    }
    return error
}
