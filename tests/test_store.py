"""fmask.infra.store: parameter keys, atomic metadata-carrying files, refusal to mix parameters."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from fmask.infra.atomic import atomic_torch_save, atomic_write_json, canonical_json
from fmask.infra.integrity import FORMAT, versions
from fmask.infra.store import ArtifactStore, default_root


def test_key_is_canonical_and_parameter_sensitive():
    a = {"b": 1, "a": [1, 2], "c": {"y": 0.5, "x": None}}
    b = {"c": {"x": None, "y": 0.5}, "a": (1, 2), "b": 1}  # other order, tuple instead of list
    assert ArtifactStore.key(a) == ArtifactStore.key(b)
    assert len(ArtifactStore.key(a)) == 16
    assert ArtifactStore.key(a) != ArtifactStore.key({**a, "b": 2})
    assert canonical_json(a) == '{"a":[1,2],"b":1,"c":{"x":null,"y":0.5}}'
    with pytest.raises(ValueError, match="not JSON-compatible"):
        ArtifactStore.key({"x": object()})
    with pytest.raises(ValueError, match="kind"):
        ArtifactStore("/tmp").path("../evil", a)


def test_root_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FMASK_ARTIFACTS", str(tmp_path / "env"))
    assert ArtifactStore().root == tmp_path / "env"
    assert ArtifactStore(tmp_path / "arg").root == tmp_path / "arg"
    monkeypatch.delenv("FMASK_ARTIFACTS")
    assert ArtifactStore().root == default_root() and ArtifactStore().root.is_absolute()


def test_save_load_roundtrip_weights_only(tmp_path):
    st = ArtifactStore(tmp_path)
    params = {"regime": "vanilla", "seed": 0, "lr": 1e-3}
    payload = {"w": torch.arange(6.0).view(2, 3), "names": ["a", "b"], "n": 3}
    path = st.save("masks", params, payload, {"note": "hello", "torch": torch.__version__})
    assert path == st.path("masks", params) and path.is_file()
    # no temporary files left behind: payload, sidecar and the (kept) lock file of the save
    names = [path.name, path.with_suffix(".json").name, path.with_suffix(".lock").name]
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(names)
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["params"] == params and side["metadata"]["note"] == "hello" and "torch" in side["metadata"]["versions"]
    assert side["format"] == FORMAT and side["payload"]["bytes"] == path.stat().st_size
    assert side["payload"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    blob = torch.load(path, weights_only=True)  # plain primitives + tensors only
    assert blob["params"] == params
    got, meta = st.load("masks", params)
    assert torch.equal(got["w"], payload["w"]) and got["names"] == ["a", "b"] and got["n"] == 3
    assert meta["note"] == "hello" and meta["key"] == st.key(params)
    assert st.load("masks", {**params, "seed": 1}) is None
    assert st.exists("masks", params) and not st.exists("masks", {**params, "seed": 1})


def test_load_refuses_other_parameters(tmp_path):
    st = ArtifactStore(tmp_path)
    p1, p2 = {"seed": 1}, {"seed": 2}
    st.save("model", p1, {"x": torch.ones(1)}, {})
    # simulate an intact file pair under p2's key that holds p1's artifact (key collision / tampering)
    st.path("model", p1).replace(st.path("model", p2))
    st.path("model", p1, ".json").replace(st.path("model", p2, ".json"))
    with pytest.raises(ValueError, match="different parameters"):
        st.load("model", p2)


def test_atomic_helpers(tmp_path):
    p = atomic_torch_save({"a": torch.zeros(2)}, tmp_path / "sub" / "x.pt")
    assert torch.equal(torch.load(p, weights_only=True)["a"], torch.zeros(2))
    j = atomic_write_json({"t": (1, 2), "v": versions()}, tmp_path / "x.json")
    d = json.loads(j.read_text())
    assert d["t"] == [1, 2] and {"python", "torch", "torchvision", "torchattacks"} <= set(d["v"])
    assert [q.name for q in tmp_path.iterdir() if q.name.startswith(".")] == []
