"""Bad input is refused cleanly: fuzzed architecture strings and config overrides, damaged checkpoints, runs of
another space or format, a full disk while checkpointing. docs/reliability.md counts what this file does."""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from nshot import spaces
from nshot.cli import main
from nshot.config import Config, ConfigError, from_dict, load_config, to_dict
from nshot.spaces.nb201 import OPS
from nshot.train.checkpoint import atomic_write_bytes, load_checkpoint, read_checkpoint_file, save_checkpoint

SP = spaces.get("nb201")
CANONICAL = frozenset(SP.enumerate())
FUZZ_ARCH_EXAMPLES = 400        # per strategy below; docs/reliability.md quotes these counts
FUZZ_CONFIG_EXAMPLES = 400


# -- NB201 strings ------------------------------------------------------------------------------------------

def _check_parse(text: str) -> None:
    try:
        out = SP.parse(text)
    except ValueError:
        return
    assert out in CANONICAL and SP.parse(out) == out and SP.encode(SP.decode(out)) == out


@pytest.mark.slow
@settings(max_examples=FUZZ_ARCH_EXAMPLES, deadline=None)
@given(st.text(alphabet=st.sampled_from("|+~0123456789 _\n\t" + "".join(sorted(set("".join(OPS))))), max_size=90)
       | st.text(max_size=60))
def test_fuzz_random_text_parses_or_raises_value_error(text):
    _check_parse(text)


_EDITS = st.lists(st.tuples(st.sampled_from(["insert", "delete", "replace", "swap", "dup", "case"]),
                            st.integers(0, 200), st.sampled_from(list("|+~0123456789 _xnoe") + ["\x00", "é", "٣"])),
                  min_size=1, max_size=4)


@pytest.mark.slow
@settings(max_examples=FUZZ_ARCH_EXAMPLES, deadline=None)
@given(st.integers(0, len(CANONICAL) - 1), _EDITS)
def test_fuzz_mutated_valid_strings_parse_or_raise_value_error(index, edits):
    s = list(SP.encode(SP.decode(sorted(CANONICAL)[index])))
    for kind, pos, ch in edits:
        i = pos % (len(s) + 1)
        if kind == "insert":
            s.insert(i, ch)
        elif s and kind == "delete":
            del s[i % len(s)]
        elif s and kind == "replace":
            s[i % len(s)] = ch
        elif len(s) > 1 and kind == "swap":
            j = i % (len(s) - 1)
            s[j], s[j + 1] = s[j + 1], s[j]
        elif s and kind == "dup":
            s.insert(i % len(s), s[i % len(s)])
        elif kind == "case":
            s = list("".join(s).upper() if pos % 2 else "".join(s).swapcase())
    _check_parse("".join(s))


def test_parse_refuses_non_strings_with_a_value_error():
    for bad in (None, 3, b"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", ["a"]):
        with pytest.raises(ValueError):
            SP.parse(bad)


# -- config overrides ---------------------------------------------------------------------------------------

def _keys(cls=Config, prefix=""):
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
            yield prefix + f.name
            yield from _keys(f.default_factory, prefix + f.name + ".")
        else:
            yield prefix + f.name


KEYS = sorted(_keys())
_PLAUSIBLE = st.sampled_from(["null", "true", "false", "0", "-1", "1", "3", "64", "1e999", ".nan", ".inf", "-.inf",
                              "5e-4", "0.5", "1.0e+300", "99999999999999999999999", "[]", "{}", "[1, 2]", "{a: 1}",
                              "''", "cpu", "cuda:1", "auto", "random", "stop", "skip", "calr", "fair", "ms_sgd",
                              "digits", "kmeans", "flops", "none", "!!python/object:os.system", "&a [*a]",
                              "2020-01-01", "0x10", "~", "'3'", "[[[[[[", "a: b: c", "1_000", "0o17", "+12", "-0.0"])
_VALUES = st.one_of(_PLAUSIBLE, _PLAUSIBLE, _PLAUSIBLE, st.integers(-10**20, 10**20).map(str),
                    st.floats().map(repr), st.text(max_size=30))
_KEY = st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS), st.sampled_from(KEYS), st.sampled_from(KEYS),
                 st.sampled_from(KEYS).map(lambda k: k + ".x"), st.sampled_from(KEYS).map(lambda k: k.upper()),
                 st.text(alphabet="abcdefghijklmnopqrstuvwxyz._ =", max_size=20), st.text(max_size=15))


@settings(max_examples=FUZZ_CONFIG_EXAMPLES, deadline=None)
@given(_KEY, _VALUES, st.integers(0, 9))
def test_fuzz_config_overrides_give_config_error_or_a_valid_config(key, value, form):
    override = key + value if form == 0 else f"{key}={value}"     # 1 in 10 without '='
    try:
        cfg = load_config(None, [override])
    except ConfigError:
        return
    assert isinstance(cfg, Config) and cfg.validate() is cfg
    assert from_dict(Config, yaml.safe_load(yaml.safe_dump(to_dict(cfg)))) == cfg   # what config.yaml holds reloads


