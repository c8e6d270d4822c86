# SPDX-License-Identifier: Apache-2.0
"""The scanner's regression corpus: malicious files, one per known way past a pickle scanner, and benign ones.

Every malicious file's payload creates its own marker file and nothing else, so that a test can prove the file is
real (the loader people use for that format runs it: ``prove.py`` below, in a subprocess) before asserting that
``badnets scan`` flags it. ``benchmarks/scan_matrix.py`` runs other scanners on the same corpus.
"""

from __future__ import annotations

import bz2
import cProfile
import functools
import gzip
import importlib
import io
import logging
import lzma
import operator
import os
import pathlib
import pickle
import pydoc
import runpy
import struct
import subprocess
import tarfile
import timeit
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from badnets.supply._pickle import walk_stream

__all__ = ["PROVE", "Sample", "load_in_subprocess", "write_corpus"]


@dataclass(frozen=True)
class Sample:
    """One corpus file: how people load it, and (malicious only) the marker its payload creates."""

    path: Path
    kind: str  # the bypass class or benign format it stands for
    loader: str  # pickle | pickle-all | torch | numpy | gzip | bz2 | xz
    marker: Path | None


class Call:
    """Pickles as ``func(*args)``: the payload is whatever call this describes."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __call__(self) -> None:  # pickle requires the reduce callable to be callable
        raise NotImplementedError

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def _code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _text_call(module: str, name: str, arg: str) -> bytes:
    """A protocol-0 call ``module.name(arg)``: GLOBAL, MARK, UNICODE, TUPLE, REDUCE, STOP."""
    return f"c{module}\n{name}\n(V{arg}\ntR.".encode()


def _payloads(marker: Path) -> dict[str, object]:
    """Distinct callables that each create ``marker`` (the picklescan CVE classes of 2025-26 among them)."""
    m = str(marker)
    touch = f"touch {m}"
    return {
        "os-system": Call(os.system, touch),
        "exec": Call(exec, _code(marker)),
        "eval": Call(eval, _code(marker)),
        "subprocess-call": Call(subprocess.call, ["touch", m]),
        "runpy-run-code": Call(runpy._run_code, _code(marker), {}),  # type: ignore[attr-defined]
        "pkgutil-resolve-name": Call(Call(importlib.import_module("pkgutil").resolve_name, "os:system"), touch),
        "pip-main": Call(importlib.import_module("pip").main, ["--log", m, "cache", "dir"]),
        "getattr-import": Call(Call(getattr, Call(__import__, "os"), "system"), touch),
        "import-module": Call(Call(getattr, Call(importlib.import_module, "os"), "system"), touch),
        "methodcaller": Call(Call(operator.methodcaller, "touch"), pathlib.Path(m)),
        "partial": Call(Call(functools.partial, os.system, touch)),
        "timeit": Call(timeit.timeit, _code(marker), "pass", timeit.default_timer, 1),
        "cprofile-run": Call(cProfile.run, _code(marker)),
        "pydoc-pipepager": Call(pydoc.pipepager, "", touch),
        "builtins-open": Call(open, m, "w"),
        "io-open": Call(io.open, m, "w"),
        "logging-filehandler": Call(logging.FileHandler, m),
        "zipfile-constructor": Call(zipfile.ZipFile, m, "w"),
        "os-makedirs": Call(os.makedirs, m),
        "path-touch": Call(pathlib.Path.touch, pathlib.Path(m)),
    }


def _memo_stack_global(marker: Path) -> bytes:
    """``os.system`` imported by STACK_GLOBAL from two strings memoised earlier inside a harmless tuple."""
    arg = f"touch {marker}".encode()
    return (
        b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x86\x94" + b"0"  # ('os', 'system') memoised, then popped
        b"h\x00h\x01\x93" + b"\x8c" + bytes([len(arg)]) + arg + b"\x85R."
    )


def _torch_zip(obj: object, path: Path) -> None:
    torch.save(obj, path)


def _rewrite_zip(src: Path, dst: Path, pickle_bytes: bytes, duplicate: bool = False) -> None:
    """``src``'s members with ``data.pkl`` replaced by ``pickle_bytes`` (or, with ``duplicate``, a second
    ``data.pkl`` appended after the benign one)."""
    with zipfile.ZipFile(src) as zin:
        items = [(i, zin.read(i.filename)) for i in zin.infolist()]
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": that is the point
        for info, data in items:
            is_pickle = info.filename.endswith("/data.pkl")
            zout.writestr(info, data if duplicate or not is_pickle else pickle_bytes)
        if duplicate:
            name = next(i.filename for i, _ in items if i.filename.endswith("/data.pkl"))
            zout.writestr(zipfile.ZipInfo(name), pickle_bytes)


def _patch_data_pkl(path: Path, *, local_flags: int | None = None, crc: int | None = None) -> None:
    """Edit ``data.pkl``'s local header in place: flag bits the directory does not have, or a wrong CRC-32."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
        directory = z.start_dir
    at = info.header_offset
    if local_flags is not None:
        raw[at + 6 : at + 8] = struct.pack("<H", local_flags)
    if crc is not None:
        raw[at + 14 : at + 18] = struct.pack("<I", crc)
        entry = raw.find(b"PK\x01\x02", directory)
        while entry != -1:
            name_len = struct.unpack("<H", raw[entry + 28 : entry + 30])[0]
            if bytes(raw[entry + 46 : entry + 46 + name_len]).endswith(b"/data.pkl"):
                raw[entry + 16 : entry + 20] = struct.pack("<I", crc)
            entry = raw.find(b"PK\x01\x02", entry + 4)
    path.write_bytes(bytes(raw))


