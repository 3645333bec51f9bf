"""Generates the torch.save fixtures of TorchCheckpointTests (run with Debian's PyTorch 1.13: /usr/bin/python3 make.py).

Good checkpoints are written by torch.save itself; each has NAME.expected.safetensors with the same tensors made
contiguous, written byte for byte by the small writer below (no safetensors package needed). Malicious and
malformed checkpoints are torch.save-like zips written by hand. expected.json says what the tests must see.
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import uuid
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SAFETENSORS_DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}


def raw_bytes(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: the same bits as int16
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = raw_bytes(t)
        header[name] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def save_good(name, obj, expected, **kwargs):
    torch.save(obj, os.path.join(HERE, name + ".pt"), **kwargs)
    write_safetensors(os.path.join(HERE, name + ".expected.safetensors"), expected)


def plain_state_dict():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(20, generator=g)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 4, generator=g)
    sd["f16"] = torch.randn(2, 3, generator=g).half()
    sd["bf16"] = torch.randn(5, generator=g).bfloat16()
    sd["f64"] = torch.randn(2, 2, generator=g).double()
    sd["i64"] = torch.tensor([-(2 ** 40), -1, 0, 7, 2 ** 62])
    sd["i32"] = torch.tensor([[1, -2], [3, -4]], dtype=torch.int32)
    sd["u8"] = torch.tensor([0, 1, 255], dtype=torch.uint8)
    sd["i8"] = torch.tensor([-128, 0, 127], dtype=torch.int8)
    sd["mask"] = torch.tensor([True, False, True, True])
    sd["transposed"] = torch.randn(4, 3, generator=g).t()  # stride (1, 3)
    sd["base"] = base
    sd["view"] = base[5:11].view(2, 3)  # shares base's storage at offset 5
    sd["strided"] = base[1::4]  # offset 1, stride 4
    sd["expanded"] = sd["i32"][0].expand(3, 2)  # stride (0, 1): more elements than its storage holds
    sd["scalar"] = torch.tensor(2.5)  # 0-dim
    sd["empty"] = torch.zeros(0, 3)
    return sd


class Reduce:
    """An object that pickles as a call: what a malicious checkpoint does."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class Custom:
    """An arbitrary class: weights_only refuses to instantiate it."""

    def __init__(self):
        self.x = 1


class FakeStorage:
    def __init__(self, storage_type, key, numel):
        self.storage_type, self.key, self.numel = storage_type, key, numel


