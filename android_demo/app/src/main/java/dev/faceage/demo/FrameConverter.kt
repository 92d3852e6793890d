package dev.faceage.demo

import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Matrix
import android.graphics.RectF
import androidx.camera.core.ImageProxy
import java.nio.ByteBuffer

/**
 * CameraX frames (RGBA_8888) to an upright bitmap of the frame's crop rect, the part of the
 * sensor image the preview shows when both use cases share a ViewPort. The bitmaps, canvas
 * and matrix are made once and reused, so a steady camera stream allocates no bitmaps.
 * Not thread-safe: call it from the analysis thread; the result is valid until the next call.
 */
class FrameConverter {
    private var frame: Bitmap? = null
    private var upright: Bitmap? = null
    private var padded: ByteBuffer? = null
    private val canvas = Canvas()
    private val matrix = Matrix()
    private val bounds = RectF()

    fun upright(image: ImageProxy): Bitmap {
        val plane = image.planes[0]
        val rowPixels = plane.rowStride / plane.pixelStride // rows may be padded past the width
        val frame = reuse(frame, rowPixels, image.height).also { frame = it }
        frame.copyPixelsFromBuffer(fullSize(plane.buffer, frame.byteCount))

        val crop = image.cropRect
        val degrees = image.imageInfo.rotationDegrees
        val sideways = degrees % 180 != 0
        val out = reuse(upright, if (sideways) crop.height() else crop.width(), if (sideways) crop.width() else crop.height())
        upright = out
        // Rotate the crop upright about the origin and move it back there; the crop rect's own
        // offset is applied first (preTranslate).
        matrix.setRotate(degrees.toFloat())
        bounds.set(0f, 0f, crop.width().toFloat(), crop.height().toFloat())
        matrix.mapRect(bounds)
        matrix.postTranslate(-bounds.left, -bounds.top)
        matrix.preTranslate(-crop.left.toFloat(), -crop.top.toFloat())
        canvas.setBitmap(out)
        canvas.drawBitmap(frame, matrix, null) // quarter turns of whole pixels: no filtering needed
        canvas.setBitmap(null)
        return out
    }

    /** Some devices end the buffer after the last row's pixels, short of a full row stride. */
    private fun fullSize(buffer: ByteBuffer, bytes: Int): ByteBuffer {
        buffer.rewind()
        if (buffer.remaining() >= bytes) return buffer
        val copy = padded?.takeIf { it.capacity() == bytes } ?: ByteBuffer.allocateDirect(bytes).also { padded = it }
        copy.clear()
        copy.put(buffer)
        copy.rewind()
        return copy
    }

    private fun reuse(old: Bitmap?, width: Int, height: Int): Bitmap =
        if (old != null && old.width == width && old.height == height) old
        else Bitmap.createBitmap(width, height, Bitmap.Config.ARGB_8888)
}