def _typed_override(draw_key):
    """key=value with a value of the key's own type (numbers of any size and sign, choices, random strings)."""
    import typing

    def fields(cls=Config, prefix=""):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                yield from fields(hints[f.name], prefix + f.name + ".")
            else:
                yield prefix + f.name, hints[f.name], f.metadata.get("choices")

    table = {k: (tp, ch) for k, tp, ch in fields()}
    key = draw_key(st.sampled_from(sorted(table)))
    tp, choices = table[key]
    text = repr(tp)
    if choices:
        value = st.sampled_from(list(choices)) | st.text(max_size=10)
    elif "bool" in text:
        value = st.sampled_from(["true", "false", "yes", "1", "null"])
    elif "int" in text:
        value = st.integers(-10**6, 10**6).map(str) | st.sampled_from(["null", "1.0", "2.5"])
    elif "float" in text:
        value = st.floats().map(repr) | st.integers(-10**3, 10**3).map(str) | st.just("null")
    else:
        value = st.text(max_size=20) | st.sampled_from(["null", "0", "cuda:0", "cuda:x", "random", "12"])
    return f"{key}={draw_key(value)}"


@pytest.mark.slow
@settings(max_examples=FUZZ_CONFIG_EXAMPLES, deadline=None)
@given(st.data())
def test_fuzz_typed_config_overrides_give_config_error_or_a_valid_config(data):
    override = _typed_override(data.draw)
    try:
        cfg = load_config(None, [override])
    except ConfigError:
        return
    assert isinstance(cfg, Config) and cfg.validate() is cfg
    assert from_dict(Config, yaml.safe_load(yaml.safe_dump(to_dict(cfg)))) == cfg


