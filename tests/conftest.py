"""Shared fixtures: the small production-shaped models, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every tiny family, built into a session folder (reused from FASHION_TEST_MODELS if set)."""
    from fashion_studio.tiny import build_all

    root = Path(os.environ.get("FASHION_TEST_MODELS") or tmp_path_factory.mktemp("models"))
    return build_all(root / "tiny", seed=0)


@pytest.fixture()
def settings(tiny_models: dict[str, Path], tmp_path: Path):
    from fashion_studio.settings import Settings

    return Settings(
        models_dir=tiny_models["sd"].parent.parent,
        generator=str(tiny_models["sd"]),
        translator=str(tiny_models["marian"]),
        scorer=str(tiny_models["clip"]),
        storage_url=str(tmp_path / "store"),
        default_steps=2,
        default_guidance=0.0,
        default_width=32,
        default_height=32,
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """A real S3 server (SeaweedFS) for the whole session: see tests/s3.py."""
    from tests.s3 import SeaweedS3

    server = SeaweedS3.start(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory) -> Path:
    """A one-layer random GPT-2 and a word-level tokenizer without braces: it can never answer in JSON."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = [
        "<unk>",
        "<eos>",
        *sorted(
            set(
                'the a of and with t-shirt shirt dress black white red cotton print girls boys women men : , . " '
                "product_type colors materials null sleeves embroidered floral".split()
            )
        ),
    ]
    tokenizer = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")
    config = GPT2Config(vocab_size=len(words), n_positions=512, n_layer=1, n_head=2, n_embd=32, bos_token_id=1, eos_token_id=1)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-llm")
    GPT2LMHeadModel(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def shared_gateway(tmp_path_factory):
    """One gateway with every model service on the shipped fashion-mini models, shared by the test
    modules that only send it requests (editing, masks, try-on): each served gateway is seven
    processes, and starting one per module cost the suite minutes. Modules that change settings or
    measure timing start their own."""
    from tests.helpers import serving

    root = tmp_path_factory.mktemp("studio")
    env = {
        "FASHION_STORAGE_URL": str(root / "store"),
        "FASHION_WARMUP": "false",
        "FASHION_LIMITS__MAX_INSTRUCTION_CHARS": "120",
        "FASHION_BATCHING__MAX_LATENCY_MS": "5000",
    }
    with serving("services.gateway:Studio", env, root / "server.log", timeout=300) as served:
        yield served
