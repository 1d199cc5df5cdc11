"""Typed errors of the face engine: each carries a machine-readable code and a human message."""


class FaceEngineError(Exception):
    """Base error; ``code`` is stable and machine-readable, ``message`` is for people."""

    code = "face_engine_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ImageError(FaceEngineError):
    """The input is not a usable image: codes ``invalid_image``, ``image_too_large``,
    ``unsupported_format``."""

    code = "invalid_image"


class NoFaceError(FaceEngineError):
    """An operation needed a face and the image has none."""

    code = "no_face"


class ModelError(FaceEngineError):
    """A model file is missing or does not match its checksum."""

    code = "model_error"