@pytest.mark.parametrize("override, message", [
    ("seed=-1", "seed = -1 is invalid: expected an integer >= 0"),
    ("optim.lr=.inf", "optim.lr = inf is invalid: expected a finite number"),
    ("optim.lr=1e999", "optim.lr = '1e999' is invalid: expected a finite number"),
    ("train.grad_clip=.nan", "train.grad_clip = nan is invalid: expected a finite number"),
    ("train.nonfinite=ignore", "train.nonfinite = 'ignore' is invalid: expected one of stop, skip"),
])
def test_values_the_fuzzer_found_are_named(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(None, [override])


# -- damaged runs through the CLI ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished tiny digits run with last.pt and prev.pt (checkpoints every 3 steps)."""
    tmp = tmp_path_factory.mktemp("bad")
    cfg = tmp / "digits.yaml"
    cfg.write_text(yaml.safe_dump({"device": "cpu", "threads": 1, "data": {"name": "digits", "crop_padding": 1,
                                   "flip": False, "train_subset": 256}, "model": {"C": 4, "N": 1},
                                   "train": {"epochs": 2, "batch_size": 64, "checkpoint_every_steps": 3},
                                   "run": {"progress": "none"}}))
    run = tmp / "run"
    assert main(["train", str(cfg), "--run-dir", str(run), "--max-steps", "6"]) == 0   # ckpts at 3, 4, 6
    return run


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A small NB201-format table (10 archs) so that `nshot rank` gets as far as opening the run."""
    from tests.helpers import write_table
    path = tmp_path_factory.mktemp("table") / "table.csv"
    write_table(path, n=10)
    return path


@pytest.fixture
def run(trained_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(trained_run, dst)
    return dst


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _flip(path: Path, at: int = -100) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])


@pytest.mark.parametrize("damage", ["truncated-last-no-prev", "flipped-last-truncated-prev", "garbage-both",
                                    "empty-last-no-prev"])
def test_damaged_checkpoints_are_refused_and_left_as_they_are(damage, run, table, capsys):
    ck = run / "checkpoints"
    last, prev = ck / "last.pt", ck / "prev.pt"
    if damage == "truncated-last-no-prev":
        _truncate(last)
        prev.unlink()
    elif damage == "flipped-last-truncated-prev":
        _flip(last)
        _truncate(prev)
    elif damage == "garbage-both":
        last.write_bytes(b"not a checkpoint\n" * 10)
        prev.write_bytes(b"")
    else:
        last.write_bytes(b"")
        prev.unlink()
    before = snapshot(run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 1     # a failure, not a usage error
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(last) in err
    if prev.exists():
        assert str(prev) in err
    assert snapshot(run) == before                       # nothing written, nothing removed
    assert main(["rank", str(run), "--table", str(table), "--metric", "cifar10/test", "--subset", "3"]) == 1  # scoring refuses it too, naming the file
    assert str(last) in capsys.readouterr().err
    assert snapshot(run) == before


def test_a_damaged_last_falls_back_to_prev_and_prev_is_kept(run, capsys):
    ck = run / "checkpoints"
    _flip(ck / "last.pt")
    good_prev = (ck / "prev.pt").read_bytes()
    prev_step = read_checkpoint_file(ck / "prev.pt")["step"]
    with pytest.warns(UserWarning, match="using the previous checkpoint"):
        assert main(["train", "--resume", str(run), "--max-steps", "1"]) == 0
    assert f"at step {prev_step}/" in capsys.readouterr().out
    # the first new checkpoint replaced the damaged last.pt and did NOT rotate it over the good prev.pt
    assert (ck / "prev.pt").read_bytes() == good_prev
    assert read_checkpoint_file(ck / "last.pt")["step"] == prev_step + 1
    assert main(["train", "--resume", str(run), "--max-steps", "1"]) == 0   # then rotation is back to normal
    assert read_checkpoint_file(ck / "prev.pt")["step"] == prev_step + 1


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(format=99), "checkpoint format 99"),
    (lambda s: s.update(kind="standalone"), "kind 'standalone'"),
    (lambda s: s.update(space="nats_sss"), "checkpoint is for space 'nats_sss', its config says 'nb201'"),
    (lambda s: s["config"]["space"].update(name="nasbench101"), "space.name = 'nasbench101' is invalid"),
    (lambda s: s["config"]["train"].update(epochz=3), "unknown config key 'train.epochz'"),
])
def test_checkpoints_of_another_space_or_format_are_refused(edit, message, run, table, capsys):
    ck = run / "checkpoints"
    state = load_checkpoint(ck)
    edit(state)
    save_checkpoint(ck, state)
    before = snapshot(run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and str(run) in err
    assert main(["rank", str(run), "--table", str(table), "--metric", "cifar10/test", "--subset", "3"]) == 2
    assert message in capsys.readouterr().err
    assert snapshot(run) == before


def test_resume_overrides_are_limited(run, capsys):
    before = snapshot(run)
    assert main(["train", "--resume", str(run), "model.C=8"]) == 2
    assert "a resume may only change optim.lr" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "optim.lr=-1"]) == 2
    assert "optim.lr = -1.0 is invalid" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "other.yaml"]) == 2
    assert snapshot(run) == before


# -- a full disk --------------------------------------------------------------------------------------------

def _enospc_on(monkeypatch, suffix: str) -> list[str]:
    """Make ``os.write`` fail with ENOSPC (after writing a first part) on files whose path ends with ``suffix``."""
    real_write, hits = os.write, []

    def write(fd, data):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if not target.endswith(suffix):
            return real_write(fd, data)
        hits.append(target)
        if len(hits) == 1 and len(data) > 4096:
            return real_write(fd, bytes(data[:4096]))      # the disk fills up part-way through
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)
    return hits


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc/self/fd")


@linux_only
def test_disk_full_while_checkpointing_keeps_the_old_checkpoints(run, monkeypatch, capsys):
    ck = run / "checkpoints"
    last, prev = (ck / "last.pt").read_bytes(), (ck / "prev.pt").read_bytes()
    step = load_checkpoint(ck)["step"]
    hits = _enospc_on(monkeypatch, "last.pt.tmp")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--max-steps", "2"]) == 1
    err = capsys.readouterr().err
    assert hits and err.startswith("error: ") and err.count("\n") == 1
    assert str(ck / "last.pt") in err and "No space left on device" in err and "--resume" in err
    assert (ck / "last.pt").read_bytes() == last and (ck / "prev.pt").read_bytes() == prev
    assert not list(ck.glob("*.tmp"))
    monkeypatch.undo()
    assert load_checkpoint(ck)["step"] == step and read_checkpoint_file(ck / "prev.pt")["step"] < step
    assert main(["train", "--resume", str(run), "--max-steps", "2"]) == 0      # space is back: it goes on
    assert load_checkpoint(ck)["step"] == step + 2


@linux_only
def test_disk_full_when_a_resume_records_its_environment(run, monkeypatch, capsys):
    before = snapshot(run)
    _enospc_on(monkeypatch, "env.json.tmp")
    assert main(["train", "--resume", str(run)]) == 1
    err = capsys.readouterr().err
    assert str(run / "env.json") in err and "No space left on device" in err
    assert snapshot(run) == before


@linux_only
def test_atomic_write_on_a_full_disk(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    _enospc_on(monkeypatch, "f.bin.tmp")
    with pytest.raises(OSError, match="No space left on device") as info:
        atomic_write_bytes(target, b"x" * 100_000)
    assert info.value.errno == errno.ENOSPC and str(target) in str(info.value)
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and not (tmp_path / "f.bin.tmp").exists()
