import numpy as np
import pytest
import torch
from torch import nn

from bandsynth.nn.generator import (
    PRESETS,
    GeneratorOutput,
    ResNetGenerator,
    build_generator,
    count_parameters,
    minimum_input_size,
    receptive_field,
    uncertainty_field_margin,
)
from bandsynth.nn.training import run_generator


def _tiny(**kw):
    torch.manual_seed(0)
    return build_generator("tiny", 2, **kw)


def test_presets_values():
    assert dict(PRESETS["paper"]) == {"base_width": 64, "n_down": 1, "n_res": 9}
    assert set(PRESETS) >= {"paper", "small", "tiny"}
    with pytest.raises(TypeError):
        PRESETS["new"] = {}  # read-only registry


def test_paper_architecture_matches_publication():
    net = build_generator("paper", 2, scale_head=False)
    convs = [m for m in net.trunk if isinstance(m, nn.Conv2d)]
    stem, down = convs[0], convs[1]
    assert stem.kernel_size == (7, 7) and stem.out_channels == 64
    assert down.stride == (2, 2) and down.kernel_size == (3, 3) and down.out_channels == 128
    blocks = [m for m in net.trunk if m.__class__.__name__ == "_ResidualBlock"]
    assert len(blocks) == 9
    up = [m for m in net.trunk if isinstance(m, nn.ConvTranspose2d)]
    assert len(up) == 1 and up[0].stride == (2, 2) and up[0].output_padding == (1, 1) and up[0].out_channels == 64
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in net.modules()) == 1 + 1 + 9 * 2 + 1
    assert any(isinstance(m, nn.ReflectionPad2d) for m in net.modules())
    assert not any(isinstance(m, (nn.Tanh, nn.Sigmoid)) for m in net.modules())
    head = net.head[-1]
    assert head.kernel_size == (7, 7) and head.out_channels == 1
    # stem + down + 9 x 2 residual convs + up + output conv (with bias): ~11 MB in float32
    expected = 2 * 64 * 49 + 64 * 128 * 9 + 18 * 128 * 128 * 9 + 128 * 64 * 9 + 64 * 49 + 1
    assert count_parameters(net) == expected == 2_811_073


@pytest.mark.parametrize("scale_head", [True, False])
def test_forward_shapes(scale_head):
    net = _tiny(scale_head=scale_head)
    out = net(torch.rand(3, 2, 32, 24))
    assert isinstance(out, GeneratorOutput)
    assert out.mean.shape == (3, 1, 32, 24)
    if scale_head:
        assert out.log_scale.shape == (3, 1, 32, 24)
    else:
        assert out.log_scale is None


def test_output_is_linear_not_squashed():
    net = _tiny()
    with torch.no_grad():
        net.head[-1].bias.fill_(5.0)
    assert net(torch.rand(1, 2, 16, 16)).mean.min() > 1.0


def test_scale_head_does_not_train_the_trunk():
    net = _tiny()
    out = net(torch.rand(2, 2, 16, 16))
    out.log_scale.sum().backward()
    assert all(p.grad is None for p in net.trunk.parameters())
    assert all(p.grad is None for p in net.head.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.scale_head.parameters())


def test_build_generator_errors():
    with pytest.raises(ValueError, match="unknown generator preset 'big'; known presets: paper, small, tiny"):
        build_generator("big", 2)
    with pytest.raises(TypeError, match="preset must be a str"):
        build_generator(3, 2)
    assert build_generator("tiny", 3, 2, norm="batch").config["norm"] == "batch"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"in_channels": 0}, ValueError, "in_channels must be >= 1"),
        ({"in_channels": 2.0}, TypeError, "in_channels must be an int"),
        ({"in_channels": 2, "n_res": -1}, ValueError, "n_res must be >= 0"),
        ({"in_channels": 2, "norm": "layer"}, ValueError, "norm must be one of"),
        ({"in_channels": 2, "padding": "circular"}, ValueError, "padding must be one of"),
        ({"in_channels": 2, "scale_head": 1}, TypeError, "scale_head must be a bool"),
    ],
)
def test_constructor_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        ResNetGenerator(**kwargs)