def _legacy_streams(tmp: Path) -> list[bytes]:
    """The five pickles of a benign legacy torch file (and its raw data as a sixth part)."""
    torch.save({"w": torch.ones(3)}, tmp, _use_new_zipfile_serialization=False)
    data = tmp.read_bytes()
    parts, position = [], 0
    for _ in range(5):
        end = walk_stream(data, position).end
        parts.append(data[position:end])
        position = end
    return [*parts, data[position:]]


def _legacy_tar_polyglot(path: Path, payload: bytes) -> None:
    """PyTorch's legacy tar format whose first member's *name* is a complete, harmless pickle: a pickle scanner
    sees that pickle; ``torch.load`` opens the tar and unpickles ``storages``, which holds the payload."""
    members = {
        "\x80\x02K\x01.": b"",
        "storages": payload + pickle.dumps([], protocol=2),
        "tensors": pickle.dumps(0, protocol=2),
        "pickle": pickle.dumps({"w": 1}, protocol=2),
    }
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def _npy_object(body: bytes) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return header.getvalue() + body


def _malicious(root: Path, markers: Path) -> list[Sample]:
    samples: list[Sample] = []

    def add(kind: str, name: str, loader: str, write: Callable[[Path, Path], object]) -> None:
        marker = markers / f"{kind}.marker"
        path = root / name
        write(path, marker)
        samples.append(Sample(path, kind, loader, marker))

    def dumps(payload: str, protocol: int = 4) -> Callable[[Path], bytes]:
        return lambda marker: pickle.dumps(_payloads(marker)[payload], protocol=protocol)

    def writes(pickled: Callable[[Path], bytes]) -> Callable[[Path, Path], object]:
        return lambda path, marker: path.write_bytes(pickled(marker))

    for payload, protocol in [("os-system", 0), ("exec", 1), ("eval", 2), ("subprocess-call", 3)] + [
        (p, 4 + i % 2) for i, p in enumerate(list(_payloads(Path("x")))[4:])
    ]:
        add(f"call-{payload}-p{protocol}", f"{payload}.pkl", "pickle", writes(dumps(payload, protocol)))
    add("stack-global-via-memo", "memo.pkl", "pickle", lambda p, m: p.write_bytes(_memo_stack_global(m)))
    add(
        "text-pickle-named-json",
        "config.json",
        "pickle",
        lambda p, m: p.write_bytes(_text_call("os", "system", f"touch {m}")),
    )
    add(
        "python2-builtin-name",
        "py2.pkl",
        "pickle",
        lambda p, m: p.write_bytes(_text_call("__builtin__", "eval", _code(m))),
    )
    add("inst-opcode", "inst.pkl", "pickle", lambda p, m: p.write_bytes(f"(Vtouch {m}\nios\nsystem\n.".encode()))
    add("obj-opcode", "obj.pkl", "pickle", lambda p, m: p.write_bytes(f"(cos\nsystem\nVtouch {m}\no.".encode()))
    add(
        "dotted-name-through-allowed-module", "dotted.pkl", "pickle",
        lambda p, m: p.write_bytes(b"\x80\x04\x8c\x13torch.serialization\x8c\tos.system\x93" + _arg(m) + b"\x85R."),
    )  # fmt: skip
    add(
        "int-literal-0x-pickle",
        "intlit.pkl",
        "pickle",
        lambda p, m: p.write_bytes(b"I0x1\n0" + _text_call("os", "system", f"touch {m}")),
    )
    add(
        "nested-pickle-loads", "nested.pkl", "pickle",
        lambda p, m: p.write_bytes(pickle.dumps(Call(importlib.import_module("_pickle").loads, dumps("os-system")(m)))),
    )  # fmt: skip
    add(
        "broken-tail-after-payload",
        "tail.ckpt",
        "pickle",
        lambda p, m: p.write_bytes(dumps("os-system")(m)[:-1] + b"\x85."),
    )
    add(
        "second-pickle-stream", "two.pkl", "pickle-all",
        lambda p, m: p.write_bytes(pickle.dumps({"w": [1.0]}) + dumps("os-system")(m)),
    )  # fmt: skip
    add("pickle-named-npy", "array.npy", "numpy", lambda p, m: p.write_bytes(dumps("os-system", 2)(m)))
    add(
        "npy-object-int-literal", "objects.npy", "numpy",
        lambda p, m: p.write_bytes(_npy_object(b"I0x1\n0" + _text_call("os", "system", f"touch {m}"))),
    )  # fmt: skip
    add("npz-object-member", "arrays.npz", "numpy", _write_npz)
    add(
        "gzip-pickle-nonmodel-suffix",
        "model.pkl.gz",
        "gzip",
        lambda p, m: p.write_bytes(gzip.compress(dumps("os-system")(m))),
    )
    add("bz2-pickle", "model.pkl.bz2", "bz2", lambda p, m: p.write_bytes(bz2.compress(dumps("exec")(m))))
    add("xz-pickle", "model.pkl.xz", "xz", lambda p, m: p.write_bytes(lzma.compress(dumps("eval")(m))))
    add(
        "torch-zip-payload",
        "evil.pt",
        "torch",
        lambda p, m: _torch_zip({"w": torch.ones(2), "x": _payloads(m)["os-system"]}, p),
    )
    add("torch-zip-nonmodel-suffix", "weights.model", "torch", lambda p, m: _torch_zip({"x": _payloads(m)["exec"]}, p))
    add("torch-zip-duplicate-data-pkl", "dup.pt", "torch", lambda p, m: _zip_variant(p, m, duplicate=True))
    add("torch-zip-local-flag-bits", "flags.pt", "torch", lambda p, m: _zip_variant(p, m, local_flags=0x4000))
    add("torch-zip-local-encryption-bit", "encbit.pt", "torch", lambda p, m: _zip_variant(p, m, local_flags=0x1))
    add("torch-zip-bad-crc", "crc.pt", "torch", lambda p, m: _zip_variant(p, m, crc=0xDEADBEEF))
    add("legacy-torch-int-literal", "legacy_int.pt", "torch", lambda p, m: _legacy_variant(p, m, 3, int_trick=True))
    add("legacy-torch-payload-in-sys-info", "legacy_sys.pt", "torch", lambda p, m: _legacy_variant(p, m, 2))
    add("legacy-torch-payload-in-keys", "legacy_keys.pt", "torch", lambda p, m: _legacy_variant(p, m, 4))
    add(
        "legacy-torch-tar-polyglot",
        "legacy.tar.pt",
        "torch",
        lambda p, m: _legacy_tar_polyglot(p, dumps("os-system", 2)(m)),
    )
    return samples


