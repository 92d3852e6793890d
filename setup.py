"""faceage_tf: age and gender from face images (attentional + residual CNN ensemble), TFLite runtime."""

from setuptools import find_packages, setup

RUNTIME = ["numpy>=1.23", "Pillow>=9.1", "tqdm>=4.60", "ai-edge-litert==2.3.0"]
TRAIN = [
    "tensorflow==2.21.0",
    "tf-keras==2.21.0",
    "tensorflow-model-optimization==0.8.1",
    "matplotlib>=3.7",
    "tensorboard>=2.20",
]

setup(
    name="faceage_tf",
    version="0.1.0",
    description="Age and gender prediction from faces: Keras training, QAT, TFLite export and a light runtime",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0 (code); shipped weights: non-commercial research only (UTKFace)",
    python_requires=">=3.9",
    packages=find_packages(include=["faceage_tf", "faceage_tf.*"]),
    package_data={"faceage_tf": ["assets/*.tflite", "assets/*.json", "assets/blazeface/*"]},
    install_requires=["numpy>=1.23", "Pillow>=9.1", "tqdm>=4.60"],
    extras_require={
        "runtime": RUNTIME,
        "train": TRAIN + RUNTIME,
        "detect": ["opencv-python-headless>=4.5,<5"],
        "dev": ["pytest>=7", "hypothesis>=6"],
    },
    entry_points={"console_scripts": ["faceage=faceage_tf.cli:main"]},
)
