"""The language-model package (notebook 09): the corpus, the model, each compression technique checked
against its definition or the ecosystem's own implementation, the KV cache and the 4-bit ONNX model."""
import json
import math
import shutil

import pytest
import torch
from hypothesis import given, settings, strategies as st

from course_lib import data, experiments, language as L, measure, runtime, zoo


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = L.GPT(L.GPTConfig(vocab_size=17, block_size=32, n_layer=2, n_head=4, n_embd=32, dropout=0.0), seed=3).eval()
    with torch.no_grad():              # LayerNorms away from identity, and a few large input channels
        for block in m.blocks:
            block.ln1.weight.uniform_(0.5, 2.0)
            block.ln1.bias.normal_(0, 0.1)
            block.ln2.weight[:3] = 8.0
    return m


@pytest.fixture(scope="module")
def windows():
    return torch.randint(0, 17, (6, 32), generator=torch.Generator().manual_seed(1))


# ----------------------------------------------------------------------------- the corpus

def test_corpus_is_verified_split_by_topic_and_matches_the_model():
    corpus = L.load_corpus()
    assert len(corpus.tokenizer) == zoo.CHAR_GPT.vocab_size == 103
    topics = corpus.topics
    assert not set(topics["train"]) & set(topics["test"]) and not set(topics["validation"]) & set(topics["test"])
    assert sum(map(len, topics.values())) == 79
    assert len(corpus.test) > 50_000 and len(corpus.validation) > 50_000
    text = corpus.tokenizer.decode(corpus.test[:200])
    assert corpus.tokenizer.decode(corpus.tokenizer.encode(text)) == text
    assert L.split_topics(L.read_topics()) == topics                     # the same split every time


def test_corrupted_corpus_is_named(tmp_path):
    shutil.copytree(data.data_root() / L.CORPUS, tmp_path / L.CORPUS)
    path = tmp_path / L.CORPUS / L.CORPUS_FILE
    topics = json.loads(path.read_text(encoding="utf-8"))
    topics["if"] = topics["if"].replace("if", "fi", 1)
    path.write_text(json.dumps(topics), encoding="utf-8")
    with pytest.raises(data.DatasetError, match="python-docs/topics.json is corrupted"):
        L.read_topics(tmp_path)


def test_tokenizer_names_unknown_characters():
    with pytest.raises(ValueError, match="outside the vocabulary"):
        L.CharTokenizer("abc").encode("abd")


# ----------------------------------------------------------------------------- the model

def test_context_longer_than_the_block_is_refused(model):
    with pytest.raises(ValueError, match="block_size=32"):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_training_is_seeded_and_leaves_global_state_alone(windows):
    tokens = windows.flatten()
    config = L.GPTConfig(vocab_size=17, block_size=16, n_layer=1, n_head=2, n_embd=16)
    settings_ = L.LanguageTraining(steps=5, batch_size=4, warmup=2, eval_every=5)
    state = torch.get_rng_state()
    runs = []
    for _ in range(2):
        m = L.GPT(config, seed=0)
        history = L.train_language_model(m, tokens, settings_, validation=tokens, progress=False)
        runs.append((history[-1]["train_loss"], m.head.weight.clone()))
    assert torch.equal(torch.get_rng_state(), state)
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


# ----------------------------------------------------------------------------- weight quantization

