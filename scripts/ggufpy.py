"""ggufpy — a small GGUF v3 reader/writer and ggml block (de)quantizers in Python + numpy.

Used by scripts/make-tiny-model (writing the tiny test models) and tests/golden/reference.py
(reading models and quantized files back). Written for slimtune from the published format
descriptions; no code from ggml or llama.cpp.

GGUF layout (ggml/docs/gguf.md): magic "GGUF", u32 version, u64 n_tensors, u64 n_kv; n_kv pairs
(string key, u32 value type, value); n_tensors infos (string name, u32 n_dims, u64 ne[n_dims],
u32 ggml type, u64 offset relative to the data section); padding to general.alignment (default 32);
the tensor data. Strings are u64 length + UTF-8 bytes. ne[0] is the fastest-varying dimension, so a
numpy array of shape (out, in) is stored with ne = [in, out].

Block formats dequantized here (ggml-quants.c reference definitions, little-endian):
  Q4_0 32: f16 d; u8 qs[16]            x[j] = d*((qs[j]&15)-8), x[j+16] = d*((qs[j]>>4)-8)
  Q4_1 32: f16 d, m; u8 qs[16]         x = d*q + m
  Q5_0 32: f16 d; u32 qh; u8 qs[16]    5th bit of element j in bit j of qh; x = d*(q-16)
  Q5_1 32: f16 d, m; u32 qh; u8 qs[16] x = d*q + m
  Q8_0 32: f16 d; i8 qs[32]            x = d*q
  Q4_K 256: f16 d, dmin; u8 scales[12] (8 6-bit scale/min pairs); u8 qs[128]
  Q5_K 256: f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
  Q6_K 256: u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d
"""
import os
import struct

import numpy as np

# metadata value types
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL = 0, 1, 2, 3, 4, 5, 6, 7
T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = 8, 9, 10, 11, 12
_SCALAR_FMT = {T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h", T_UINT32: "<I",
               T_INT32: "<i", T_FLOAT32: "<f", T_BOOL: "<?", T_UINT64: "<Q", T_INT64: "<q",
               T_FLOAT64: "<d"}
_SCALAR_NP = {T_UINT8: "<u1", T_INT8: "<i1", T_UINT16: "<u2", T_INT16: "<i2", T_UINT32: "<u4",
              T_INT32: "<i4", T_FLOAT32: "<f4", T_BOOL: "<u1", T_UINT64: "<u8", T_INT64: "<i8",
              T_FLOAT64: "<f8"}

# ggml tensor types: id -> (name, block elements, block bytes)
F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, BF16 = 0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 30
GGML_TYPES = {
    F32: ("F32", 1, 4), F16: ("F16", 1, 2), BF16: ("BF16", 1, 2),
    Q4_0: ("Q4_0", 32, 18), Q4_1: ("Q4_1", 32, 20), Q5_0: ("Q5_0", 32, 22), Q5_1: ("Q5_1", 32, 24),
    Q8_0: ("Q8_0", 32, 34), Q4_K: ("Q4_K", 256, 144), Q5_K: ("Q5_K", 256, 176), Q6_K: ("Q6_K", 256, 210),
}


class GGUFError(Exception):
    pass


class KV:
    """One metadata value: vtype (T_*), value (python scalar / str, or for arrays a list of str or
    a numpy array), atype (element type of an array, else None)."""
    __slots__ = ("vtype", "value", "atype")

    def __init__(self, vtype, value, atype=None):
        self.vtype, self.value, self.atype = vtype, value, atype


class Tensor:
    """One tensor of a read file: name, ne (list, ne[0] fastest), ggml type, raw bytes (memoryview)."""
    __slots__ = ("name", "ne", "type", "offset", "raw")

    def __init__(self, name, ne, ttype, offset):
        self.name, self.ne, self.type, self.offset, self.raw = name, ne, ttype, offset, None

    def nbytes(self):
        return tensor_nbytes(self.type, self.ne)

    def numpy(self):
        """The tensor dequantized to float32, numpy shape reversed(ne) (e.g. (out, in))."""
        return dequantize(self.type, self.raw, self.ne)


def tensor_nbytes(ttype, ne):
    if ttype not in GGML_TYPES:
        raise GGUFError("unknown ggml type %d" % ttype)
    _, blk, bsz = GGML_TYPES[ttype]
    if ne[0] % blk:
        raise GGUFError("row length %d is not a multiple of %s's block %d" % (ne[0], GGML_TYPES[ttype][0], blk))
    n = ne[0] // blk * bsz
    for d in ne[1:]:
        n *= d
    return n


