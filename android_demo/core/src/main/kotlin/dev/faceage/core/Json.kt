package dev.faceage.core

/**
 * A small JSON parser (RFC 8259) so the core needs no library: kotlinx.serialization is not
 * available where the core is tested, and org.json is Android-only.
 *
 * Objects become `Map<String, Any?>` (key order kept), arrays `List<Any?>`, numbers `Double`,
 * plus `String`, `Boolean` and `null`.
 */
object Json {
    /** @throws IllegalArgumentException naming the offset of the first error. */
    fun parse(text: String): Any? {
        val parser = Parser(text)
        val value = parser.value()
        parser.skipSpace()
        if (parser.pos != text.length) parser.fail("unexpected text after the JSON value")
        return value
    }

    private class Parser(val text: String) {
        var pos = 0

        fun fail(what: String): Nothing = throw IllegalArgumentException("$what at offset $pos")

        fun skipSpace() {
            while (pos < text.length && text[pos] in " \t\r\n") pos++
        }

        fun value(): Any? {
            skipSpace()
            if (pos >= text.length) fail("unexpected end of JSON")
            return when (text[pos]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> number()
            }
        }

        fun literal(word: String, result: Any?): Any? {
            if (!text.startsWith(word, pos)) fail("invalid literal")
            pos += word.length
            return result
        }

        fun obj(): Map<String, Any?> {
            val result = LinkedHashMap<String, Any?>()
            pos++ // '{'
            skipSpace()
            if (pos < text.length && text[pos] == '}') { pos++; return result }
            while (true) {
                skipSpace()
                if (pos >= text.length || text[pos] != '"') fail("expected a string key")
                val key = string()
                skipSpace()
                if (pos >= text.length || text[pos] != ':') fail("expected ':'")
                pos++
                result[key] = value()
                skipSpace()
                when (if (pos < text.length) text[pos] else ' ') {
                    ',' -> pos++
                    '}' -> { pos++; return result }
                    else -> fail("expected ',' or '}'")
                }
            }
        }

        fun array(): List<Any?> {
            val result = ArrayList<Any?>()
            pos++ // '['
            skipSpace()
            if (pos < text.length && text[pos] == ']') { pos++; return result }
            while (true) {
                result.add(value())
                skipSpace()
                when (if (pos < text.length) text[pos] else ' ') {
                    ',' -> pos++
                    ']' -> { pos++; return result }
                    else -> fail("expected ',' or ']'")
                }
            }
        }

        fun string(): String {
            val out = StringBuilder()
            pos++ // opening quote
            while (true) {
                if (pos >= text.length) fail("unterminated string")
                val c = text[pos++]
                when {
                    c == '"' -> return out.toString()
                    c == '\\' -> {
                        if (pos >= text.length) fail("unterminated string")
                        when (val e = text[pos++]) {
                            '"', '\\', '/' -> out.append(e)
                            'b' -> out.append('\b')
                            'f' -> out.append('\u000C')
                            'n' -> out.append('\n')
                            'r' -> out.append('\r')
                            't' -> out.append('\t')
                            'u' -> {
                                if (pos + 4 > text.length) fail("short \\u escape")
                                val code = text.substring(pos, pos + 4).toIntOrNull(16) ?: fail("bad \\u escape")
                                out.append(code.toChar())
                                pos += 4
                            }
                            else -> fail("bad escape '\\$e'")
                        }
                    }
                    c < ' ' -> fail("control character in string")
                    else -> out.append(c)
                }
            }
        }

        fun number(): Double {
            val start = pos
            if (pos < text.length && text[pos] == '-') pos++
            while (pos < text.length && (text[pos].isDigit() || text[pos] in ".eE+-")) pos++
            val token = text.substring(start, pos)
            // Kotlin's toDouble also accepts "NaN", "1f", "0x1p3"...; the regex keeps to JSON.
            if (!NUMBER.matches(token)) { pos = start; fail("invalid value") }
            return token.toDouble()
        }
    }

    private val NUMBER = Regex("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?")
}
