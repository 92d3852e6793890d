package dev.faceage.demo

import android.Manifest
import android.graphics.Bitmap
import android.graphics.ImageDecoder
import android.net.Uri
import android.os.Bundle
import android.util.Log
import android.view.View
import android.widget.Button
import android.widget.ImageView
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.enableEdgeToEdge
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.core.UseCaseGroup
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.view.ViewCompat
import androidx.core.view.WindowInsetsCompat
import androidx.core.view.doOnLayout
import dev.faceage.core.PhotoSize
import dev.faceage.core.RgbImage
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Wires frames in and results out: CameraX frames or a picked photo -> [FaceDetector] (BlazeFace,
 * LiteRT) -> [FaceAgeClassifier] -> [OverlayView]. Inference lives in those two helpers, UI here.
 * Detection and inference run on one background thread; every failure there ends as a message
 * in the status line, never as a crash.
 */
class MainActivity : ComponentActivity() {
    private lateinit var preview: PreviewView
    private lateinit var photo: ImageView
    private lateinit var overlay: OverlayView
    private lateinit var status: TextView

    // Everything that touches the detector, the interpreter or the frame converter runs on
    // this one thread; the fields below marked (worker) are only read and written there.
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var classifier: FaceAgeClassifier? = null // (worker)
    private var detector: FaceDetector? = null // (worker)
    private var modelProblem = "" // (worker) why there is no classifier or detector, for the status line
    private val frames = FrameConverter() // (worker)
    private var pixels = IntArray(0) // (worker) the analysed image's pixels, reused while its size stays

    // Main thread only.
    private var cameraProvider: ProcessCameraProvider? = null
    private var analysis: ImageAnalysis? = null

