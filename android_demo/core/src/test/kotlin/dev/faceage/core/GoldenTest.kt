package dev.faceage.core

import org.junit.Assume.assumeTrue
import org.junit.Before
import org.junit.Test
import java.io.File
import java.security.MessageDigest
import kotlin.math.abs
import kotlin.test.assertEquals
import kotlin.test.assertTrue

/**
 * The phone computes what Python computes: golden vectors written by `python -m faceage_tf.golden`
 * from real faces, checked against this module. Skipped (with the reason) when they are absent.
 */
class GoldenTest {
    private lateinit var dir: File
    private lateinit var golden: Map<*, *>
    private val data = TestFiles.modelBytes()
    private val card = ModelCard.fromTflite(data)

    @Before
    fun load() {
        assumeTrue(TestFiles.goldenSkipReason, TestFiles.goldenDir != null)
        dir = TestFiles.goldenDir!!
        golden = Json.parse(File(dir, "golden.json").readText()) as Map<*, *>
    }

    private val faces: List<Map<*, *>> get() = (golden["faces"] as List<*>).map { it as Map<*, *> }

    private fun floats(value: Any?) = (value as List<*>).map { (it as Double).toFloat() }.toFloatArray()

    @Test
    fun goldenWasMadeFromThisModel() {
        val sha = MessageDigest.getInstance("SHA-256").digest(data).joinToString("") { "%02x".format(it) }
        assertEquals(sha, golden["model_sha256"], "golden vectors are stale: regenerate them for ${TestFiles.model}")
        assertTrue(faces.isNotEmpty())
    }

    @Test
    fun cardSchemaMatchesPython() {
        val schema = golden["schema"] as Map<*, *>
        assertEquals((schema["input_size"] as Double).toInt(), card.inputSize)
        assertEquals((schema["mean"] as Double).toFloat(), card.mean)
        assertEquals((schema["std"] as Double).toFloat(), card.std)
        assertEquals(schema["gender_labels"], card.genderLabels)
        assertEquals(schema["age_group_labels"], card.ageGroupLabels)
    }

    @Test
    fun cardBindsTheTensorsLiteRtReports() {
        val tensors = golden["tensors"] as Map<*, *>
        fun infos(key: String) = (tensors[key] as List<*>).map { t ->
            t as Map<*, *>
            TensorInfo(t["name"] as String, (t["shape"] as List<*>).map { (it as Double).toInt() }, t["dtype"] as String)
        }
        val binding = TensorCheck.bind(card, infos("inputs"), infos("outputs"))
        assertEquals(setOf("gender", "age_group", "age"), binding.outputs.keys)
    }

    @Test
    fun preprocessedTensorsAgree() {
        val pre = Preprocessor(card)
        for (face in faces) {
            val expected = TestFiles.readFloats(File(dir, face["tensor"] as String))
            val actual = pre.toTensor(TestFiles.readInts(File(dir, face["argb"] as String)))
            assertEquals(expected.size, actual.size)
            val worst = expected.indices.maxOf { abs(expected[it] - actual[it]) }
            assertTrue(worst <= 1e-6f, "${face["source"]}: tensors differ by up to $worst")
        }
    }

    @Test
    fun decodedResultsAgree() {
        val decoder = OutputDecoder(card)
        for (face in faces) {
            val outputs = face["outputs"] as Map<*, *>
            val want = face["decoded"] as Map<*, *>
            val got = decoder.decode(floats(outputs["gender"]), floats(outputs["age_group"]), floats(outputs["age"]))
            val name = face["source"]
            assertEquals(want["gender"], got.gender, "$name gender")
            assertEquals(want["age_group"], got.ageGroup, "$name age group")
            assertEquals((want["gender_probability"] as Double).toFloat(), got.genderProbability, 1e-6f, "$name gender probability")
            assertEquals((want["age_group_probability"] as Double).toFloat(), got.ageGroupProbability, 1e-6f, "$name age group probability")
            assertEquals(want["age"] as Double, got.age.toDouble(), 1e-4, "$name expected age")
            val range = want["age_range"] as List<*>
            assertEquals(range[0] as Double, got.ageRange.first, 1e-6, "$name age range, low end")
            assertEquals(range[1] as Double, got.ageRange.second, 1e-6, "$name age range, high end")
        }
    }
}
