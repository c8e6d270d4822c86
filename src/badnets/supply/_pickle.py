# SPDX-License-Identifier: Apache-2.0
"""Follow a pickle stream as CPython's C unpickler would run it, without running anything.

Each opcode is decoded with ``pickletools``' argument readers (a disassembler: it executes nothing) and its effect
on the unpickler's stack, marks and memo is simulated on symbolic values, so that an import spelled through the
memo (``STACK_GLOBAL`` of two memoised strings) is resolved as the real unpickler resolves it. Every import the
stream would perform is recorded, in order, together with where the stream ends.

A walk ends in one of three ways:
    ``complete``      a ``STOP`` was reached: the stream is a pickle and everything it imports is listed;
    ``rejected``      the C unpickler certainly raises here (an unknown opcode byte, too few bytes left, a stack
                      underflow, a missing memo entry, an import of a name that is no module path), so nothing
                      after this point can run; what ran before it is still listed;
    ``unfollowable``  an argument the C unpickler might accept but ``pickletools`` does not decode the same way
                      (``I0x1\\n``: ``strtol`` reads hex, ``int()`` does not), or an import built from values we
                      cannot follow. A scanner must treat this as a finding, never as clean.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickletools
import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["MAGIC_NUMBER", "Import", "StreamWalk", "walk_stream"]

# torch's legacy (pre-zip) files start with a pickle of this number (torch.serialization.MAGIC_NUMBER).
MAGIC_NUMBER = 0x1950A86A20F9469CFC6C

Outcome = Literal["complete", "rejected", "unfollowable"]
_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_PUSH_ARGUMENT = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "STRING", "BINSTRING", "SHORT_BINSTRING",
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
    "BINUNICODE8", "FLOAT", "BINFLOAT",
}  # fmt: skip
_PUSH_CONSTANT = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


class Unknown:
    """A value the walk does not track (an object a call made, a dict, a float …)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = Unknown()


@dataclass(frozen=True)
class Import:
    """A global the unpickler would import (``find_class``), at byte ``offset`` of the file."""

    module: str
    name: str
    offset: int

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class Global:
    """The symbolic value an import pushes."""

    module: str
    name: str


@dataclass
class StreamWalk:
    """One stream's walk: where it began and ended, how it ended, what it imported and built."""

    start: int
    end: int = 0
    outcome: Outcome = "complete"
    problem: str = ""
    imports: list[Import] = field(default_factory=list)
    value: object = None
    persistent_ids: list[object] = field(default_factory=list)


class _Stop(Exception):
    def __init__(self, outcome: Outcome, problem: str) -> None:
        super().__init__(problem)
        self.outcome: Outcome = outcome