class Reader:
    """Parses a whole GGUF file (v2/v3): .kv (dict key -> KV, in file order), .tensors (dict name ->
    Tensor, in file order), .alignment, .data_offset. Raises GGUFError naming the path on bad input."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        b = self.buf
        if b[:4] != b"GGUF":
            raise GGUFError("%s: bad magic" % path)
        self.version, n_tensors, n_kv = struct.unpack_from("<IQQ", b, 4)
        if self.version not in (2, 3):
            raise GGUFError("%s: unsupported GGUF version %d" % (path, self.version))
        self.pos = 24
        self.kv = {}
        for _ in range(n_kv):
            key = self._str()
            (vtype,) = self._unpack("<I")
            self.kv[key] = self._value(vtype, key)
        self.alignment = self.kv["general.alignment"].value if "general.alignment" in self.kv else 32
        self.tensors = {}
        for _ in range(n_tensors):
            name = self._str()
            (nd,) = self._unpack("<I")
            ne = list(struct.unpack_from("<%dQ" % nd, b, self.pos))
            self.pos += 8 * nd
            ttype, off = self._unpack("<IQ")
            self.tensors[name] = Tensor(name, ne, ttype, off)
        a = self.alignment
        self.data_offset = (self.pos + a - 1) // a * a
        mv = memoryview(self.buf)
        for t in self.tensors.values():
            s = self.data_offset + t.offset
            n = t.nbytes()
            if s + n > len(b):
                raise GGUFError("%s: tensor %s data past the end of the file" % (path, t.name))
            t.raw = mv[s:s + n]

    def _unpack(self, fmt):
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def _str(self):
        (n,) = self._unpack("<Q")
        if self.pos + n > len(self.buf):
            raise GGUFError("%s: string at %d longer than the file" % (self.path, self.pos))
        s = self.buf[self.pos:self.pos + n].decode("utf-8", errors="surrogateescape")
        self.pos += n
        return s

    def _value(self, vtype, key):
        if vtype == T_STRING:
            return KV(vtype, self._str())
        if vtype in _SCALAR_FMT:
            return KV(vtype, self._unpack(_SCALAR_FMT[vtype])[0])
        if vtype == T_ARRAY:
            atype, n = self._unpack("<IQ")
            if atype == T_STRING:
                out = []
                b, p = self.buf, self.pos
                for _ in range(n):
                    (ln,) = struct.unpack_from("<Q", b, p)
                    out.append(b[p + 8:p + 8 + ln].decode("utf-8", errors="surrogateescape"))
                    p += 8 + ln
                self.pos = p
                return KV(vtype, out, atype)
            if atype in _SCALAR_NP:
                dt = np.dtype(_SCALAR_NP[atype])
                arr = np.frombuffer(self.buf, dtype=dt, count=n, offset=self.pos).copy()
                self.pos += n * dt.itemsize
                return KV(vtype, arr, atype)
            raise GGUFError("%s: key %s: unsupported array element type %d" % (self.path, key, atype))
        raise GGUFError("%s: key %s: unknown value type %d" % (self.path, key, vtype))

    def get(self, key, default=None):
        kv = self.kv.get(key)
        return default if kv is None else kv.value


def _enc_str(s):
    b = s.encode("utf-8", errors="surrogateescape")
    return struct.pack("<Q", len(b)) + b


class Writer:
    """Builds a GGUF v3 file: add_kv()/add_*() for metadata, add_tensor() for data (copied), write()
    writes it atomically (temporary name, then rename). Alignment 32."""

    def __init__(self):
        self.kv = {}
        self.tensors = []  # (name, ne, type, bytes)

    def add_kv(self, key, kv):
        self.kv[key] = kv

    def add_u32(self, key, v):
        self.kv[key] = KV(T_UINT32, int(v))

    def add_f32(self, key, v):
        self.kv[key] = KV(T_FLOAT32, float(v))

    def add_bool(self, key, v):
        self.kv[key] = KV(T_BOOL, bool(v))

    def add_str(self, key, v):
        self.kv[key] = KV(T_STRING, v)

    def add_str_array(self, key, v):
        self.kv[key] = KV(T_ARRAY, list(v), T_STRING)

    def add_array(self, key, atype, arr):
        self.kv[key] = KV(T_ARRAY, np.asarray(arr, dtype=_SCALAR_NP[atype]), atype)

    def add_tensor(self, name, data, ttype=F32, ne=None):
        """data: a float32 numpy array (F32; ne defaults to reversed(shape)) or raw bytes of type
        ttype with ne given."""
        if ne is None:
            data = np.ascontiguousarray(data, dtype=np.float32)
            ne = list(reversed(data.shape))
            raw = data.tobytes()
        else:
            raw = bytes(data)
        if len(raw) != tensor_nbytes(ttype, ne):
            raise GGUFError("tensor %s: %d bytes, expected %d" % (name, len(raw), tensor_nbytes(ttype, ne)))
        if any(t[0] == name for t in self.tensors):
            raise GGUFError("duplicate tensor %s" % name)
        self.tensors.append((name, [int(x) for x in ne], ttype, raw))

    @staticmethod
    def _enc_value(kv):
        if kv.vtype == T_STRING:
            return _enc_str(kv.value)
        if kv.vtype in _SCALAR_FMT:
            return struct.pack(_SCALAR_FMT[kv.vtype], kv.value)
        if kv.vtype == T_ARRAY:
            head = struct.pack("<IQ", kv.atype, len(kv.value))
            if kv.atype == T_STRING:
                return head + b"".join(_enc_str(s) for s in kv.value)
            return head + np.asarray(kv.value, dtype=_SCALAR_NP[kv.atype]).tobytes()
        raise GGUFError("unknown value type %d" % kv.vtype)

    def write(self, path, align=32):
        parts = [b"GGUF", struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))]
        for k, kv in self.kv.items():
            parts.append(_enc_str(k) + struct.pack("<I", kv.vtype) + self._enc_value(kv))
        off = 0
        offsets = []
        for name, ne, ttype, raw in self.tensors:
            offsets.append(off)
            parts.append(_enc_str(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
                         + struct.pack("<IQ", ttype, off))
            off = (off + len(raw) + align - 1) // align * align
        tmp = "%s.tmp.%d" % (path, os.getpid())
        with open(tmp, "wb") as f:
            n = 0
            for p in parts:
                f.write(p)
                n += len(p)
            f.write(b"\0" * ((align - n % align) % align))
            for (name, ne, ttype, raw), o in zip(self.tensors, offsets):
                f.write(raw)
                f.write(b"\0" * ((align - len(raw) % align) % align))
        os.replace(tmp, path)


# ---- element conversions -------------------------------------------------------------------

def f16_round(x):
    """IEEE half rounding (nearest even) of float32 values, returned as float32."""
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


def bf16_bits(x):
    """bfloat16 bits of float32 values, round to nearest even (ggml's fp32_to_bf16; NaN kept quiet)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r[nan] = ((u[nan] >> 16) | 64).astype(np.uint16)
    return r


def bf16_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32)