def _arg(marker: Path) -> bytes:
    arg = f"touch {marker}".encode()
    return b"\x8c" + bytes([len(arg)]) + arg


def _write_npz(path: Path, marker: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("weights.npy", _npy_zeros())
        z.writestr("objects.npy", _npy_object(pickle.dumps(_payloads(marker)["os-system"], protocol=3)))


def _npy_zeros() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(4, dtype=np.float32))
    return buffer.getvalue()


def _zip_variant(path: Path, marker: Path, **change: object) -> None:
    benign = path.with_suffix(".benign")
    torch.save({"w": torch.ones(2)}, benign)
    payload = pickle.dumps(_payloads(marker)["os-system"], protocol=2)
    _rewrite_zip(benign, path, payload, duplicate=bool(change.pop("duplicate", False)))
    benign.unlink()
    if change:
        _patch_data_pkl(path, **change)  # type: ignore[arg-type]


def _legacy_variant(path: Path, marker: Path, index: int, int_trick: bool = False) -> None:
    """A legacy torch file with its ``index``-th pickle replaced by the payload (the main pickle: behind an
    integer literal that only the C unpickler reads)."""
    parts = _legacy_streams(path)
    call = _text_call("os", "system", f"touch {marker}")
    if int_trick:
        parts[3:] = [b"I0x1\n0" + call, pickle.dumps([], protocol=2)]
    elif index == 4:
        parts[4:] = [pickle.dumps(Call(os.system, f"touch {marker}"), protocol=2)]
    else:
        parts[index] = call
    path.write_bytes(b"".join(parts))


