# SPDX-License-Identifier: Apache-2.0
"""The globals a model pickle may import and still be called clean, and the element size of each storage type.

The list follows PyTorch's own ``weights_only`` allow-list (``torch/_weights_only_unpickler.py``:
tensor rebuild functions, storage and tensor types, dtypes, ``OrderedDict``, ``_codecs.encode``), written out here
so that the scanner never imports torch to decide, plus NumPy's array reconstruction for object ``.npy`` files.
Each entry builds tensors, arrays or plain containers; none reads files, runs code or imports further names.
"""

from __future__ import annotations

__all__ = ["SAFE_GLOBALS", "STORAGE_ELEMENT_SIZE"]

STORAGE_ELEMENT_SIZE = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8, "QInt8Storage": 1, "QUInt8Storage": 1,
    "QInt32Storage": 4, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1, "UntypedStorage": 1,
}  # fmt: skip

_DTYPES = (  # noqa: SIM905 - names as torch prints them, one string per kind
    "bfloat16 bool complex128 complex64 float16 float32 float64 int16 int32 int64 int8 qint32 qint8 quint2x4 "
    "quint4x2 quint8 uint8 bcomplex32 bits16 bits1x8 bits2x4 bits4x2 bits8 complex32 float4_e2m1fn_x2 "
    "float8_e4m3fn float8_e4m3fnuz float8_e5m2 float8_e5m2fnuz float8_e8m0fnu uint16 uint32 uint64 "
    "uint1 uint2 uint3 uint4 uint5 uint6 uint7 int1 int2 int3 int4 int5 int6 int7 "
    "per_tensor_affine per_tensor_symmetric per_channel_affine per_channel_symmetric "
    "per_channel_affine_float_qparams"
).split()
_TENSOR_TYPES = "BFloat16 Bool Byte Char Double Float Half Int Long Short".split()  # noqa: SIM905
_REBUILD = (  # noqa: SIM905
    "_rebuild_parameter _rebuild_parameter_with_state _rebuild_qtensor _rebuild_tensor _rebuild_tensor_v2 "
    "_rebuild_tensor_v3 _rebuild_sparse_tensor _rebuild_meta_tensor_no_storage _rebuild_nested_tensor "
    "_rebuild_wrapper_subclass _rebuild_device_tensor_from_cpu_tensor"
).split()
_NUMPY = ("_reconstruct", "scalar")

SAFE_GLOBALS = frozenset(
    {
        "collections.OrderedDict",
        "collections.Counter",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "torch._tensor._rebuild_from_type_v2",
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        "_codecs.encode",
        "builtins.bytearray",
        "builtins.set",
        "builtins.frozenset",
        "builtins.complex",
        "numpy.ndarray",
        "numpy.dtype",
        *(f"torch.{d}" for d in _DTYPES),
        *(f"torch.{s}" for s in STORAGE_ELEMENT_SIZE),
        *(f"torch.cuda.{s}" for s in STORAGE_ELEMENT_SIZE),
        *(f"torch.{t}Tensor" for t in _TENSOR_TYPES),
        *(f"torch._utils.{f}" for f in _REBUILD),
        *(f"numpy.{m}.multiarray.{f}" for m in ("core", "_core") for f in _NUMPY),
    }
)