def bf16_round(x):
    return bf16_to_f32(bf16_bits(x)).reshape(np.shape(x))


# ---- dequantizers ----------------------------------------------------------------------------

def _f16(b, lo):
    return b[:, lo:lo + 2].copy().view("<f2").astype(np.float32)  # (nb, 1)


def _k_scales(sc):
    """6-bit scales and mins of the 8 sub-blocks of Q4_K/Q5_K (sc: (nb, 12) uint8) -> (nb, 8) x2."""
    sc = sc.astype(np.uint8)
    d = np.empty((sc.shape[0], 8), np.uint8)
    m = np.empty((sc.shape[0], 8), np.uint8)
    d[:, :4] = sc[:, 0:4] & 63
    m[:, :4] = sc[:, 4:8] & 63
    d[:, 4:] = (sc[:, 8:12] & 0xF) | ((sc[:, 0:4] >> 6) << 4)
    m[:, 4:] = (sc[:, 8:12] >> 4) | ((sc[:, 4:8] >> 6) << 4)
    return d.astype(np.float32), m.astype(np.float32)


def dequantize(ttype, raw, ne):
    """Dequantizes raw tensor bytes of ggml type ttype and shape ne into float32, numpy shape
    reversed(ne). Arithmetic is float32 in the order of ggml's reference dequantizers."""
    shape = tuple(int(x) for x in reversed(ne))
    if ttype == F32:
        return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
    if ttype == F16:
        return np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(shape)
    if ttype == BF16:
        return bf16_to_f32(np.frombuffer(raw, dtype="<u2")).reshape(shape)
    if ttype not in GGML_TYPES:
        raise GGUFError("cannot dequantize ggml type %d" % ttype)
    name, blk, bsz = GGML_TYPES[ttype]
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, bsz)
    nb = b.shape[0]
    if ttype == Q8_0:
        d = _f16(b, 0)
        q = b[:, 2:34].view(np.int8).astype(np.float32)
        y = q * d
    elif ttype in (Q4_0, Q4_1):
        d = _f16(b, 0)
        qs = b[:, 2:18] if ttype == Q4_0 else b[:, 4:20]
        q = np.concatenate([qs & 0xF, qs >> 4], axis=1).astype(np.float32)
        if ttype == Q4_0:
            y = (q - np.float32(8)) * d
        else:
            y = q * d + _f16(b, 2)
    elif ttype in (Q5_0, Q5_1):
        d = _f16(b, 0)
        o = 2 if ttype == Q5_0 else 4
        qh = b[:, o:o + 4].copy().view("<u4").astype(np.uint32)  # (nb, 1)
        qs = b[:, o + 4:o + 20].astype(np.uint32)
        j = np.arange(16, dtype=np.uint32)
        h0 = ((qh >> j) << 4) & 0x10
        h1 = (qh >> (j + 12)) & 0x10
        q = np.concatenate([(qs & 0xF) | h0, (qs >> 4) | h1], axis=1).astype(np.float32)
        if ttype == Q5_0:
            y = (q - np.float32(16)) * d
        else:
            y = q * d + _f16(b, 2)
    elif ttype in (Q4_K, Q5_K):
        d = _f16(b, 0)
        dmin = _f16(b, 2)
        sc, mn = _k_scales(b[:, 4:16])
        d1 = d * sc          # (nb, 8) sub-block scales
        m1 = dmin * mn
        if ttype == Q4_K:
            qs = b[:, 16:144].reshape(nb, 4, 32)
            q = np.stack([qs & 0xF, qs >> 4], axis=2).reshape(nb, 8, 32).astype(np.float32)
        else:
            qh = b[:, 16:48]                       # (nb, 32)
            qs = b[:, 48:176].reshape(nb, 4, 32)
            lo = np.stack([qs & 0xF, qs >> 4], axis=2).reshape(nb, 8, 32).astype(np.uint8)
            bit = np.arange(8, dtype=np.uint8)
            hi = ((qh[:, None, :] >> bit[None, :, None]) & 1) << 4   # (nb, 8, 32)
            q = (lo | hi).astype(np.float32)
        y = (d1[:, :, None] * q - m1[:, :, None]).reshape(nb, 256)
    elif ttype == Q6_K:
        ql = b[:, 0:128].reshape(nb, 2, 64)
        qh = b[:, 128:192].reshape(nb, 2, 32)
        sc = b[:, 192:208].view(np.int8).astype(np.float32).reshape(nb, 2, 8)
        d = _f16(b, 208)
        q1 = (ql[:, :, 0:32] & 0xF) | (((qh >> 0) & 3) << 4)
        q2 = (ql[:, :, 32:64] & 0xF) | (((qh >> 2) & 3) << 4)
        q3 = (ql[:, :, 0:32] >> 4) | (((qh >> 4) & 3) << 4)
        q4 = (ql[:, :, 32:64] >> 4) | (((qh >> 6) & 3) << 4)
        q = np.stack([q1, q2, q3, q4], axis=2).astype(np.float32) - np.float32(32)  # (nb, 2, 4, 32)
        # element l of quarter k in half n uses scale sc[n][2k + l/16]
        s = sc.reshape(nb, 2, 4, 2)[:, :, :, :, None]                             # (nb,2,4,2,1)
        q = q.reshape(nb, 2, 4, 2, 16)
        y = ((d[:, :, None, None, None] * s) * q).reshape(nb, 256)
    else:
        raise GGUFError("cannot dequantize %s" % name)
    return y.astype(np.float32).reshape(shape)


# ---- quantizers ------------------------------------------------------------------------------

def quantize_q8_0(x):
    """ggml's reference Q8_0 quantizer (quantize_row_q8_0_ref): per block of 32, d = amax/127,
    q = roundf(x * (1/d)) (half away from zero), d stored as f16. x: float32 (..., cols) with cols
    a multiple of 32. Returns the raw bytes."""
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 32)
    amax = np.max(np.abs(x), axis=1)
    d = amax / np.float32(127)
    with np.errstate(divide="ignore"):
        idv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    v = x * idv[:, None]
    a = np.abs(v).astype(np.float64)  # exact |v| + 0.5: float32 addition could round up at x.4999999
    q = (np.sign(v) * np.floor(a + 0.5)).astype(np.int8)
    out = np.empty((x.shape[0], 34), np.uint8)
    out[:, 0:2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()
