package dev.faceage.core

import org.junit.Test
import kotlin.test.assertEquals

class PreprocessorTest {
    private val card = ModelCard.fromTflite(TestFiles.modelBytes())
    private val pre = Preprocessor(card)
    private val n = card.inputSize * card.inputSize

    @Test
    fun normalisesRgbInNhwcOrderIgnoringAlpha() {
        val pixels = IntArray(n) { 0xFF000000.toInt() }
        pixels[0] = 0x00FF8001 // transparent, R=255 G=128 B=1
        val tensor = pre.toTensor(pixels)
        assertEquals(n * 3, tensor.size)
        assertEquals((255f - card.mean) / card.std, tensor[0])
        assertEquals((128f - card.mean) / card.std, tensor[1])
        assertEquals((1f - card.mean) / card.std, tensor[2])
        assertEquals((0f - card.mean) / card.std, tensor[3])
    }

    @Test
    fun wrongPixelCount() {
        assertFails<FaceAgeException.BadInput>("${card.inputSize}x${card.inputSize}", "got 10") { pre.toTensor(IntArray(10)) }
    }
}
