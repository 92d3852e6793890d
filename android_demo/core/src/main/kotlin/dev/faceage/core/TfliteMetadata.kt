package dev.faceage.core

import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.security.MessageDigest

/**
 * Finds metadata entries in a TFLite flatbuffer: a port of `faceage_tf/modelcard.py`'s walker.
 *
 * Only the few fields on the path Model.metadata[i] -> (name, buffer index) ->
 * Model.buffers[index].data are read, every offset bounds-checked, so a truncated or foreign
 * file gives [FaceAgeException.NotAModel] instead of an IndexOutOfBounds crash.
 */
object TfliteMetadata {
    const val CARD_NAME = "faceage_model_card"

    // Field indices from TFLite's schema.fbs.
    private const val MODEL_BUFFERS = 4
    private const val MODEL_METADATA = 6
    private const val BUFFER_DATA = 0
    private const val METADATA_NAME = 0
    private const val METADATA_BUFFER = 1

    /** Where an entry's bytes are in the file. */
    data class Region(val offset: Int, val length: Int)

    /**
     * Every metadata entry: name -> region of its bytes.
     * @throws FaceAgeException.NotAModel if [data] is not a TFLite flatbuffer or is corrupt.
     */
    fun regions(data: ByteArray, name: String = "<model>"): Map<String, Region> {
        if (data.size < 8 || String(data, 4, 4, Charsets.ISO_8859_1) != "TFL3") {
            throw FaceAgeException.NotAModel("$name: not a TFLite model (no 'TFL3' identifier)")
        }
        val r = Reader(data, name)
        val model = r.indirect(0)
        val buffersPos = r.field(model, MODEL_BUFFERS) ?: return emptyMap()
        val metadataPos = r.field(model, MODEL_METADATA) ?: return emptyMap()
        val (buffers, nBuffers) = r.vector(buffersPos)
        val (entries, nEntries) = r.vector(metadataPos)
        val result = LinkedHashMap<String, Region>()
        for (i in 0 until nEntries) {
            val entry = r.indirect(entries + 4 * i)
            val namePos = r.field(entry, METADATA_NAME) ?: continue
            val bufferPos = r.field(entry, METADATA_BUFFER) ?: continue
            val nameRegion = r.bytes(namePos)
            val entryName = String(data, nameRegion.offset, nameRegion.length, Charsets.UTF_8)
            val index = r.u32(bufferPos)
            if (index >= nBuffers) r.fail("metadata '$entryName' points at buffer $index of $nBuffers")
            val buffer = r.indirect(buffers + 4 * index.toInt())
            val dataPos = r.field(buffer, BUFFER_DATA)
            result[entryName] = if (dataPos != null) r.bytes(dataPos) else Region(0, 0)
        }
        return result
    }

    /**
     * The model card's JSON text.
     * @throws FaceAgeException.NotAModel or [FaceAgeException.MissingCard].
     */
    fun cardJson(data: ByteArray, name: String = "<model>"): String {
        val region = regions(data, name)[CARD_NAME]
            ?: throw FaceAgeException.MissingCard(
                "$name: TFLite model has no faceage model card (metadata '$CARD_NAME'); " +
                    "export it with faceage_tf.export, which embeds one"
            )
        return String(data, region.offset, region.length, Charsets.UTF_8)
    }

    /** sha256 (hex) of the file with the card's own sha256 value zeroed: the hash the card carries. */
    fun fileHash(data: ByteArray, name: String = "<model>"): String {
        val digest = MessageDigest.getInstance("SHA-256")
        val region = regions(data, name)[CARD_NAME]
        val value = region?.let { cardHashValue(data, it) }
        if (region == null || value == null) {
            digest.update(data)
        } else {
            // Card format 2: the whole file, the card included, with only the card's own sha256
            // value (64 hex digits) replaced by zeros, so editing any field breaks the hash.
            val body = data.copyOfRange(region.offset, region.offset + region.length)
            val field = "\"sha256\": \"$value\"".toByteArray(Charsets.UTF_8)
            val at = occurrences(body, field)
            if (at.size != 1) throw FaceAgeException.InvalidCard("$name: model card holds its sha256 field ${at.size} times")
            val zeros = "\"sha256\": \"${"0".repeat(64)}\"".toByteArray(Charsets.UTF_8)
            zeros.copyInto(body, at[0])
            digest.update(data, 0, region.offset)
            digest.update(body)
            val end = region.offset + region.length
            digest.update(data, end, data.size - end)
        }
        return digest.digest().joinToString("") { "%02x".format(it) }
    }

    /** The card's `sha256` string when it is 64 characters long, else null (as Python's file_hash). */
    private fun cardHashValue(data: ByteArray, region: Region): String? {
        val text = String(data, region.offset, region.length, Charsets.UTF_8)
        val card = try {
            Json.parse(text)
        } catch (e: IllegalArgumentException) {
            return null
        }
        return ((card as? Map<*, *>)?.get("sha256") as? String)?.takeIf { it.length == 64 }
    }

    private fun occurrences(haystack: ByteArray, needle: ByteArray): List<Int> =
        (0..haystack.size - needle.size).filter { i -> needle.indices.all { haystack[i + it] == needle[it] } }

    private class Reader(data: ByteArray, val name: String) {
        private val buf: ByteBuffer = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN)
        private val size = data.size

        fun fail(what: String): Nothing =
            throw FaceAgeException.NotAModel("$name: truncated or corrupt TFLite file ($what)")

        private fun check(pos: Long, width: Int) {
            if (pos < 0 || pos > size - width) fail("offset $pos out of range")
        }

        fun u16(pos: Long): Int { check(pos, 2); return buf.getShort(pos.toInt()).toInt() and 0xFFFF }
        fun u32(pos: Long): Long { check(pos, 4); return buf.getInt(pos.toInt()).toLong() and 0xFFFFFFFFL }
        fun i32(pos: Long): Long { check(pos, 4); return buf.getInt(pos.toInt()).toLong() }

        /** Absolute position of field [index] of the table at [table], or null if absent. */
        fun field(table: Long, index: Int): Long? {
            val vtable = table - i32(table)
            if (4 + 2 * index >= u16(vtable)) return null
            val offset = u16(vtable + 4 + 2 * index)
            return if (offset != 0) table + offset else null
        }

        fun indirect(pos: Long): Long = pos + u32(pos)
        fun indirect(pos: Int): Long = indirect(pos.toLong())

        /** (position of the first element, length) of the vector referenced at [pos]. */
        fun vector(pos: Long): Pair<Int, Int> {
            val start = indirect(pos)
            val length = u32(start)
            // Positions stay Long until checked, so a huge offset cannot wrap around.
            if (start + 4 + length > size) fail("vector runs past the end of the file")
            return Pair((start + 4).toInt(), length.toInt())
        }

        fun bytes(pos: Long): Region {
            val (start, length) = vector(pos)
            return Region(start, length)
        }
    }
}