class _Machine:
    """The unpickler's stack, marks and memo over symbolic values; every method mirrors one C ``load_*``."""

    def __init__(self, walk: StreamWalk) -> None:
        self.walk = walk
        self.stack: list[object] = []
        self.marks: list[int] = []
        self.memo: dict[int, object] = {}
        self.proto = 0

    def fence(self) -> int:
        return self.marks[-1] if self.marks else 0

    def pop(self) -> object:
        if len(self.stack) <= self.fence():
            raise _Stop("rejected", "stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[object]:
        if not self.marks:
            raise _Stop("rejected", "no MARK on the stack")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def top(self) -> object:
        if len(self.stack) <= self.fence():
            raise _Stop("rejected", "stack underflow")
        return self.stack[-1]

    def find_class(self, module: object, name: object, offset: int) -> Global:
        if not isinstance(module, str) or not isinstance(name, str):
            raise _Stop("unfollowable", "an import whose module or name is built from values the scan cannot follow")
        if self.proto < 3:  # fix_imports: Python 2 names are mapped as the unpickler maps them
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if not _MODULE_PATH.match(module):
            raise _Stop("rejected", f"import of {module!r}, which is no module path")
        self.walk.imports.append(Import(module, name, offset))
        return Global(module, name)

    def step(self, name: str, arg: object, offset: int) -> bool:
        """Apply one opcode; True when the stream has ended (``STOP``)."""
        stack = self.stack
        if name in _PUSH_ARGUMENT:
            stack.append(arg)
        elif name in _PUSH_CONSTANT:
            stack.append(_PUSH_CONSTANT[name])
        elif name == "STOP":
            self.walk.value = self.pop()
            return True
        elif name == "PROTO":
            assert isinstance(arg, int)
            if arg > 5:
                raise _Stop("rejected", f"unsupported pickle protocol {arg}")
            self.proto = arg
        elif name == "FRAME":
            pass
        elif name == "MARK":
            self.marks.append(len(stack))
        elif name == "POP":
            if self.marks and len(stack) == self.fence():
                self.marks.pop()  # the C unpickler's POP discards a mark when the stack is at the fence
            else:
                self.pop()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            stack.append(self.top())
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            assert isinstance(arg, int)
            self.memo[arg] = self.top()
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.top()
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise _Stop("rejected", f"memo entry {arg} does not exist")
            stack.append(self.memo[arg])  # type: ignore[index]
        else:
            self.build(name, arg, offset)
        return False

    def build(self, name: str, arg: object, offset: int) -> None:
        """Containers, imports and calls."""
        stack = self.stack
        if name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
            stack.append([] if name == "EMPTY_LIST" else UNKNOWN)
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            items = [self.pop() for _ in range(int(name[-1]))]
            stack.append(tuple(reversed(items)))
        elif name == "TUPLE":
            stack.append(tuple(self.pop_mark()))
        elif name == "LIST":
            stack.append(self.pop_mark())
        elif name in ("DICT", "FROZENSET"):
            self.pop_mark()
            stack.append(UNKNOWN)
        elif name == "APPEND":
            item = self.pop()
            target = self.top()
            if isinstance(target, list):
                target.append(item)
        elif name in ("APPENDS", "SETITEMS", "ADDITEMS"):
            items = self.pop_mark()
            target = self.top()
            if name == "APPENDS" and isinstance(target, list):
                target.extend(items)
        elif name == "SETITEM":
            self.pop(), self.pop()
            self.top()
        elif name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            stack.append(self.find_class(module, attr, offset))
        elif name == "STACK_GLOBAL":
            attr_value, module_value = self.pop(), self.pop()
            stack.append(self.find_class(module_value, attr_value, offset))
        elif name == "INST":
            self.pop_mark()  # C checks the mark before it imports
            module, _, attr = str(arg).partition(" ")
            self.find_class(module, attr, offset)
            stack.append(UNKNOWN)
        elif name in ("EXT1", "EXT2", "EXT4"):
            self.walk.imports.append(Import("copyreg", f"<extension code {arg}>", offset))
            stack.append(UNKNOWN)
        elif name == "OBJ":
            if len(self.pop_mark()) < 1:
                raise _Stop("rejected", "OBJ without a class")
            stack.append(UNKNOWN)
        elif name in ("REDUCE", "NEWOBJ", "BUILD"):
            self.pop()
            if name == "BUILD":
                self.top()
            else:
                self.pop()
                stack.append(UNKNOWN)
        elif name == "NEWOBJ_EX":
            self.pop(), self.pop(), self.pop()
            stack.append(UNKNOWN)
        elif name == "PERSID":
            self.walk.persistent_ids.append(arg)
            stack.append(UNKNOWN)
        elif name == "BINPERSID":
            self.walk.persistent_ids.append(self.pop())
            stack.append(UNKNOWN)
        elif name == "NEXT_BUFFER":
            stack.append(UNKNOWN)
        elif name == "READONLY_BUFFER":
            self.top()
        else:  # pragma: no cover - every opcode of pickletools is handled above
            raise _Stop("unfollowable", f"opcode {name} is not modelled")


def _read_argument(op: pickletools.OpcodeInfo, stream: io.BytesIO, size: int) -> object:
    """The opcode's argument, or ``_Stop`` saying whether the C unpickler would reject it too."""
    assert op.arg is not None
    try:
        return op.arg.reader(stream)
    except ValueError as e:
        text = str(e)
        if "remain" in text or "but only" in text:
            raise _Stop("rejected", f"{op.name}: the data ends inside its argument") from None
        if "no string quotes" in text:  # load_string requires the quotes too
            raise _Stop("rejected", f"{op.name}: an unquoted string") from None
        if stream.tell() >= size:
            raise _Stop("unfollowable", f"{op.name}: the data ends inside its argument line") from None
        raise _Stop(
            "unfollowable", f"{op.name} argument the scan cannot decode as the unpickler may ({text[:80]})"
        ) from None


def walk_stream(data: bytes, start: int = 0) -> StreamWalk:
    """Follow the pickle stream that begins at ``data[start]`` to its ``STOP`` (or to where it must stop).

    Returns:
        The walk; ``end`` is the offset after ``STOP`` when complete, else the offset of the failing opcode.
    """
    walk = StreamWalk(start=start)
    machine = _Machine(walk)
    stream = io.BytesIO(data)
    stream.seek(start)
    size = len(data)
    while True:
        offset = stream.tell()
        walk.end = offset
        code = stream.read(1)
        try:
            if not code:
                raise _Stop("rejected", "the data ends before STOP")
            op = _OPCODES.get(code)
            if op is None:
                raise _Stop("rejected", f"byte {code!r} is no pickle opcode")
            arg = _read_argument(op, stream, size) if op.arg is not None else None
            if machine.step(op.name, arg, offset):
                walk.end = stream.tell()
                return walk
        except _Stop as stop:
            walk.outcome, walk.problem = stop.outcome, f"{stop} (offset {offset})"
            return walk