def test_input_validation():
    net = _tiny()
    with pytest.raises(ValueError, match="expects 2 input band"):
        net(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"shape \[B, C, H, W\]"):
        net(torch.rand(2, 16, 16))
    with pytest.raises(ValueError, match="width 15 is not a multiple of 2\\*\\*n_down = 2"):
        net(torch.rand(1, 2, 16, 15))
    with pytest.raises(ValueError, match="height 2 is below the minimum of 4 pixels"):
        net(torch.rand(1, 2, 2, 4))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        net([[1.0]])


@pytest.mark.parametrize("n_down", [0, 1, 2])
def test_minimum_input_size_is_accepted(n_down):
    net = ResNetGenerator(1, base_width=4, n_down=n_down, n_res=1)
    size = minimum_input_size(net)
    assert size % 2**n_down == 0
    assert net(torch.rand(1, 1, size, size)).mean.shape == (1, 1, size, size)


@pytest.mark.parametrize("n_down", [1, 2])
def test_receptive_field_matches_gradient_support(n_down):
    # Without normalisation (which couples all pixels) the footprint is exactly the conv field.
    torch.manual_seed(1)
    net = ResNetGenerator(1, base_width=4, n_down=n_down, n_res=2, norm="none", padding="zero", scale_head=False)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)
    size = 96
    x = torch.rand(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    net.double()(x).mean[0, 0, size // 2, size // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    support = int(rows.max() - rows.min() + 1)
    assert support <= receptive_field(net) <= support + 2 ** n_down


def test_config_round_trip():
    net = _tiny(padding="replicate")
    clone = ResNetGenerator.from_config(net.config)
    assert clone.config == net.config
    clone.load_state_dict(net.state_dict())
    x = torch.rand(1, 2, 16, 16)
    assert torch.equal(clone(x).mean, net(x).mean)
    with pytest.raises(ValueError, match="needs 'in_channels'"):
        ResNetGenerator.from_config({"n_res": 1})


def test_deepened_network_computes_the_same_and_trains_its_new_blocks():
    from bandsynth.nn.network import TranslationNet

    torch.manual_seed(3)
    net = TranslationNet.build("tiny", softening=[0.01, 0.02], maximum=[1.0, 2.0], out_softening=0.02,
                               out_maximum=1.5, coefficients=[0.3, 0.5])
    with torch.no_grad():  # a trained-looking correction, not the fresh net's zero head
        for p in net.generator.parameters():
            p.normal_(0, 0.1)
    deeper = net.deepened(5)
    assert (net.generator.n_res, deeper.generator.n_res) == (2, 5)
    assert deeper.receptive_field == net.receptive_field + 3 * 4 * 2 ** net.n_down
    x = torch.rand(2, 2, 32, 32)
    a, b = net(x), deeper(x)
    assert torch.allclose(a.mean, b.mean, atol=1e-6) and torch.allclose(a.log_scale, b.log_scale, atol=1e-6)
    deeper(x).mean.square().sum().backward()
    blocks = [layer for layer in deeper.generator.trunk if layer.__class__.__name__ == "_ResidualBlock"]
    last_conv = [m for m in blocks[-1].body if isinstance(m, nn.Conv2d)][-1]
    assert float(last_conv.weight.abs().sum()) == 0.0
    assert last_conv.weight.grad.abs().sum() > 0  # the zeroed convolution learns
    assert net.generator.n_res == 2 and net.generator.trunk[1] is not deeper.generator.trunk[1]
    with pytest.raises(ValueError, match="n_res must be >= 2"):
        net.generator.deepened(1)


def test_widened_network_computes_the_same_and_trains_its_new_channels():
    from bandsynth.nn.network import TranslationNet

    torch.manual_seed(4)
    net = TranslationNet.build("tiny", softening=[0.01, 0.02], maximum=[1.0, 2.0], out_softening=0.02,
                               out_maximum=1.5, coefficients=[0.3, 0.5])
    with torch.no_grad():  # a trained-looking network, whose every channel matters
        for p in net.generator.parameters():
            p.normal_(0, 0.2)
    wider = net.widened(12)
    assert (net.generator.base_width, wider.generator.base_width) == (8, 12)
    assert wider.receptive_field == net.receptive_field
    x = torch.rand(2, 2, 32, 32)
    a, b = net(x), wider(x)
    assert torch.allclose(a.mean, b.mean, atol=1e-5) and torch.allclose(a.log_scale, b.log_scale, atol=1e-5)
    wider(x).mean.square().sum().backward()
    head = wider.generator.head[-1]
    assert float(head.weight[:, 8:].abs().sum()) == 0.0 and float(head.weight.grad[:, 8:].abs().sum()) > 0
    up = [m for m in wider.generator.trunk if isinstance(m, nn.ConvTranspose2d)][0]  # weight [in, out, k, k]
    assert float(up.weight[16:, :8].abs().sum()) == 0.0 and float(up.weight[:16, 8:].abs().sum()) > 0
    with pytest.raises(ValueError, match="base_width must be >= 8"):
        net.generator.widened(4)


def test_a_median_filtered_sigma_head_drops_single_pixel_outliers_and_keeps_the_mean():
    from scipy.ndimage import median_filter

    net = _tiny()
    with torch.no_grad():  # a trained-looking head, not a fresh net's near-constant one
        for p in net.scale_head.parameters():
            p.normal_(0, 0.3)
    smoothed = net.with_scale_median(3)
    x = torch.rand(1, 2, 32, 32)
    raw, filtered = net(x), smoothed(x)
    assert torch.equal(raw.mean, filtered.mean)
    # torch's reflection padding is scipy's "mirror" mode
    expected = median_filter(raw.log_scale.detach().numpy(), size=(1, 1, 3, 3), mode="mirror")
    np.testing.assert_allclose(filtered.log_scale.detach().numpy(), expected, rtol=0, atol=1e-6)
    assert uncertainty_field_margin(smoothed) == uncertainty_field_margin(net) + 2 == 4
    clone = ResNetGenerator.from_config(smoothed.config)
    assert smoothed.config["scale_median"] == 3 and "scale_median" not in net.config
    clone.load_state_dict(smoothed.state_dict())
    assert torch.equal(clone(x).log_scale, filtered.log_scale)
    with pytest.raises(ValueError, match="scale_median must be odd"):
        net.with_scale_median(4)
    with pytest.raises(ValueError, match="needs scale_head=True"):
        build_generator("tiny", 2, scale_head=False, scale_median=3)


def test_count_parameters_trainable():
    net = _tiny()
    for p in net.scale_head.parameters():
        p.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == count_parameters(net) - count_parameters(net.scale_head)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        count_parameters("net")


def test_run_generator_pads_and_crops():
    net = _tiny()
    net.train()
    x = torch.rand(2, 2, 32, 32)
    direct = net(x)
    out = run_generator(net, x)
    assert torch.allclose(out.mean, direct.mean, atol=1e-6)
    assert net.training  # mode restored
    odd = run_generator(net, torch.rand(1, 2, 3, 17))
    assert odd.mean.shape == odd.log_scale.shape == (1, 1, 3, 17)
    assert torch.isfinite(odd.mean).all()


def test_under_bf16_autocast_the_stem_reads_the_inputs_in_float32():
    """Rounding the scaled inputs to bf16 moved faint u fluxes by 0.3 %: the stem convolution stays float32."""
    net = _tiny()
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen.setdefault(name, output.dtype)  # the dtype the convolution computed in
        return hook

    net.trunk[1].register_forward_hook(record("stem"))
    block = next(m for m in net.trunk if type(m).__name__ == "_ResidualBlock")
    block.body[1].register_forward_hook(record("block"))
    x = torch.rand(2, 2, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(x)
    assert seen == {"stem": torch.float32, "block": torch.bfloat16}
    # in float32 the split trunk is the trunk
    assert torch.equal(net.trunk_features(x), net.trunk(x))


def test_run_generator_bf16_channels_last_close_to_fp32():
    net = _tiny()
    x = torch.rand(2, 2, 32, 32)
    ref = run_generator(net, x)
    fast = run_generator(net, x, bf16=True, channels_last=True)
    assert fast.mean.dtype == torch.float32
    assert (fast.mean - ref.mean).abs().max() < 0.05 * ref.mean.abs().max() + 1e-3
