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
        assertEquals(FaceAge(card.genderLabels[1], 0.8f, card.ageGroupLabels.last(), 0.9f, 71.5f, decoder.ageInterval(ageGroup)), result)
    }

    @Test
    fun tiesGoToTheFirstClassAsInNumpy() {
        val result = decoder.decode(floatArrayOf(0.5f, 0.5f), FloatArray(groups) { 1f / groups }, floatArrayOf(30f))
        assertEquals(card.genderLabels[0], result.gender)
        assertEquals(card.ageGroupLabels[0], result.ageGroup)
    }

    @Test
    fun ageRangeSpreadsEachGroupOverItsYears() {
        // All the probability in one group: the central 80% of its years (the other groups, with
        // none, give repeated points to numpy.interp's search).
        val edges = card.ageGroupEdges + (card.maxAge + 1)
        val g = edges.indexOfFirst { it >= 30 }
        val width = (edges[g + 1] - edges[g]).toDouble()
        val (low, high) = decoder.ageInterval(FloatArray(groups).also { it[g] = 1f })
        assertEquals(edges[g] + 0.1 * width, low, 1e-9)
        assertEquals(edges[g] + 0.9 * width, high, 1e-9)
        // Half in the first group, half in the last: the range spans (nearly) all ages.
        val (wideLow, wideHigh) = decoder.ageInterval(FloatArray(groups).also { it[0] = 0.5f; it[groups - 1] = 0.5f })
        assertEquals(edges[0] + 0.2 * (edges[1] - edges[0]), wideLow, 1e-9)
        assertEquals(edges[groups - 1] + 0.8 * (edges[groups] - edges[groups - 1]), wideHigh, 1e-9)
    }

    @Test
    fun wrongOutputSizes() {
        assertFails<FaceAgeException.BadInput>("'age_group' has 3 values", "says $groups") {
            decoder.decode(floatArrayOf(0.5f, 0.5f), FloatArray(3), floatArrayOf(1f))
        }
        assertFails<FaceAgeException.BadInput>("'gender'") { decoder.decode(FloatArray(1), FloatArray(groups), floatArrayOf(1f)) }
    }
}
