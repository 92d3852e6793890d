package dev.faceage.core

import org.junit.Test
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import kotlin.test.fail

class ModelCardTest {
    private val data = TestFiles.modelBytes()
    private val card = ModelCard.fromTflite(data, "faceage.tflite", verifyHash = true)

    @Test
    fun cardInTfliteEqualsTheExportedJson() {
        val json = Json.parse(TestFiles.modelJson.readText()) as Map<*, *>
        val schema = json["schema"] as Map<*, *>
        val template = (schema["template"] as Map<*, *>)["keypoints"] as List<*>
        fun ints(v: Any?) = (v as List<*>).map { (it as Double?)?.toInt() }
        fun shapes(v: Any?) = (v as Map<*, *>).entries.associate { (k, s) -> k.toString() to ints(s) }

        assertEquals(json["name"], card.name)
        assertEquals((schema["input_size"] as Double).toInt(), card.inputSize)
        assertEquals((schema["mean"] as Double).toFloat(), card.mean)
        assertEquals((schema["std"] as Double).toFloat(), card.std)
        assertEquals(schema["gender_labels"], card.genderLabels)
        assertEquals(ints(schema["age_group_edges"]), card.ageGroupEdges)
        assertEquals(schema["age_group_labels"], card.ageGroupLabels)
        assertEquals((schema["max_age"] as Double).toInt(), card.maxAge)
        assertEquals(template.map { (it as List<*>).let { p -> p[0] as Double to p[1] as Double } }, card.template.keypoints)
        assertEquals(shapes(json["inputs"]), card.inputs)
        assertEquals(shapes(json["outputs"]), card.outputs)
        assertEquals(json["sha256"], card.sha256)
        assertEquals(json["licence"], card.licence)
    }

    @Test
    fun hashCheckCatchesAModifiedFile() {
        // Change one byte of another metadata entry: the card still parses, the hash no longer fits.
        val other = TfliteMetadata.regions(data).entries.first { it.key != TfliteMetadata.CARD_NAME && it.value.length > 0 }
        val changed = data.copyOf().also { it[other.value.offset] = (it[other.value.offset] + 1).toByte() }
        ModelCard.fromTflite(changed) // without the hash check it loads
        assertFails<FaceAgeException.InvalidCard>("modified after export") { ModelCard.fromTflite(changed, verifyHash = true) }
    }

    @Test
    fun hashCoversTheCardItself() {
        // Swap the gender labels inside the card (same length): it parses, but the hash catches it.
        val from = "\"gender_labels\": [\"male\", \"female\"]".toByteArray()
        val to = "\"gender_labels\": [\"female\", \"male\"]".toByteArray()
        val at = indexOf(data, from)
        val swapped = data.copyOf().also { to.copyInto(it, at) }
        assertEquals(listOf("female", "male"), ModelCard.fromTflite(swapped).genderLabels)
        assertFails<FaceAgeException.InvalidCard>("modified after export") { ModelCard.fromTflite(swapped, verifyHash = true) }
        ModelCard.fromTflite(data, verifyHash = true) // the untouched file passes
    }

    @Test
    fun modelWithoutCard() {
        // Rename the card's metadata entry in place: a valid TFLite file with other metadata but no card.
        val name = TfliteMetadata.CARD_NAME.toByteArray()
        val at = indexOf(data, name)
        val renamed = data.copyOf().also { it[at + name.size - 1] = 'X'.code.toByte() }
        assertTrue(TfliteMetadata.regions(renamed).isNotEmpty())
        assertFails<FaceAgeException.MissingCard>("no faceage model card") { ModelCard.fromTflite(renamed, "plain.tflite") }
    }

    @Test
    fun notATfliteFile() {
        assertFails<FaceAgeException.NotAModel>("not a TFLite model") { ModelCard.fromTflite(ByteArray(0)) }
        assertFails<FaceAgeException.NotAModel>("not a TFLite model") { ModelCard.fromTflite("{\"format\": 1}".toByteArray()) }
    }

