package dev.faceage.core

import org.junit.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

class JsonTest {
    @Test
    fun parsesNestedValues() {
        val value = Json.parse("""{"a": [1, -2.5e1, true, false, null], "b": {"c": "x\"\\\/\n\u00e9"}, "d": []}""")
        assertEquals(
            mapOf("a" to listOf(1.0, -25.0, true, false, null), "b" to mapOf("c" to "x\"\\/\n\u00e9"), "d" to emptyList<Any?>()),
            value,
        )
    }

    @Test
    fun keepsFloat32ValuesExact() {
        // Python writes float32 outputs as the shortest double repr; reading back must give the same float.
        val f = 0.13164551556110382
        assertEquals(f.toFloat(), (Json.parse("[$f]") as List<*>)[0].let { (it as Double).toFloat() })
    }

    @Test
    fun rejectsInvalidJson() {
        for (text in listOf("", "{", "[1,]", "{\"a\" 1}", "NaN", "01", "1.", "\"open", "{} x", "[1f]", "tru")) {
            val error = assertFailsWith<IllegalArgumentException>(text) { Json.parse(text) }
            assertTrue(error.message!!.contains("offset"), error.message)
        }
    }
}
