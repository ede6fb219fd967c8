"""The frame encoder: torchvision backbones by name, poolings, layers and weights files."""
import copy
import pickle
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from vidrnn.models import EncoderError, FrameEncoder

FRAMES = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)  # (B, H, W, 3)


@pytest.mark.parametrize("name,channels", [("resnet18", 512), ("mobilenet_v3_small", 576),
                                           ("efficientnet_b0", 1280), ("regnet_y_400mf", 440)])
@pytest.mark.parametrize("pooling,cells", [("avg", 1), ("grid", 4)])
def test_output_shapes(name, channels, pooling, cells):
    enc = FrameEncoder(name, pooling=pooling, grid=2)
    with torch.inference_mode():
        out = enc(FRAMES)
    assert enc.out_dim == channels * cells
    assert out.shape == (2, channels * cells) and torch.isfinite(out).all()


def test_grid_pooling_keeps_where_things_are():
    enc = FrameEncoder("resnet18", pooling="grid", grid=2)
    blank = torch.full((1, 160, 160, 3), 100, dtype=torch.uint8)
    top_left = blank.clone()
    top_left[:, 8:40, 8:40] = 255
    with torch.inference_mode():
        change = (enc(top_left) - enc(blank)).view(512, 4).norm(dim=0)  # per cell: TL, TR, BL, BR
    assert change[0] > 2 * change[3]
    avg = FrameEncoder("resnet18", pooling="avg")
    assert avg.out_dim * 4 == enc.out_dim


def test_vision_transformers(caplog):
    """vit_* and maxvit_t take any frame size (resized to the one they are built for: smaller frames with a
    warning, once); a ViT's ``avg`` feature is its class token and ``grid`` pools its patch tokens in place."""
    from vidrnn.models import encoder as encoder_module

    encoder_module._ENLARGED.clear()  # (warned once a process)
    vit = FrameEncoder("vit_b_32", pooling="grid", grid=2)
    tokens_in = FrameEncoder("vit_b_32", pooling="grid", grid=2, layer="encoder.dropout")  # before attention
    blank = torch.full((1, 96, 96, 3), 100, dtype=torch.uint8)
    top_left = blank.clone()
    top_left[:, :40, :40] = 255
    with torch.inference_mode():
        assert vit(FRAMES).shape == (2, 768 * 4) and vit.out_dim == 768 * 4
        change = (tokens_in(top_left) - tokens_in(blank)).view(768, 4).norm(dim=0)  # per cell: TL, TR, BL, BR
        assert change[0] > 0 and change[1:].max() < 1e-4 * change[0]  # patches laid out in rows, in place
        avg = FrameEncoder("vit_b_32")
        x = (FRAMES.permute(0, 3, 1, 2).float() - avg.mean) / avg.std
        tokens = avg.body(torch.nn.functional.interpolate(x, size=224, mode="bilinear", antialias=True))["feat"]
        assert torch.allclose(avg(FRAMES), tokens[:, 0], atol=1e-5) and avg.out_dim == 768
        assert FrameEncoder("maxvit_t")(FRAMES).shape == (2, 512)
    warned = [r.getMessage() for r in caplog.records if "enlarged" in r.getMessage()]
    assert warned == [f"this encoder sees 224x224 frames: frames read at {side} px are enlarged to it, blurred "
                      "(video.size=224 reads them at its size)" for side in (64, 96)]  # once each


def test_layer_choice():
    enc = FrameEncoder("resnet18", layer="layer3")
    assert enc.out_dim == 256
    with pytest.raises(EncoderError, match="no layer 'layer9'"):
        FrameEncoder("resnet18", layer="layer9")


def test_frozen_and_trainable():
    frozen = FrameEncoder("resnet18")
    frozen.train()
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    trainable = FrameEncoder("resnet18", trainable=True)
    trainable.train()
    out = trainable(FRAMES).sum()
    out.backward()
    assert trainable.training and next(trainable.parameters()).grad is not None


@pytest.mark.parametrize("trainable", [False, True])
def test_a_copy_keeps_the_mode(trainable):
    """copy.deepcopy rebuilds torchvision's feature extractor in train mode; a frozen encoder's copy
    normalised by batch statistics (cosine 0.71 to the original on noise, found on the GPU check)."""
    enc = FrameEncoder("resnet18", layer="layer3", pooling="grid", trainable=trainable)
    enc.train()
    twin = copy.deepcopy(enc)
    assert [m.training for m in twin.modules()] == [m.training for m in enc.modules()]
    enc.eval()
    twin.eval()
    with torch.no_grad():
        assert torch.equal(twin(FRAMES), enc(FRAMES))


@pytest.mark.parametrize("name,layer", [("resnet18", None), ("resnet18", "layer2"), ("mobilenet_v3_small", None),
                                        ("efficientnet_b0", None), ("densenet121", "features.denseblock1")])
@pytest.mark.parametrize("trainable", [False, True])
def test_batchnorm_folded_for_inference(name, layer, trainable):
    """The copy used to extract features has its BatchNorms folded into the convolutions before them and
    gives the same features; the encoder itself (trained end to end, perhaps) is left as it was."""
    enc = FrameEncoder(name, layer=layer, pooling="grid", trainable=trainable)
    for m in enc.modules():  # running statistics other than the initial 0 / 1, so a wrong fold shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    before = copy.deepcopy(enc.state_dict())
    folded = enc.for_inference()
    norms = [m for m in folded.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if name == "densenet121":  # its norms come before their convolutions: only the stem's folds
        assert 0 < len(norms) < sum(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules())
    else:
        assert not norms
    assert not folded.training and not any(p.requires_grad for p in folded.parameters())
    assert enc.training == trainable and all(p.requires_grad == trainable for p in enc.parameters())
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in before.items())
    enc.eval()
    with torch.no_grad():
        expected, got = enc(FRAMES), folded(FRAMES)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_local_state_dict_weights(tmp_path):
    model = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(model.state_dict(), path)
    reference = torch.nn.Sequential(*list(model.children())[:-1]).eval()
    enc = FrameEncoder("resnet18", weights=str(path))
    x = FRAMES.permute(0, 3, 1, 2).float()
    x = (x - enc.mean) / enc.std
    with torch.inference_mode():
        assert torch.allclose(enc(FRAMES), reference(x).flatten(1), atol=1e-5)


