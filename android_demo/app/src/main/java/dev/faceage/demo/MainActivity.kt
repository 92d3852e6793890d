package dev.faceage.demo

import android.Manifest
import android.graphics.Bitmap
import android.graphics.ImageDecoder
import android.graphics.Matrix
import android.graphics.Rect
import android.net.Uri
import android.os.Bundle
import android.view.View
import android.widget.Button
import android.widget.ImageView
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import com.google.android.gms.tasks.Tasks
import com.google.mlkit.vision.common.InputImage
import com.google.mlkit.vision.face.FaceDetection
import com.google.mlkit.vision.face.FaceDetector
import com.google.mlkit.vision.face.FaceDetectorOptions
import dev.faceage.core.FaceAgeException
import java.util.concurrent.ExecutionException
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Wires frames in and results out: CameraX frames or a picked photo -> ML Kit face boxes ->
 * [FaceAgeClassifier] -> [OverlayView]. Detection and inference run on one background thread.
 */
class MainActivity : ComponentActivity() {
    private lateinit var preview: PreviewView
    private lateinit var photo: ImageView
    private lateinit var overlay: OverlayView
    private lateinit var status: TextView

    // Everything that touches the detector or the interpreter runs on this one thread.
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var classifier: FaceAgeClassifier? = null
    private val detector: FaceDetector = FaceDetection.getClient(
        FaceDetectorOptions.Builder()
            .setPerformanceMode(FaceDetectorOptions.PERFORMANCE_MODE_FAST)
            .setMinFaceSize(0.1f)
            .build()
    )
    private var cameraProvider: ProcessCameraProvider? = null

    private val requestCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else showStatus(getString(R.string.no_camera_permission))
    }

    private val pickPhoto = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        if (uri != null) analysePhoto(uri)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        preview = findViewById(R.id.preview)
        photo = findViewById(R.id.photo)
        overlay = findViewById(R.id.overlay)
        status = findViewById(R.id.status)
        findViewById<Button>(R.id.camera_button).setOnClickListener { requestCamera.launch(Manifest.permission.CAMERA) }
        findViewById<Button>(R.id.photo_button).setOnClickListener {
            pickPhoto.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        worker.execute {
            try {
                val model = FaceAgeClassifier(this)
                classifier = model
                showStatus("${model.card.name}: ${model.card.inputSize} px, ${model.card.ageGroupLabels.size} age groups")
            } catch (e: FaceAgeException) {
                showStatus("Model error: ${e.message}") // a clear message, not a crash
            }
        }
        requestCamera.launch(Manifest.permission.CAMERA)
    }

    private fun startCamera() {
        photo.visibility = View.GONE
        preview.visibility = View.VISIBLE
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            cameraProvider = provider
            val previewUseCase = Preview.Builder().build().also { it.setSurfaceProvider(preview.surfaceProvider) }
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST) // drop frames while busy
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(worker) { frame -> analyseFrame(frame) }
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, previewUseCase, analysis)
        }, mainExecutor)
    }

    private fun analyseFrame(frame: ImageProxy) {
        val image = frame.use { upright(it.toBitmap(), it.imageInfo.rotationDegrees) }
        val faces = analyse(image) ?: return
        runOnUiThread { overlay.show(faces, image.width, image.height, fill = true) }
    }

    private fun analysePhoto(uri: Uri) {
        cameraProvider?.unbindAll()
        preview.visibility = View.GONE
        worker.execute {
            val image = try {
                // ImageDecoder applies the EXIF orientation; software pixels so getPixels works.
                ImageDecoder.decodeBitmap(ImageDecoder.createSource(contentResolver, uri)) { decoder, _, _ ->
                    decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE
                }
            } catch (e: Exception) {
                showStatus("Cannot open that photo: ${e.message}")
                return@execute
            }
            val faces = analyse(image) ?: return@execute
            runOnUiThread {
                photo.setImageBitmap(image)
                photo.visibility = View.VISIBLE
                overlay.show(faces, image.width, image.height, fill = false)
                if (faces.isEmpty()) showStatus(getString(R.string.no_faces))
            }
        }
    }

    /** Faces in an upright image, or null (with the reason shown) when the model is unusable. */
    private fun analyse(image: Bitmap): List<FaceResult>? {
        val model = classifier ?: return null
        return try {
            val boxes = Tasks.await(detector.process(InputImage.fromBitmap(image, 0))).map { Rect(it.boundingBox) }
            model.classify(image, boxes)
        } catch (e: FaceAgeException) {
            showStatus("Model error: ${e.message}")
            null
        } catch (e: ExecutionException) {
            showStatus("Face detection failed: ${e.cause?.message}")
            null
        }
    }

    private fun upright(bitmap: Bitmap, degrees: Int): Bitmap {
        if (degrees == 0) return bitmap
        val rotation = Matrix().apply { postRotate(degrees.toFloat()) }
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, rotation, true)
    }

    private fun showStatus(text: String) = runOnUiThread { status.text = text }

    override fun onDestroy() {
        super.onDestroy()
        worker.execute {
            classifier?.close()
            detector.close()
        }
        worker.shutdown()
    }
}
