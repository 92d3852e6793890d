package dev.faceage.core

import org.junit.Test
import kotlin.test.assertEquals

class TensorCheckTest {
    private val card = ModelCard.fromTflite(TestFiles.modelBytes())
    private val s = card.inputSize
    private val groups = card.ageGroupLabels.size

    private fun outputs(prefix: String = "", batch: Int = -1, groupSize: Int = groups) = listOf(
        TensorInfo(prefix + "age", listOf(batch, 1)),
        TensorInfo(prefix + "age_group", listOf(batch, groupSize)),
        TensorInfo(prefix + "gender", listOf(batch, 2)),
    )

    private val image = listOf(TensorInfo("image", listOf(-1, s, s, 3)))

    @Test
    fun bindsMatchingTensors() {
        val binding = TensorCheck.bind(card, image, outputs())
        assertEquals(TensorBinding("image", mapOf("gender" to "gender", "age_group" to "age_group", "age" to "age")), binding)
    }

    @Test
    fun bindsQuantPrefixedOutputsAndFixedBatch() {
        // int8 QAT exports name outputs quant_*; Android's Tensor.shape() reports batch 1.
        val binding = TensorCheck.bind(card, listOf(TensorInfo("image", listOf(1, s, s, 3))), outputs("quant_", batch = 1))
        assertEquals("quant_age_group", binding.outputs["age_group"])
    }

    @Test
    fun wrongOutputShape() {
        assertFails<FaceAgeException.TensorMismatch>("'age_group'", "[-1, 3]", "[batch, $groups]") {
            TensorCheck.bind(card, image, outputs(groupSize = 3))
        }
    }

    @Test
    fun wrongInputSize() {
        assertFails<FaceAgeException.TensorMismatch>("'image'", "[-1, 96, 96, 3]") {
            TensorCheck.bind(card, listOf(TensorInfo("image", listOf(-1, 96, 96, 3))), outputs())
        }
    }

    @Test
    fun missingOrExtraTensors() {
        assertFails<FaceAgeException.TensorMismatch>("outputs [age, gender]", "different model") {
            TensorCheck.bind(card, image, outputs().filter { it.name != "age_group" })
        }
        assertFails<FaceAgeException.TensorMismatch>("inputs [input_1]") {
            TensorCheck.bind(card, listOf(TensorInfo("input_1", listOf(-1, s, s, 3))), outputs())
        }
    }

    @Test
    fun quantizedInputIsRefused() {
        assertFails<FaceAgeException.TensorMismatch>("int8", "float32") {
            TensorCheck.bind(card, listOf(TensorInfo("image", listOf(-1, s, s, 3), "int8")), outputs())
        }
    }
}
