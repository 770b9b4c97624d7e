#!/usr/bin/env python
"""Standalone inference for a trainforge export bundle (needs numpy plus onnxruntime or torch, not trainforge).

Examples::

    python inference.py --text "def f("              # language model, byte-level: next token + greedy continuation
    python inference.py --tokens 1,2,3               # token ids instead of text
    python inference.py --text "great movie"         # text classification (byte-level): the label
    python inference.py --npy image.npy              # vision: float32 [C, H, W] or [B, C, H, W]
    python inference.py --npy batch.npy --json       # any task: a batch from a .npy file, JSON output

``--format onnx|torchscript`` picks the backend (default: the first one that passed its parity check and whose
runtime is installed). The bundle's ``manifest.json`` and ``task_spec.json`` describe the model. The model file's
sha256 is checked against ``manifest.json`` before it is loaded; ``--skip-verify`` loads it anyway.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}

Runner = Callable[[list[np.ndarray]], np.ndarray]


def load_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return data


def onnx_runner(path: Path) -> Runner:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]

    def run(arrays: list[np.ndarray]) -> np.ndarray:
        out: np.ndarray = sess.run(None, dict(zip(names, arrays)))[0]
        return out

    return run


def torchscript_runner(path: Path) -> Runner:
    import torch

    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(arrays: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            out = module(*[torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])
        result: np.ndarray = out.detach().cpu().numpy()
        return result

    return run


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(bundle: Path, manifest: dict[str, Any], filename: str) -> None:
    """Refuse a model file (and its ONNX external data) whose sha256 differs from manifest.json's."""
    files = manifest.get("files", {})
    for name in (filename, filename + ".data"):
        entry = files.get(name)
        if entry is None:
            if name == filename:
                raise SystemExit(f"refusing to load {name}: manifest.json records no sha256 for it, so it cannot be "
                                 "checked. Re-export the bundle, or pass --skip-verify to load it anyway.")
            continue
        actual = sha256(bundle / name)
        if actual != entry.get("sha256"):
            raise SystemExit(f"refusing to load {name}: its sha256 is {actual} but manifest.json records "
                             f"{entry.get('sha256')} (the file changed after export: corrupted or replaced). "
                             "Re-export the bundle, or pass --skip-verify to load it anyway.")


def pick_runner(bundle: Path, manifest: dict[str, Any], fmt: str | None, check: bool = True) -> tuple[str, Runner]:
    formats = manifest.get("formats", {})
    if fmt is not None:
        status = formats.get(fmt, {}).get("status", "missing from the manifest")
        if status != "ok":
            print(f"warning: format {fmt!r} is marked {status!r} in manifest.json", file=sys.stderr)
        candidates = [fmt]
    else:
        candidates = [f for f in ("onnx", "torchscript") if formats.get(f, {}).get("status") == "ok"]
    errors = []
    for name in candidates:
        path = bundle / FILES[name]
        if not path.is_file():
            errors.append(f"{name}: {path.name} not found")
            continue
        if check:
            verify(bundle, manifest, path.name)
        try:
            return name, (onnx_runner(path) if name == "onnx" else torchscript_runner(path))
        except ImportError as exc:
            errors.append(f"{name}: {exc} (pip install {'onnxruntime' if name == 'onnx' else 'torch'})")
    raise SystemExit("no usable model in this bundle: " + ("; ".join(errors) or "no format passed its export checks"))


def with_mask(run: Runner, manifest: dict[str, Any], spec: dict[str, Any]) -> Runner:
    """When the model takes ``attention_mask`` (an input of the export, after the token inputs), pass it: 0 where
    the ids are ``pad_token_id`` (unless that is also EOS), else 1."""
    if "attention_mask" not in [i.get("name") for i in manifest.get("inputs", [])]:
        return run
    pad, eos = spec.get("pad_token_id"), spec.get("eos_token_id")

    def masked(arrays: list[np.ndarray]) -> np.ndarray:
        ids = arrays[0]
        mask = (ids != pad).astype(np.int64) if pad is not None and pad != eos else np.ones_like(ids, dtype=np.int64)
        return run([*arrays, mask])

    return masked


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    result: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return result