@settings(max_examples=40, deadline=None)
@given(bits=st.integers(2, 8), n=st.integers(1, 70), seed=st.integers(0, 1000))
def test_packing_round_trips_in_the_formula_s_bytes(bits, n, seed):
    codes = torch.randint(0, 2 ** bits, (n,), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    packed = L.pack_codes(codes, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == -(-n * bits // 8)
    assert torch.equal(L.unpack_codes(packed, bits, (n,)), codes)


def test_four_bit_codes_are_packed_low_nibble_first():
    assert L.pack_codes(torch.tensor([1, 2, 15, 0], dtype=torch.uint8), 4).tolist() == [0x21, 0x0F]
    with pytest.raises(ValueError, match=r"codes must be in \[0, 15\]"):
        L.pack_codes(torch.tensor([16]), 4)


@pytest.mark.parametrize("bits, group_size", [(8, None), (4, None), (4, 8), (3, 16), (2, 4)])
def test_groupwise_rounding_equals_torch_s_per_channel_fake_quantization(bits, group_size):
    w = torch.randn(6, 32, generator=torch.Generator().manual_seed(bits))
    codes, scales, zeros = L.quantize_groupwise(w, bits, group_size)
    g = group_size or 32
    groups = w.reshape(-1, g)
    expected = torch.fake_quantize_per_channel_affine(groups, scales.float().reshape(-1), zeros.int().reshape(-1),
                                                      0, 0, 2 ** bits - 1).reshape(6, 32)
    assert torch.allclose(L.dequantize_groupwise(codes, scales, zeros), expected, atol=1e-6)
    assert scales.shape == (6, 32 // g) and codes.max() <= 2 ** bits - 1


def test_zero_is_exact_and_smaller_groups_err_less():
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(0))
    w[0, :5] = 0.0
    errors = []
    for g in (None, 32, 8):
        w_hat = L.dequantize_groupwise(*L.quantize_groupwise(w, 3, g))
        assert torch.all(w_hat[0, :5] == 0)
        errors.append(float((w_hat - w).pow(2).mean()))
    assert errors[0] > errors[1] > errors[2]


@pytest.mark.parametrize("call, fragment", [
    (lambda: L.quantize_groupwise(torch.randn(4, 6), 9), "bits"),
    (lambda: L.quantize_groupwise(torch.randn(4, 6), 4, 4), "group_size=4 must divide"),
    (lambda: L.quantize_groupwise(torch.tensor([[1.0, float("nan")]]), 4), "finite 2-D"),
    (lambda: L.quantize_groupwise(torch.randn(4), 4), "finite 2-D"),
])
def test_bad_input_is_named(call, fragment):
    with pytest.raises((TypeError, ValueError), match=fragment):
        call()


def test_quantized_model_counts_its_packed_bytes(model):
    q = L.quantize_weights(model, 4, 8)
    from course_lib import measure
    linears = sum(layer.weight.numel() for layer in L.block_linears(model).values())
    other = sum(p.numel() for n, p in model.named_parameters() if "blocks" not in n or "ln" in n)
    groups = linears // 8
    assert measure.weight_bytes(q) == linears * 4 // 8 + groups * 2 + groups * 4 // 8 + 4 * other
    layer = q.blocks[0].attention.query
    assert layer.packed.numel() == 32 * 32 * 4 // 8
    assert torch.equal(layer.codes(), L.quantize_groupwise(model.blocks[0].attention.query.weight, 4, 8)[0])


def test_gptq_with_an_identity_hessian_is_round_to_nearest():
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    gptq = L.gptq_quantize(w, torch.eye(16), 3, damp=0.0)
    rtn = L.quantize_groupwise(w, 3)
    assert all(torch.equal(a, b) for a, b in zip(gptq, rtn))


def test_gptq_lowers_the_output_error_on_correlated_inputs():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 32, generator=g)
    x = torch.randn(512, 8, generator=g) @ torch.randn(8, 32, generator=g) + 0.1 * torch.randn(512, 32, generator=g)
    error = lambda w_hat: float((x @ (w_hat - w).T).pow(2).mean())
    for group_size in (None, 8):
        rtn = L.dequantize_groupwise(*L.quantize_groupwise(w, 3, group_size))
        gptq = L.dequantize_groupwise(*L.gptq_quantize(w, L.hessian(x), 3, group_size))
        assert error(gptq) < 0.7 * error(rtn)


def test_awq_is_never_worse_than_round_to_nearest_on_its_calibration(model, windows):
    layers = [model.blocks[0].mlp.fc]
    x = L.linear_inputs(model, windows, ["blocks.0.mlp.fc"])["blocks.0.mlp.fc"]
    s, alpha = L.awq_scale_search(layers, x, 3, 8)
    w = layers[0].weight.detach()
    error = lambda w_hat: float((x @ (w_hat - w).T).pow(2).mean())
    awq = L.dequantize_groupwise(*L.quantize_groupwise(w * s, 3, 8)) / s
    assert error(awq) <= error(L.dequantize_groupwise(*L.quantize_groupwise(w, 3, 8))) + 1e-9
    assert 0 <= alpha <= 1


def test_awq_and_gptq_models_stay_close_to_the_float_model(model, windows):
    reference = model(windows)
    for q in (L.gptq_model(model, windows, 8), L.awq_model(model, windows, 8)[0]):
        assert (q(windows) - reference).abs().max() < 0.05
    assert model.blocks[0].ln1.weight.min() >= 0.5               # the given model was not changed


# ----------------------------------------------------------------------------- activations, sparsity, heads

def test_smoothing_keeps_the_function_and_flattens_the_inputs(model, windows):
    smoothed = L.smooth(model, windows)
    assert torch.allclose(smoothed(windows), model(windows), atol=1e-4)
    before = L.input_channel_ranges(model, windows)["blocks.0.mlp.fc"]
    after = L.input_channel_ranges(smoothed, windows)["blocks.0.mlp.fc"]
    assert after.max() / after.median() < before.max() / before.median()


def test_w8a16_is_weight_only_and_w8a8_quantizes_inputs(model, windows):
    w8a16 = L.quantize_w8a8(model, None, activation_bits=None)
    w8a8 = L.quantize_w8a8(model, windows)
    assert w8a16.blocks[0].mlp.fc.input_qparams is None and w8a8.blocks[0].mlp.fc.activation_bits == 8


def test_wanda_scores_and_masks():
    w = torch.tensor([[1.0, -2.0, 3.0, -4.0]])
    x = torch.tensor([[4.0, 0.0, 0.0, 1.0], [3.0, 0.0, 1.0, 0.0]])
    assert torch.equal(L.wanda_scores(w, x), torch.tensor([[5.0, 0.0, 3.0, 4.0]]))
    assert torch.equal(L.n_of_m_mask(L.wanda_scores(w, x)), torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
    assert torch.equal(L.n_of_m_mask(w.abs()), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    assert torch.equal(L.row_mask(torch.tensor([[2.0, 1.0, 1.0, 3.0]]), 0.5), torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="m=4 must divide"):
        L.n_of_m_mask(torch.ones(2, 6))


@pytest.mark.parametrize("method, pattern", [("magnitude", "unstructured"), ("wanda", "2:4")])
def test_pruned_models_have_half_their_linear_weights(model, windows, method, pattern):
    pruned = L.prune_model(model, method, pattern, windows)
    assert L.linear_sparsity(pruned) == 0.5 and L.linear_sparsity(model) == 0.0
    if pattern == "2:4":
        w = pruned.blocks[1].mlp.proj.weight
        assert torch.all((w.reshape(w.shape[0], -1, 4) != 0).sum(2) == 2)


def test_wanda_needs_calibration(model):
    with pytest.raises(ValueError, match="needs calibration"):
        L.prune_model(model, "wanda", "2:4")


def test_removing_masked_heads_keeps_the_function_and_shrinks_the_model(model, windows):
    fisher = L.head_fisher(model, torch.cat([windows, windows[:, :1]], 1))
    assert fisher.shape == (2, 4) and torch.all(fisher > 0)
    masked = L.mask_heads(model, fisher, 3)
    tuned = L.tune_head_masks(model, masked, windows)
    smaller = L.remove_heads(tuned)
    assert torch.allclose(smaller(windows), tuned(windows), atol=1e-5)
    assert sum(b.attention.n_head for b in smaller.blocks) == 5
    reference = model(windows)
    assert (tuned(windows) - reference).pow(2).mean() <= (masked(windows) - reference).pow(2).mean()


# ----------------------------------------------------------------------------- the KV cache

def test_cached_decoding_equals_the_full_forward(model, windows):
    full = model(windows[:2])
    cache = L.KVCache(2, 32)
    parts = [L.forward_with_cache(model, windows[:2, :10], cache)]
    parts += [L.forward_with_cache(model, windows[:2, t:t + 1], cache) for t in range(10, 32)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-3)
    assert cache.nbytes() == 32 * 2 * L.cache_bytes_per_token(model)


def test_int8_cache_is_what_kv_bits_scores_and_half_the_bytes(model, windows):
    cache = L.KVCache(2, 32, bits=8)
    parts = [L.forward_with_cache(model, windows[:1, t:t + 1], cache) for t in range(32)]
    simulated = L.set_kv_bits(L.GPT(model.config), None)
    simulated.load_state_dict(model.state_dict())
    L.set_kv_bits(simulated.eval(), 8)
    assert torch.allclose(torch.cat(parts, 1), simulated(windows[:1]), atol=1e-4)
    assert cache.nbytes() == 32 * L.cache_bytes_per_token(model, 8)
    assert L.cache_bytes_per_token(model, 8) == 2 * 2 * 4 * (8 + 2)          # int8 codes and a float16 scale per head
    assert L.cache_bytes_per_token(model) == 2 * 2 * 4 * 8 * 2


def test_generation_with_and_without_cache_draws_the_same(model, windows):
    prompt = windows[0, :5]
    assert torch.equal(L.generate(model, prompt, 12, seed=2), L.generate_cached(model, prompt, 12, seed=2)[0])
    with pytest.raises(ValueError, match="fit the context"):
        L.generate_cached(model, prompt, 40)
    cache = L.KVCache(2, 4)
    with pytest.raises(ValueError, match="holds 4 characters"):
        L.forward_with_cache(model, windows[:1, :5], cache)


# ----------------------------------------------------------------------------- ONNX Runtime's MatMulNBits

def test_int4_model_on_onnx_runtime_equals_ours_and_is_smaller(model, windows, tmp_path):
    q = L.quantize_weights(model, 4, 16)
    int4 = L.export_int4(q, tmp_path / "int4.onnx")
    fp32 = L.export_fp32(model, tmp_path / "fp32.onnx")
    session = runtime.ort_session(int4, threads=1)
    assert torch.allclose(L.run_session(session, windows), q(windows), atol=1e-4)
    assert int4.stat().st_size < 0.5 * fp32.stat().st_size
    with pytest.raises(ValueError, match="4-bit codes in groups of a power of two"):
        L.export_int4(L.quantize_weights(model, 3, 16), tmp_path / "int3.onnx")


# ----------------------------------------------------------------------------- the panel's workflow

def test_calibration_windows_are_seeded():
    tokens = torch.arange(1000)
    a, b = (experiments.calibration_windows(tokens, 4, 16, seed=s) for s in (0, 0))
    assert torch.equal(a, b) and a.shape == (4, 16) and torch.all(a[:, 1:] - a[:, :-1] == 1)
    assert not torch.equal(a, experiments.calibration_windows(tokens, 4, 16, seed=1))


def test_compare_bpc_is_paired():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    c = experiments.compare_bpc(a, a + math.log(2) * 0.1)
    assert c.delta_bpc == pytest.approx(0.1) and c.low == pytest.approx(0.1) and c.perplexity_ratio == pytest.approx(2 ** 0.1)
    with pytest.raises(ValueError, match="same length"):
        experiments.compare_bpc(a, a[:3])


def test_an_int8_cache_is_what_fits_the_nano_at_full_context():
    model = zoo.load("char_gpt_python_docs")
    int4_bytes = 640_000
    fits = {cache: experiments.language_deployment(model, "Arduino Nano 33 BLE Sense", 128, "int4", int4_bytes, cache,
                                                   1.8).verdict for cache in ("fp16", "int8")}
    assert fits["int8"].fits and not fits["fp16"].fits and "SRAM" in fits["fp16"].reasons[0]
    fp32 = experiments.language_deployment(model, "Raspberry Pi 4", 16, "fp32", measure.weight_bytes(model), "fp16", 1.8)
    assert fp32.verdict.fits and fp32.cache_bytes == 16 * L.cache_bytes_per_token(model)
    with pytest.raises(ValueError, match="context"):
        experiments.language_deployment(model, "Raspberry Pi 4", 129, "fp32", 1, "fp16", 1.8)
    with pytest.raises(ValueError, match="kv_cache"):
        experiments.language_deployment(model, "Raspberry Pi 4", 16, "fp32", 1, "int4", 1.8)


def test_panel_shows_a_verdict_and_names_a_bad_choice():
    from course_lib import widgets
    panel = widgets.language_model_panel()
    assert "fits" in panel.children[-1].children[0].value
    run = experiments.language_experiment("Arduino Nano 33 BLE Sense", 128, "int4 g32", "int8")
    assert run.verdict.fits and run.bpc < 2.0
    with pytest.raises(ValueError, match="weights must be one of"):
        experiments.language_experiment("Arduino Nano 33 BLE Sense", 16, "int2", "int8")


def test_the_zoo_s_adapters_sit_on_their_frozen_quantized_base(tmp_path):
    recipe = zoo.RECIPES["char_gpt_int4_lora"]
    fresh = zoo.lora_base(recipe)                                 # B = 0: the quantized base's function exactly
    x = torch.randint(0, 103, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(fresh(x), L.quantize_weights(zoo.load("char_gpt_python_docs"), 4)(x), atol=1e-4)
    trained = zoo.load("char_gpt_int4_lora")
    stored = zoo.load_state_dict(zoo.weights_path("char_gpt_int4_lora"))
    assert set(stored) == {k for k, p in trained.named_parameters() if p.requires_grad}
    assert all(k.endswith((".A", ".B")) for k in stored)


def test_image_panels_do_not_offer_the_language_models():
    assert not [n for n in experiments.panel_models() if "gpt" in n]
    with pytest.raises(ValueError, match="is a language model"):
        experiments.check_panel_model("char_gpt_python_docs")