    @Test
    fun truncatedFiles() {
        val card = TfliteMetadata.regions(data).getValue(TfliteMetadata.CARD_NAME)
        assertFails<FaceAgeException.NotAModel>("truncated or corrupt") { ModelCard.fromTflite(data.copyOf(card.offset + card.length / 2)) }
        // Wherever the file is cut, the answer is a card or a FaceAgeException, never another crash.
        for (length in listOf(4, 8, 12, 16, 64, 256, 1024, card.offset, data.size / 2, data.size - 1)) {
            try {
                ModelCard.fromTflite(data.copyOf(length))
            } catch (e: FaceAgeException) {
                assertTrue(e.message!!.isNotBlank())
            } catch (e: Exception) {
                fail("cut at $length bytes: ${e::class.simpleName} instead of a FaceAgeException: ${e.message}")
            }
        }
    }

    @Test
    fun corruptOffsetsGiveClearErrors() {
        // The root offset pointing past the end of the file.
        val bad = data.copyOf().also { it[3] = 0x7F }
        assertFails<FaceAgeException.NotAModel>("out of range") { ModelCard.fromTflite(bad) }
    }

    @Test
    fun cardThatIsNotJson() {
        val region = TfliteMetadata.regions(data).getValue(TfliteMetadata.CARD_NAME)
        val broken = data.copyOf().also { it[region.offset] = 'x'.code.toByte() }
        assertFails<FaceAgeException.InvalidCard>("not valid JSON") { ModelCard.fromTflite(broken) }
    }

    @Test
    fun invalidCardFields() {
        val text = TfliteMetadata.cardJson(data)
        fun edited(from: String, to: String): String {
            val pattern = Regex(from)
            assertTrue(pattern.containsMatchIn(text), "card text lacks $from")
            return text.replaceFirst(pattern, to)
        }
        assertFails<FaceAgeException.InvalidCard>("format") { ModelCard.fromJson(edited("faceage_tf\\.model_card/2", "other/2")) }
        assertFails<FaceAgeException.InvalidCard>("schema.std") { ModelCard.fromJson(edited("\"std\": [0-9.]+", "\"std\": 0")) }
        assertFails<FaceAgeException.InvalidCard>("schema.input_size") { ModelCard.fromJson(edited("\"input_size\": [0-9]+", "\"input_size\": \"big\"")) }
        assertFails<FaceAgeException.InvalidCard>("gender_labels") { ModelCard.fromJson(edited("\"gender_labels\": \\[", "\"gender_labels\": [\"x\", ")) }
        assertFails<FaceAgeException.InvalidCard>("age_group_edges") { ModelCard.fromJson(edited("\"age_group_edges\": \\[0", "\"age_group_edges\": [1")) }
        assertFails<FaceAgeException.InvalidCard>("inputs.image") { ModelCard.fromJson(edited("\"image\": \\[null, ", "\"image\": [null, 7, ")) }
        assertFails<FaceAgeException.InvalidCard>("schema.template", "re-export") { ModelCard.fromJson(edited("\"template\"", "\"crop\"")) }
        assertFails<FaceAgeException.InvalidCard>("schema.template.keypoints", "inside the crop") {
            ModelCard.fromJson(edited("\"keypoints\": \\[\\s*\\[\\s*[0-9.]+", "\"keypoints\": [[1.5"))
        }
        assertFails<FaceAgeException.InvalidCard>("outputs.age_group") {
            ModelCard.fromJson(edited("\"age_group\": \\[null, [0-9]+\\]", "\"age_group\": [null, 3]"))
        }
    }

    private fun indexOf(haystack: ByteArray, needle: ByteArray): Int =
        (0..haystack.size - needle.size).first { i -> needle.indices.all { haystack[i + it] == needle[it] } }
}