class Codec:
    """Text <-> token ids: UTF-8 bytes for byte-level models, else a `tokenizers` file if present."""

    def __init__(self, bundle: Path, spec: dict[str, Any], manifest: dict[str, Any]) -> None:
        tok = manifest.get("tokenizer") or {}
        self.byte_level = tok.get("type") == "byte" or spec.get("vocab_size") == 256
        self.tokenizer: Any = None
        if not self.byte_level:
            for candidate in (bundle / "tokenizer" / "tokenizer.json", bundle / "tokenizer.json"):
                if candidate.is_file():
                    try:
                        from tokenizers import Tokenizer

                        self.tokenizer = Tokenizer.from_file(str(candidate))
                    except ImportError:
                        pass
                    break

    def encode(self, text: str) -> list[int]:
        if self.byte_level:
            return list(text.encode("utf-8"))
        if self.tokenizer is not None:
            ids: list[int] = self.tokenizer.encode(text).ids
            return ids
        raise SystemExit("this model is not byte-level and no tokenizer could be loaded; pass --tokens 1,2,3 instead")

    def decode(self, ids: list[int]) -> str | None:
        if self.byte_level:
            return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")
        if self.tokenizer is not None:
            text: str = self.tokenizer.decode(ids)
            return text
        return None


def read_inputs(args: argparse.Namespace, codec: Codec, spec: dict[str, Any]) -> np.ndarray:
    if args.npy:
        data = np.load(args.npy)
        if spec.get("task_type") == "vision_classification":
            data = data.astype(np.float32)
            return data[None] if data.ndim == 3 else data
        if np.issubdtype(data.dtype, np.floating):
            data = data.astype(np.float32)
        else:
            data = data.astype(np.int64)
        return data[None] if data.ndim == 1 else data
    if spec.get("task_type") == "vision_classification":
        raise SystemExit("a vision model needs --npy image.npy (float32 [C, H, W] or [B, C, H, W])")
    if args.tokens:
        ids = [int(t) for t in args.tokens.replace(" ", "").split(",") if t]
    elif args.text is not None:
        ids = codec.encode(args.text)
    else:
        raise SystemExit("give the input with --text, --tokens or --npy")
    if not ids:
        raise SystemExit("the input is empty")
    max_len = spec.get("max_seq_len")
    if max_len:
        ids = ids[-int(max_len) :]
    return np.asarray([ids], dtype=np.int64)


def label_names(bundle: Path) -> dict[int, str]:
    config = load_json(bundle / "model_config.json")
    id2label = config.get("id2label") or {}
    return {int(k): str(v) for k, v in id2label.items()}


def classify(run: Runner, x: np.ndarray, bundle: Path) -> dict[str, Any]:
    logits = run([x])
    probs = softmax(logits.astype(np.float64))
    names = label_names(bundle)
    preds = []
    for row, p in zip(logits, probs):
        label = int(np.argmax(row))
        preds.append({"label": label, "label_name": names.get(label), "probability": float(p[label])})
    return {"predictions": preds, "logits": logits.tolist()}


def language_model(run: Runner, ids: np.ndarray, spec: dict[str, Any], codec: Codec, steps: int) -> dict[str, Any]:
    max_len = int(spec.get("max_seq_len") or ids.shape[1] + steps)
    logits = run([ids[:, -max_len:]])
    first = logits[:, -1, :]
    top = np.argsort(-first, axis=-1)[:, :5]
    seq = ids
    generated = np.zeros((ids.shape[0], 0), dtype=np.int64)
    step_logits = first
    for _ in range(steps):
        nxt = np.argmax(step_logits, axis=-1).astype(np.int64)[:, None]
        generated = np.concatenate([generated, nxt], axis=1)
        seq = np.concatenate([seq, nxt], axis=1)
        step_logits = run([seq[:, -max_len:]])[:, -1, :]
    preds = []
    for i in range(ids.shape[0]):
        gen = generated[i].tolist()
        preds.append({
            "next_token": int(top[i, 0]),
            "top5": top[i].tolist(),
            "generated_tokens": gen,
            "generated_text": codec.decode(gen),
        })
    return {"predictions": preds, "logits": logits.tolist()}


