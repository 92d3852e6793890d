package dev.faceage.core

import org.junit.Test
import kotlin.test.assertEquals

class ViewMappingTest {
    @Test
    fun fillCropsTheLongerSideAndCentres() {
        // A 400x300 image filling a 300x300 view: scale 1, 50 px cut on each side.
        val m = ViewMapping(400, 300, 300, 300, fill = true, mirror = false)
        assertEquals(1f, m.scale)
        assertEquals(Box(-50f, 0f, 250f, 300f), m.box(Box(0f, 0f, 300f, 300f)))
    }

    @Test
    fun fitLetterboxes() {
        // A 400x200 image fitted into 200x200: scale 0.5, 50 px bars above and below.
        val m = ViewMapping(400, 200, 200, 200, fill = false, mirror = false)
        assertEquals(Box(0f, 50f, 200f, 150f), m.box(Box(0f, 0f, 400f, 200f)))
    }

    @Test
    fun mirrorFlipsLeftAndRightForTheFrontCamera() {
        val m = ViewMapping(100, 100, 100, 100, fill = true, mirror = true)
        assertEquals(90f, m.x(10f))
        assertEquals(Box(70f, 10f, 90f, 20f), m.box(Box(10f, 10f, 30f, 20f)))
    }

    @Test
    fun photoSampleSizeKeepsBigPhotosDrawable() {
        assertEquals(1, PhotoSize.sampleSize(3264, 2448)) // 8 MP
        assertEquals(2, PhotoSize.sampleSize(4000, 3000)) // 12 MP
        assertEquals(2, PhotoSize.sampleSize(6000, 4500)) // 27 MP: the size that crashed
        assertEquals(4, PhotoSize.sampleSize(12000, 9000)) // 108 MP
        assertEquals(1, PhotoSize.sampleSize(1, 100_000))
        assertFails<FaceAgeException.BadInput>("0x10") { PhotoSize.sampleSize(0, 10) }
    }
}
