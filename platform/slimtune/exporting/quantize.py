"""int8 with ONNX Runtime's quantizer: dynamic (weights int8, activations quantized on the fly) by
default; static (QDQ, activation ranges from calibration texts) as an option."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _quiet_root_logger():
    """The quantizer logs an unconditional advice line on the root logger; keep the terminal ours."""
    import contextlib
    import logging

    @contextlib.contextmanager
    def quiet():
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.setLevel(level)

    return quiet()


def quantize_dynamic_int8(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return dst


def quantize_static_int8(src: Path, dst: Path, feeds: list[dict[str, np.ndarray]]) -> Path:
    """Calibrate activation ranges on `feeds` (real batches), then write a QDQ int8 model."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    with _quiet_root_logger():
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return dst
