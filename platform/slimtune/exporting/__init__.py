"""Export stage: ONNX export and parity (`onnx_export`), int8 (`quantize`), graph fusions
(`optimize`), measurement (`benchmark`), the bundle (`bundle`), and the device-side `runtime`
(numpy, onnxruntime and tokenizers only). Nothing is imported here, so that importing
`slimtune.exporting.runtime` on a device pulls in nothing else."""