def _benign(root: Path) -> list[Sample]:
    from badnets.models import build_model

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = build_model("sign-cnn", in_channels=3, num_classes=3, image_size=32).state_dict()
    checkpoint = {"epoch": 3, "lr": 0.01, "names": ["a", "b"], "state": net, "shape": torch.Size([2, 3])}
    files: dict[str, tuple[str, Callable[[Path], object]]] = {
        "state.pt": ("torch", lambda p: torch.save(net, p)),
        "checkpoint.pth": ("torch", lambda p: torch.save(checkpoint, p)),
        "legacy.pth": ("torch", lambda p: torch.save(net, p, _use_new_zipfile_serialization=False)),
        "legacy_dtypes.pt": ("torch", lambda p: torch.save(_dtypes(), p, _use_new_zipfile_serialization=False)),
        "dtypes.pt": ("torch", lambda p: torch.save(_dtypes(), p)),
        "views.pt": ("torch", lambda p: torch.save(_views(), p)),
        "float.npy": ("numpy", lambda p: np.save(p, np.arange(12, dtype=np.float32).reshape(3, 4))),
        "fortran.npy": ("numpy", lambda p: np.save(p, np.asfortranarray(np.ones((2, 5), dtype=np.int64)))),
        "arrays.npz": ("numpy", lambda p: np.savez(p, a=np.zeros(3), b=np.ones((2, 2), dtype=np.uint8))),
        "compressed.npz": ("numpy", lambda p: np.savez_compressed(p, a=np.zeros(1000))),
        "model.safetensors": ("safetensors", lambda p: save_file({k: v.contiguous() for k, v in net.items()}, str(p))),
        "meta.safetensors": ("safetensors", lambda p: save_file(_dtypes(), str(p), metadata={"format": "pt"})),
        "plain_p2.pkl": ("pickle", lambda p: p.write_bytes(pickle.dumps({"lr": 0.1, "layers": [1, 2]}, protocol=2))),
        "plain_p5.pkl": ("pickle", lambda p: p.write_bytes(pickle.dumps({"n": 3, "s": {1, 2}}, protocol=5))),
        "config.json": ("text", lambda p: p.write_text('{"model": "badnet-cnn", "classes": 10}\n')),
        "config.yaml": ("text", lambda p: p.write_text("model: sign-cnn\nepochs: 8\nlr: 0.003\n")),
        "README.md": ("text", lambda p: p.write_text("# A model\n\nTrained on MNIST.\n")),
        "NOTES.txt": ("text", lambda p: p.write_text("This model was trained for 8 epochs.\n")),
        "state.pt.gz": ("gzip", lambda p: p.write_bytes(gzip.compress(pickle.dumps({"w": [1.0, 2.0]})))),
    }
    samples = []
    for name, (loader, write) in files.items():
        write(root / name)
        samples.append(Sample(root / name, f"benign-{name}", loader, None))
    return samples


