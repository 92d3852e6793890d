package dev.faceage.demo

import android.content.Context
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.util.AttributeSet
import android.view.View
import dev.faceage.core.Box
import dev.faceage.core.ViewMapping
import kotlin.math.max
import kotlin.math.roundToInt

/**
 * Draws each face's box, its keypoints (eyes, nose, mouth, ears) and
 * "gender %, age group (expected age, 80% age range)".
 */
class OverlayView(context: Context, attrs: AttributeSet?) : View(context, attrs) {
    private var faces: List<FaceResult> = emptyList()
    private var labels: List<String> = emptyList()
    private var imageWidth = 1
    private var imageHeight = 1
    private var fill = true
    private var mirror = false

    private val boxPaint = Paint().apply { style = Paint.Style.STROKE; strokeWidth = 6f; color = Color.GREEN }
    private val textPaint = Paint().apply { color = Color.WHITE; textSize = 44f; isAntiAlias = true }
    private val textBackground = Paint().apply { color = Color.argb(160, 0, 0, 0) }
    private val pointPaint = Paint().apply { color = Color.YELLOW; isAntiAlias = true }

    /**
     * @param fill true when the image under the overlay is scaled to fill the view (the camera
     *   preview's FILL_CENTER, the image being the view port's crop), false when it is scaled to
     *   fit (the photo's fitCenter).
     * @param mirror true for the front camera, whose preview is shown mirrored.
     */
    fun show(faces: List<FaceResult>, imageWidth: Int, imageHeight: Int, fill: Boolean, mirror: Boolean) {
        this.faces = faces
        this.labels = faces.map { face ->
            val a = face.age
            "${a.gender} ${(a.genderProbability * 100).roundToInt()}%, ${a.ageGroup} (${a.age.roundToInt()}, " +
                "${a.ageRange.first.roundToInt()}-${a.ageRange.second.roundToInt()})"
        }
        this.imageWidth = imageWidth
        this.imageHeight = imageHeight
        this.fill = fill
        this.mirror = mirror
        invalidate()
    }

    fun clear() = show(emptyList(), 1, 1, fill = true, mirror = false)

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        if (faces.isEmpty() || width == 0 || height == 0) return
        val mapping = ViewMapping(imageWidth, imageHeight, width, height, fill, mirror)
        for ((result, label) in faces.zip(labels)) {
            val b = result.face.box
            val box = mapping.box(Box(b[0].toFloat(), b[1].toFloat(), b[2].toFloat(), b[3].toFloat()))
            canvas.drawRect(box.left, box.top, box.right, box.bottom, boxPaint)
            val points = result.face.keypoints
            for (i in 0 until points.size / 2) {
                canvas.drawCircle(mapping.x(points[2 * i].toFloat()), mapping.y(points[2 * i + 1].toFloat()), 6f, pointPaint)
            }
            val top = max(box.top - textPaint.textSize - 8, 0f)
            canvas.drawRect(box.left, top, box.left + textPaint.measureText(label) + 16, top + textPaint.textSize + 8, textBackground)
            canvas.drawText(label, box.left + 8, top + textPaint.textSize, textPaint)
        }
    }
}
