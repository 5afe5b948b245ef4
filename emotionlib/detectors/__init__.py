"""Face detectors behind one interface: ``detect(image, gray=None) -> list[Detection]``.

``haar`` (OpenCV's frontal-face cascade, the default) and ``yunet`` (cv2.FaceDetectorYN with
the bundled ONNX model, which also gives five landmarks). Build one with
``emotionlib.detect.make_detector(name, settings)``.
"""
