package dev.faceage.demo

import android.content.Context
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.graphics.RectF
import android.util.AttributeSet
import android.view.View
import kotlin.math.max
import kotlin.math.min
import kotlin.math.roundToInt

/** Draws a box and "gender, age group (expected age)" over each face. */
class OverlayView(context: Context, attrs: AttributeSet?) : View(context, attrs) {
    private var faces: List<FaceResult> = emptyList()
    private var imageWidth = 1
    private var imageHeight = 1
    private var fill = true

    private val boxPaint = Paint().apply { style = Paint.Style.STROKE; strokeWidth = 6f; color = Color.GREEN }
    private val textPaint = Paint().apply { color = Color.WHITE; textSize = 44f; isAntiAlias = true }
    private val textBackground = Paint().apply { color = Color.argb(160, 0, 0, 0) }

    /**
     * @param fill true when the image under the overlay is scaled to fill the view (the camera
     *   preview's FILL_CENTER), false when it is scaled to fit (the photo's fitCenter).
     */
    fun show(faces: List<FaceResult>, imageWidth: Int, imageHeight: Int, fill: Boolean) {
        this.faces = faces
        this.imageWidth = imageWidth
        this.imageHeight = imageHeight
        this.fill = fill
        invalidate()
    }

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        val sx = width.toFloat() / imageWidth
        val sy = height.toFloat() / imageHeight
        val scale = if (fill) max(sx, sy) else min(sx, sy)
        val dx = (width - imageWidth * scale) / 2
        val dy = (height - imageHeight * scale) / 2
        for (face in faces) {
            val box = RectF(face.box.left * scale + dx, face.box.top * scale + dy, face.box.right * scale + dx, face.box.bottom * scale + dy)
            canvas.drawRect(box, boxPaint)
            val a = face.age
            val label = "${a.gender} ${(a.genderProbability * 100).roundToInt()}%, ${a.ageGroup} (${a.age.roundToInt()})"
            val top = max(box.top - textPaint.textSize - 8, 0f)
            canvas.drawRect(box.left, top, box.left + textPaint.measureText(label) + 16, top + textPaint.textSize + 8, textBackground)
            canvas.drawText(label, box.left + 8, top + textPaint.textSize, textPaint)
        }
    }
}