def _dtypes() -> dict[str, torch.Tensor]:
    return {
        "f16": torch.ones(3, dtype=torch.float16),
        "bf16": torch.ones(2, 2, dtype=torch.bfloat16),
        "i64": torch.arange(5),
        "b": torch.tensor([True, False]),
        "u8": torch.zeros(7, dtype=torch.uint8),
    }


def _views() -> dict[str, torch.Tensor]:
    base = torch.arange(20.0)
    return {"base": base, "view": base[5:10], "t": base.view(4, 5).t()}


def write_corpus(root: Path) -> list[Sample]:
    """Write the corpus under ``root`` (``malicious/``, ``benign/``); markers go to ``root/markers``."""
    (root / "malicious").mkdir(parents=True, exist_ok=True)
    (root / "markers").mkdir(exist_ok=True)
    return _malicious(root / "malicious", root / "markers") + _benign(root / "benign")


# Loads each file named on stdin (path<TAB>loader lines) as people load that format, carrying on past errors (a
# payload runs before the loader notices anything wrong); its last line lists the files that failed to load.
PROVE = r"""
import bz2, gzip, json, lzma, pickle, sys, warnings
import numpy as np, torch
warnings.simplefilter("ignore")
openers = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}
def load(path, loader):
    if loader == "torch":
        return torch.load(path, weights_only=False)
    if loader == "numpy":
        data = np.load(path, allow_pickle=True)
        return [data[k] for k in data.files] if hasattr(data, "files") else data
    if loader == "safetensors":
        from safetensors.torch import load_file
        return load_file(path)
    if loader == "text":
        return open(path).read()
    with (openers[loader] if loader in openers else open)(path, "rb") as f:
        objects = [pickle.load(f)]
        while loader == "pickle-all":
            try:
                objects.append(pickle.load(f))
            except EOFError:
                break
        return objects
failed = []
for line in sys.stdin.read().splitlines():
    path, loader = line.split("\t")
    try:
        load(path, loader)
    except BaseException as e:
        failed.append(f"{path}: {type(e).__name__}")
print("BADNETS-PROVE-FAILED " + json.dumps(failed))
"""


def load_in_subprocess(samples: list[Sample], cwd: Path) -> list[str]:
    """Load every sample with its loader in a fresh interpreter; returns the files that raised."""
    import json
    import sys

    lines = "\n".join(f"{s.path}\t{s.loader}" for s in samples)
    done = subprocess.run(
        [sys.executable, "-c", PROVE], input=lines, capture_output=True, text=True, cwd=cwd, timeout=600, check=True
    )
    last = [line for line in done.stdout.splitlines() if line.startswith("BADNETS-PROVE-FAILED ")][-1]
    failed: list[str] = json.loads(last.split(" ", 1)[1])
    return failed
