package dev.faceage.core

import org.junit.Test
import kotlin.math.cos
import kotlin.math.sin
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertTrue

class BlazeFaceTest {
    @Test
    fun anchorLayoutsMatchTheModels() {
        assertEquals(896, BlazeFaceSpec.SHORT_RANGE.numAnchors) // 16x16x2 + 8x8x6
        assertEquals(2304, BlazeFaceSpec.FULL_RANGE.numAnchors) // 48x48x1
        val a = BlazeFaceSpec.SHORT_RANGE.anchors
        // First cell of the stride-8 map: two anchors at (0.5/16, 0.5/16); then the next cell.
        assertContentEquals(floatArrayOf(0.03125f, 0.03125f, 0.03125f, 0.03125f, 0.09375f, 0.03125f), a.copyOfRange(0, 6))
        // The stride-16 map starts at anchor 512, six anchors per cell at (0.5/8, 0.5/8).
        assertEquals(0.0625f, a[2 * 512])
        assertEquals(0.0625f, a[2 * 517 + 1])
    }

    private fun detection(left: Float, top: Float, right: Float, bottom: Float, score: Float) =
        Detection(floatArrayOf(left, top, right, bottom), FloatArray(12) { left + it }, score)

    @Test
    fun weightedNmsMergesOverlapsAndKeepsSeparateFaces() {
        val faces = BlazeFace.weightedNms(listOf(
            detection(0.1f, 0.1f, 0.3f, 0.3f, 0.6f),
            detection(0.12f, 0.1f, 0.32f, 0.3f, 0.9f), // overlaps the first: IoU 0.82
            detection(0.6f, 0.6f, 0.8f, 0.8f, 0.7f),
        ))
        assertEquals(2, faces.size)
        assertEquals(0.9f, faces[0].score) // the best one's score
        assertEquals((0.6f * 0.1f + 0.9f * 0.12f) / 1.5f, faces[0].box[0], 1e-6f) // score-weighted mean
        assertEquals(0.7f, faces[1].score)
        assertContentEquals(floatArrayOf(0.6f, 0.6f, 0.8f, 0.8f), faces[1].box)
    }

    @Test
    fun iouOfDisjointAndIdenticalBoxes() {
        val box = floatArrayOf(0f, 0f, 1f, 1f)
        assertEquals(1f, BlazeFace.iou(box, box))
        assertEquals(0f, BlazeFace.iou(box, floatArrayOf(2f, 2f, 3f, 3f)))
    }

    @Test
    fun wrongOutputSizesAreRefused() {
        assertFails<FaceAgeException.BadInput>("896", "16") {
            BlazeFace.decode(FloatArray(10), FloatArray(896), BlazeFaceSpec.SHORT_RANGE)
        }
    }

    @Test
    fun letterboxCentresAndMapsBack() {
        val image = RgbImage(200, 100, IntArray(200 * 100) { 0xFFFFFFFF.toInt() })
        val tensor = FloatArray(128 * 128 * 3)
        val placement = BlazeFace.letterbox(image, 128, 0.0, tensor)
        assertEquals(Letterbox(128, 0.64, 0.64, 0, 32), placement)
        assertEquals(-1f, tensor[0]) // black bar above
        assertEquals(1f, tensor[(64 * 128 + 64) * 3]) // white image in the middle
        assertEquals(100.0, placement.toImageX(0.5f), 1e-9)
        assertEquals(50.0, placement.toImageY(0.5f), 1e-9)
    }

    @Test
    fun similarityRecoversAKnownTransform() {
        val angle = 0.3
        val scale = 2.5
        val src = doubleArrayOf(10.0, 20.0, 50.0, 22.0, 30.0, 40.0, 31.0, 60.0)
        val dst = DoubleArray(8) { i ->
            val x = src[i - i % 2]
            val y = src[i - i % 2 + 1]
            if (i % 2 == 0) scale * (cos(angle) * x - sin(angle) * y) + 7.0 else scale * (sin(angle) * x + cos(angle) * y) - 3.0
        }
        val t = Alignment.similarityTransform(src, dst)
        val want = doubleArrayOf(scale * cos(angle), -scale * sin(angle), 7.0, scale * sin(angle), scale * cos(angle), -3.0)
        for (i in 0 until 6) assertEquals(want[i], t[i], 1e-9)
        val back = Alignment.invert(t)
        // Inverse then forward is the identity.
        val x = 12.0
        val y = -4.0
        val u = t[0] * x + t[1] * y + t[2]
        val v = t[3] * x + t[4] * y + t[5]
        assertEquals(x, back[0] * u + back[1] * v + back[2], 1e-9)
        assertEquals(y, back[3] * u + back[4] * v + back[5], 1e-9)
    }

    @Test
    fun badTemplatesAndKeypointsAreRefused() {
        assertFails<FaceAgeException.InvalidCard>("4 points") { FaceTemplate(listOf(0.3 to 0.4)) }
        assertFails<FaceAgeException.InvalidCard>("left eye") {
            FaceTemplate(listOf(0.7 to 0.4, 0.3 to 0.4, 0.5 to 0.55, 0.5 to 0.7))
        }
        assertFails<FaceAgeException.BadInput>("coincide") {
            Alignment.similarityTransform(DoubleArray(8) { 1.0 }, DoubleArray(8) { it.toDouble() })
        }
        assertTrue(Alignment.MAX_INTERMEDIATE >= 1)
    }

    @Test
    fun pillowResizeOfAFlatImageStaysFlat() {
        val grey = 0xFF808080.toInt()
        val out = Pillow.resize(RgbImage(50, 30, IntArray(1500) { grey }), 17, 45)
        assertTrue(out.pixels.all { it == grey })
    }
}