def seq2seq(run: Runner, src: np.ndarray, spec: dict[str, Any], codec: Codec, steps: int) -> dict[str, Any]:
    start = spec.get("decoder_start_token_id")
    start = 0 if start is None else int(start)
    eos = spec.get("eos_token_id")
    dec = np.full((src.shape[0], 1), start, dtype=np.int64)
    first_logits = None
    done = np.zeros(src.shape[0], dtype=bool)
    for _ in range(steps):
        logits = run([src, dec])
        if first_logits is None:
            first_logits = logits
        nxt = np.argmax(logits[:, -1, :], axis=-1).astype(np.int64)
        dec = np.concatenate([dec, nxt[:, None]], axis=1)
        if eos is not None:
            done |= nxt == int(eos)
            if done.all():
                break
    preds = []
    for i in range(src.shape[0]):
        gen = dec[i, 1:].tolist()
        if eos is not None and int(eos) in gen:
            gen = gen[: gen.index(int(eos))]
        preds.append({"generated_tokens": gen, "generated_text": codec.decode(gen)})
    return {"predictions": preds, "logits": [] if first_logits is None else first_logits.tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run an exported trainforge model.")
    parser.add_argument("--text", help="input text (byte-level models, or with a tokenizer in the bundle)")
    parser.add_argument("--tokens", help="comma-separated token ids, e.g. 1,2,3")
    parser.add_argument("--npy", help=".npy file: token ids [T] / [B, T], or images [C, H, W] / [B, C, H, W]")
    parser.add_argument("--format", choices=sorted(FILES), help="backend (default: the first that passed parity)")
    parser.add_argument("--max-new-tokens", type=int, default=8, help="greedy steps for generative models")
    parser.add_argument("--json", action="store_true", help="print one JSON object (with the raw logits)")
    parser.add_argument("--bundle", default=str(HERE), help="bundle directory (default: this script's folder)")
    parser.add_argument("--skip-verify", action="store_true",
                        help="load the model file even if its sha256 differs from manifest.json's")
    args = parser.parse_args(argv)

    bundle = Path(args.bundle)
    manifest = load_json(bundle / "manifest.json")
    spec = load_json(bundle / "task_spec.json") or manifest.get("task", {})
    task_type = spec.get("task_type")
    fmt, run = pick_runner(bundle, manifest, args.format, check=not args.skip_verify)
    run = with_mask(run, manifest, spec)
    codec = Codec(bundle, spec, manifest)
    x = read_inputs(args, codec, spec)

    if task_type == "language_modeling":
        result = language_model(run, x, spec, codec, args.max_new_tokens)
    elif task_type == "seq2seq":
        result = seq2seq(run, x, spec, codec, max(1, args.max_new_tokens))
    else:
        result = classify(run, x, bundle)
    result.update(format=fmt, task_type=task_type, input_shape=list(x.shape))

    if args.json:
        print(json.dumps(result))
        return 0
    for i, pred in enumerate(result["predictions"]):
        prefix = f"[{i}] " if len(result["predictions"]) > 1 else ""
        if task_type == "language_modeling":
            print(f"{prefix}next token: {pred['next_token']} (top 5: {pred['top5']})")
            text = pred["generated_text"]
            print(f"{prefix}greedy continuation: {pred['generated_tokens']}" + (f" {text!r}" if text is not None else ""))
        elif task_type == "seq2seq":
            text = pred["generated_text"]
            print(f"{prefix}output: {pred['generated_tokens']}" + (f" {text!r}" if text is not None else ""))
        else:
            name = f" ({pred['label_name']})" if pred.get("label_name") else ""
            print(f"{prefix}label: {pred['label']}{name}  p={pred['probability']:.4f}")
    print(f"(backend: {fmt})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
