package dev.faceage.core

import org.junit.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals

class BoxExpanderTest {
    @Test
    fun squareAroundTheCentre() {
        // Same numbers as FaceCrop(1.6, 0).expand((10, 20, 110, 220)) in Python: side 320 around (60, 120).
        assertEquals(Box(-100f, -40f, 220f, 280f), BoxExpander.expand(Box(10f, 20f, 110f, 220f), CropConvention(1.6, 0.0)))
    }

    @Test
    fun shiftMovesTheCropDown() {
        // side 200, centre (50, 50 + 0.1 * 200).
        assertEquals(Box(-50f, -30f, 150f, 170f), BoxExpander.expand(Box(0f, 0f, 100f, 100f), CropConvention(2.0, 0.1)))
    }

    @Test
    fun pixelBoundsRoundHalfToEvenLikePython() {
        assertContentEquals(intArrayOf(0, 2, 2, 4), BoxExpander.pixelBounds(Box(0.5f, 1.5f, 2.5f, 3.5f)))
        assertContentEquals(intArrayOf(-2, 5, -1, 6), BoxExpander.pixelBounds(Box(-2.4f, 5f, -2.4f, 5.2f))) // at least 1 px
    }
}
