package dev.faceage.core

import org.junit.Test
import kotlin.test.assertEquals

class OutputDecoderTest {
    private val card = ModelCard.fromTflite(TestFiles.modelBytes())
    private val decoder = OutputDecoder(card)
    private val groups = card.ageGroupLabels.size

    @Test
    fun picksTheMostLikelyClasses() {
        val ageGroup = FloatArray(groups) { 0.01f }.also { it[groups - 1] = 0.9f }
        val result = decoder.decode(floatArrayOf(0.2f, 0.8f), ageGroup, floatArrayOf(71.5f))
        assertEquals(FaceAge(card.genderLabels[1], 0.8f, card.ageGroupLabels.last(), 0.9f, 71.5f), result)
    }

    @Test
    fun tiesGoToTheFirstClassAsInNumpy() {
        val result = decoder.decode(floatArrayOf(0.5f, 0.5f), FloatArray(groups) { 1f / groups }, floatArrayOf(30f))
        assertEquals(card.genderLabels[0], result.gender)
        assertEquals(card.ageGroupLabels[0], result.ageGroup)
    }

    @Test
    fun wrongOutputSizes() {
        assertFails<FaceAgeException.BadInput>("'age_group' has 3 values", "says $groups") {
            decoder.decode(floatArrayOf(0.5f, 0.5f), FloatArray(3), floatArrayOf(1f))
        }
        assertFails<FaceAgeException.BadInput>("'gender'") { decoder.decode(FloatArray(1), FloatArray(groups), floatArrayOf(1f)) }
    }
}