class FakeTensor:
    """Pickles as torch._utils._rebuild_tensor_v2 of a FakeStorage: for storage records torch.save would not write."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())


class FakeParameter:
    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce__(self):
        return torch._utils._rebuild_parameter, (self.tensor, True, collections.OrderedDict())


class TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", obj.storage_type, obj.key, "cpu", obj.numel)
        return None


def write_zip(name, obj, storages, byteorder="little", protocol=2, folder=None, extra=None):
    """A torch.save-like archive: NAME/data.pkl, NAME/data/KEY (STORED), NAME/byteorder, NAME/version."""
    folder = folder or name
    buffer = io.BytesIO()
    TorchLikePickler(buffer, protocol=protocol).dump(obj)
    with zipfile.ZipFile(os.path.join(HERE, name + ".pt"), "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{folder}/data.pkl", buffer.getvalue())
        z.writestr(f"{folder}/byteorder", byteorder)
        for key, data in storages.items():
            z.writestr(f"{folder}/data/{key}", data)
        for entry, data in (extra or {}).items():
            z.writestr(f"{folder}/{entry}", data)
        z.writestr(f"{folder}/version", "3\n")


def main():
    expected = {}
    sd = plain_state_dict()
    contiguous = collections.OrderedDict((k, v.contiguous()) for k, v in sd.items())
    save_good("plain", sd, contiguous)
    save_good("plain_protocol4", sd, contiguous, pickle_protocol=4)
    assert torch.load(os.path.join(HERE, "plain.pt"), weights_only=True)["view"].storage_offset() == 5

    g = torch.Generator().manual_seed(1)
    weights = collections.OrderedDict([("layer.weight", torch.randn(2, 3, generator=g)), ("layer.bias", torch.randn(2, generator=g))])
    save_good("nested", {"state_dict": weights, "epoch": 3, "name": "run-1"}, weights)
    expected["nested_skipped"] = ["epoch", "name"]

    # No single state dict: two candidates, or none at all.
    torch.save({"model": weights, "state_dict": weights}, os.path.join(HERE, "ambiguous.pt"))
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, os.path.join(HERE, "no_tensors.pt"))

    torch.manual_seed(2)
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    with torch.no_grad():
        module[1].running_mean.uniform_()
    params = module.state_dict(keep_vars=True)  # Parameters: _rebuild_parameter; buffers: plain tensors
    assert isinstance(params["0.weight"], torch.nn.Parameter)
    save_good("module", {"model": params}, collections.OrderedDict((k, v.detach()) for k, v in params.items()))

    # A big-endian archive of the same float32/int64/float16 values: byteorder "big" and every scalar reversed.
    be = collections.OrderedDict([("f32", sd["f32"]), ("i64", sd["i64"]), ("f16", sd["f16"])])
    types = {"f32": (torch.FloatStorage, ">f4"), "i64": (torch.LongStorage, ">i8"), "f16": (torch.HalfStorage, ">f2")}
    objs, blobs = collections.OrderedDict(), {}
    for i, (k, t) in enumerate(be.items()):
        storage_type, fmt = types[k]
        objs[k] = FakeTensor(FakeStorage(storage_type, str(i), t.numel()), 0, tuple(t.shape), tuple(t.stride()))
        blobs[str(i)] = t.numpy().astype(fmt).tobytes()
    write_zip("bigendian", objs, blobs, byteorder="big")
    write_safetensors(os.path.join(HERE, "bigendian.expected.safetensors"), be)

    # The layout of torch 2.x (folder "archive", .format_version, .storage_alignment, .data/serialization_id), a
    # Parameter, and non-tensor values of every plain kind (bytes via _codecs.encode,
    # a float, an int beyond 64 bits, a list, None, a bool), which are skipped.
    t2 = collections.OrderedDict([("w", sd["f32"]), ("p", sd["f16"])])
    objs = collections.OrderedDict()
    objs["w"] = FakeTensor(FakeStorage(torch.FloatStorage, "0", 12), 0, (3, 4), (4, 1))
    objs["blob"] = b"\x00\xffab"
    objs["p"] = FakeParameter(FakeTensor(FakeStorage(torch.HalfStorage, "1", 6), 0, (2, 3), (3, 1)))
    objs["lr"] = 0.125
    objs["big"] = 2 ** 70
    objs["list"] = [1, "two", (3.0,)]
    objs["none"] = None
    objs["flag"] = True
    write_zip("torch2_style", objs, {"0": raw_bytes(t2["w"]), "1": raw_bytes(t2["p"])}, folder="archive",
              extra={".format_version": "1", ".storage_alignment": "64", ".data/serialization_id": "0123456789"})
    write_safetensors(os.path.join(HERE, "torch2_style.expected.safetensors"), t2)
    expected["torch2_style_skipped"] = ["blob", "lr", "big", "list", "none", "flag"]
    loaded = torch.load(os.path.join(HERE, "torch2_style.pt"), weights_only=False)
    assert torch.equal(loaded["w"], t2["w"]) and isinstance(loaded["p"], torch.nn.Parameter) and loaded["blob"] == b"\x00\xffab"

    # Malformed records: a view past the end of its storage, and a storage whose entry is shorter than its numel.
    four = torch.arange(4, dtype=torch.float32).numpy().tobytes()
    write_zip("view_out_of_bounds", {"w": FakeTensor(FakeStorage(torch.FloatStorage, "0", 4), 2, (3,), (1,))}, {"0": four})
    write_zip("huge_expansion", {"w": FakeTensor(FakeStorage(torch.FloatStorage, "0", 4), 0, (10 ** 12,), (0,))}, {"0": four})
    write_zip("short_storage", {"w": FakeTensor(FakeStorage(torch.FloatStorage, "0", 8), 0, (8,), (1,))}, {"0": four})

    # Malicious: each would run code (or build an arbitrary object) under torch.load(weights_only=False).
    marker = f"/tmp/ddpo-pwned-{uuid.uuid4().hex[:12]}"
    expected["marker"] = marker
    tensor = {"0": four}
    ok = FakeTensor(FakeStorage(torch.FloatStorage, "0", 4), 0, (4,), (1,))
    write_zip("evil_os_system", {"w": ok, "x": Reduce(os.system, (f"touch {marker}",))}, tensor)
    write_zip("evil_eval", {"w": ok, "x": Reduce(eval, (f"open('{marker}', 'w').close()",))}, tensor)
    write_zip("evil_class", {"w": ok, "x": Custom()}, tensor)
    write_zip("evil_protocol4", {"w": ok, "x": Reduce(eval, (f"open('{marker}', 'w').close()",))}, tensor, protocol=4)
    # Protocol 2 writes Python 3's builtins under their Python 2 name; protocol 4 (STACK_GLOBAL) keeps "builtins".
    expected["refused"] = {"evil_os_system": f"{os.system.__module__}.system", "evil_eval": "__builtin__.eval",
                           "evil_class": "__main__.Custom", "evil_protocol4": "builtins.eval"}
    # The fixtures really are malicious: an unrestricted load runs them (then the marker is removed again).
    for name in ["evil_os_system", "evil_eval", "evil_protocol4"]:
        torch.load(os.path.join(HERE, name + ".pt"), weights_only=False)
        assert os.path.exists(marker), name
        os.remove(marker)
        try:
            torch.load(os.path.join(HERE, name + ".pt"), weights_only=True)
            raise AssertionError(name)
        except pickle.UnpicklingError:
            pass

    # torch.save(model): the classes of the module are globals; refused (not malicious, but not a state dict).
    torch.save(torch.nn.Linear(2, 1), os.path.join(HERE, "whole_module.pt"))
    expected["refused"]["whole_module"] = "torch.nn.modules.linear.Linear"

    torch.save(sd, os.path.join(HERE, "legacy.pt"), _use_new_zipfile_serialization=False)
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print("torch", torch.__version__, file=sys.stderr)


if __name__ == "__main__":
    main()