def test_bad_names_and_weights(tmp_path):
    with pytest.raises(EncoderError, match="unknown encoder 'resnet9000'"):
        FrameEncoder("resnet9000")
    with pytest.raises(EncoderError, match="neither a file nor one of"):
        FrameEncoder("resnet18", weights="NOT_A_WEIGHT")
    for missing in (tmp_path / "moved" / "resnet18.pth", "resnet18.pth"):  # a file that is not (or no longer) there
        with pytest.raises(EncoderError, match=f"^encoder weights file {missing} does not exist$"):
            FrameEncoder("resnet18", weights=str(missing))
    wrong = tmp_path / "wrong.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), wrong)
    with pytest.raises(EncoderError, match="do not fit this encoder"):
        FrameEncoder("resnet18", weights=str(wrong))


def test_pretrained_weights_without_a_network_say_where_to_put_them(tmp_path, monkeypatch):
    """An air-gapped machine: the download fails; the error names the file and the cache folder."""
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)  # what WeightsEnum calls
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(EncoderError) as info:
        FrameEncoder("resnet18", weights="DEFAULT")
    assert str(info.value) == (f"encoder weights 'DEFAULT' of resnet18 could not be downloaded (<urlopen error no "
                               f"network>): put resnet18-f37072fd.pth into {tmp_path / 'hub' / 'checkpoints'}, or "
                               "give encoder.weights=<a local state_dict file>")


def test_default_weights_are_recorded_as_the_weights_they_are(tmp_path, monkeypatch):
    """A checkpoint or manifest names the weights DEFAULT stood for when it was made, so it keeps meaning
    the same features after torchvision moves its default (resnet50's moved from V1 to V2)."""
    from omegaconf import OmegaConf

    from pipelines.common import encoder_spec
    from vidrnn.models import resolved_weights
    assert resolved_weights("resnet18", "DEFAULT") == "IMAGENET1K_V1"
    assert resolved_weights("resnet50", "DEFAULT") == "IMAGENET1K_V2"
    for weights in (None, "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1", "default"):
        assert resolved_weights("resnet18", weights) == weights  # as given: build_backbone judges them
    assert resolved_weights("no_such_net", "DEFAULT") == "DEFAULT"
    cfg = OmegaConf.create({"name": "resnet50", "weights": "DEFAULT", "layer": None, "pooling": "avg", "grid": 2})
    assert encoder_spec(cfg)["weights"] == "IMAGENET1K_V2"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "DEFAULT").write_bytes(b"")  # a local file of that name stays a file
    assert resolved_weights("resnet18", "DEFAULT") == "DEFAULT"


class _Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('pwned')",))


def test_pickled_code_in_a_weights_file_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"state_dict": _Boom()}))
    with pytest.raises(EncoderError, match="not a plain state_dict"):
        FrameEncoder("resnet18", weights=str(path))
    text = tmp_path / "notes.txt"  # not a file torch.save writes: said so, not "weights only load failed"
    text.write_text("resnet18 weights\n")
    with pytest.raises(EncoderError, match=f"^{text}: not a state_dict file"):
        FrameEncoder("resnet18", weights=str(text))


def test_random_weights_are_the_same_in_every_process(tmp_path):
    """A model trained on random-encoder features must meet the same encoder when it is applied later,
    in another process; building one leaves the caller's random stream alone."""
    frames = torch.arange(2 * 32 * 32 * 3, dtype=torch.int64).remainder(251).to(torch.uint8).view(2, 32, 32, 3)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    here = FrameEncoder("resnet18", layer="layer1")(frames)
    assert torch.equal(torch.rand(1), expected_next)
    code = ("import sys, torch; from vidrnn.models.encoder import FrameEncoder; torch.manual_seed(7); "
            "f = torch.arange(2*32*32*3).remainder(251).to(torch.uint8).view(2, 32, 32, 3); "
            "torch.save(FrameEncoder('resnet18', layer='layer1')(f), sys.argv[1])")
    out = tmp_path / "feats.pt"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, cwd=Path(__file__).parents[1])
    assert torch.equal(torch.load(out, weights_only=True), here)


def test_apps_import_torchvision_and_nltk_only_when_they_use_them():
    """torchvision takes seconds to import and nltk about one: ``--help``, ``evaluate`` and the HOG counter
    need neither, so the apps' modules import them where an encoder is built or a caption tokenised."""
    code = ("import sys, pipelines.caption, pipelines.count, pipelines.evaluate, pipelines.extract, pipelines.train; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torchvision', 'nltk'})); "
            "from vidrnn.text import tokenize; from vidrnn.models import FrameEncoder; tokenize('a dog.'); "
            "FrameEncoder('resnet18', layer='layer1'); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torchvision', 'nltk'}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1],
                         capture_output=True, text=True).stdout.splitlines()
    assert out == ["[]", "['nltk', 'torchvision']"]