    private val requestCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else showStatus(getString(R.string.no_camera_permission))
    }

    private val pickPhoto = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        if (uri != null) analysePhoto(uri)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        enableEdgeToEdge() // target SDK 35 draws behind the system bars anyway: say so and pad
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        preview = findViewById(R.id.preview)
        photo = findViewById(R.id.photo)
        overlay = findViewById(R.id.overlay)
        status = findViewById(R.id.status)
        keepAboveSystemBars(findViewById(R.id.controls))
        findViewById<Button>(R.id.camera_button).setOnClickListener { requestCamera.launch(Manifest.permission.CAMERA) }
        findViewById<Button>(R.id.photo_button).setOnClickListener {
            pickPhoto.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        worker.execute {
            modelProblem = getString(R.string.loading_models)
            try {
                val model = FaceAgeClassifier(this, FaceAgeClassifier.modelFor(this))
                val faces = try {
                    FaceDetector(this)
                } catch (e: Exception) {
                    model.close()
                    throw e
                }
                classifier = model
                detector = faces
                showStatus("${model.card.name}: ${model.card.inputSize} px, ${model.card.ageGroupLabels.size} age groups")
            } catch (e: Exception) {
                modelProblem = "Cannot load the models: ${e.message ?: e.javaClass.simpleName}"
                showError("Cannot load the models", e)
            }
        }
        requestCamera.launch(Manifest.permission.CAMERA)
    }

    /** Pads the button bar by the navigation bar, cutouts and gesture area (edge-to-edge). */
    private fun keepAboveSystemBars(controls: View) {
        val left = controls.paddingLeft
        val right = controls.paddingRight
        val bottom = controls.paddingBottom
        ViewCompat.setOnApplyWindowInsetsListener(controls) { view, insets ->
            val bars = insets.getInsets(WindowInsetsCompat.Type.systemBars() or WindowInsetsCompat.Type.displayCutout())
            view.setPadding(left + bars.left, view.paddingTop, right + bars.right, bottom + bars.bottom)
            insets
        }
    }

    private fun startCamera() {
        photo.visibility = View.GONE
        preview.visibility = View.VISIBLE
        overlay.clear()
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            try {
                val provider = future.get()
                cameraProvider = provider
                // The view port needs the preview's size: bind once it is laid out.
                preview.doOnLayout { bindCamera(provider) }
            } catch (e: Exception) {
                showError("Cannot start the camera", e)
            }
        }, mainExecutor)
    }

    /** Preview and analysis in one UseCaseGroup with the preview's ViewPort: same field of view. */
    private fun bindCamera(provider: ProcessCameraProvider) {
        try {
            val (selector, mirror) = when {
                provider.hasCamera(CameraSelector.DEFAULT_BACK_CAMERA) -> CameraSelector.DEFAULT_BACK_CAMERA to false
                provider.hasCamera(CameraSelector.DEFAULT_FRONT_CAMERA) -> CameraSelector.DEFAULT_FRONT_CAMERA to true
                else -> return showStatus(getString(R.string.no_camera))
            }
            val viewPort = preview.viewPort ?: return showStatus(getString(R.string.no_view_port))
            val previewUseCase = Preview.Builder().setTargetRotation(viewPort.rotation).build()
            previewUseCase.setSurfaceProvider(preview.surfaceProvider)
            val analysisUseCase = ImageAnalysis.Builder()
                .setTargetRotation(viewPort.rotation)
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST) // drop frames while busy
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysisUseCase.setAnalyzer(worker) { frame -> analyseFrame(frame, mirror) }
            val group = UseCaseGroup.Builder().setViewPort(viewPort).addUseCase(previewUseCase).addUseCase(analysisUseCase).build()
            provider.unbindAll()
            provider.bindToLifecycle(this, selector, group)
            analysis = analysisUseCase
        } catch (e: Exception) {
            showError("Cannot start the camera", e)
        }
    }

    private fun stopCamera() {
        analysis?.clearAnalyzer()
        analysis = null
        cameraProvider?.unbindAll()
    }

    /** (worker) One camera frame: its view-port crop, upright, is what the preview shows. */
    private fun analyseFrame(frame: ImageProxy, mirror: Boolean) {
        try {
            val image = frame.use { frames.upright(it) }
            val faces = analyse(image) ?: return
            val width = image.width
            val height = image.height
            runOnUiThread {
                overlay.show(faces, width, height, fill = true, mirror = mirror)
                showFaceCount(faces.size)
            }
        } catch (e: Exception) {
            showError("Cannot analyse the camera frame", e)
        }
    }

    private fun analysePhoto(uri: Uri) {
        stopCamera()
        preview.visibility = View.GONE
        overlay.clear()
        showStatus(getString(R.string.reading_photo))
        worker.execute {
            try {
                val image = decodePhoto(uri)
                val faces = analyse(image) ?: return@execute
                runOnUiThread {
                    photo.setImageBitmap(image)
                    photo.visibility = View.VISIBLE
                    overlay.show(faces, image.width, image.height, fill = false, mirror = false)
                    showFaceCount(faces.size)
                }
            } catch (e: Exception) {
                showError("Cannot analyse that photo", e)
            } catch (e: OutOfMemoryError) {
                showError("That photo is too large for this phone's memory", e)
            }
        }
    }

    /**
     * (worker) The photo, upright (ImageDecoder applies the EXIF orientation), in software
     * pixels so getPixels works, subsampled so that it holds at most [PhotoSize.MAX_PIXELS].
     */
    private fun decodePhoto(uri: Uri): Bitmap =
        ImageDecoder.decodeBitmap(ImageDecoder.createSource(contentResolver, uri)) { decoder, info, _ ->
            decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE
            decoder.setTargetSampleSize(PhotoSize.sampleSize(info.size.width, info.size.height))
        }

    /** (worker) Faces in an upright image, or null (the status line then says why) without models. */
    private fun analyse(image: Bitmap): List<FaceResult>? {
        val model = classifier
        val faceDetector = detector
        if (model == null || faceDetector == null) {
            showStatus(modelProblem)
            return null
        }
        val count = image.width * image.height
        if (pixels.size != count) pixels = IntArray(count)
        image.getPixels(pixels, 0, image.width, 0, 0, image.width, image.height)
        val rgb = RgbImage(image.width, image.height, pixels)
        return model.classify(rgb, faceDetector.detect(rgb))
    }

    /** Replaces any earlier message, "No face found" included, once faces are seen again. */
    private fun showFaceCount(count: Int) =
        showStatus(if (count == 0) getString(R.string.no_faces) else resources.getQuantityString(R.plurals.faces_found, count, count))

    private fun showError(what: String, e: Throwable) {
        Log.e(TAG, what, e)
        showStatus("$what: ${e.message ?: e.javaClass.simpleName}")
    }

    private fun showStatus(text: String) = runOnUiThread { status.text = text }

    override fun onDestroy() {
        stopCamera() // no more frames for the worker
        super.onDestroy()
        worker.execute {
            classifier?.close()
            detector?.close()
        }
        worker.shutdown()
    }

    private companion object {
        const val TAG = "FaceAge"
    }
}
